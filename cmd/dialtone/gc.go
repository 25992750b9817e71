package main

import (
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// defaultGCPercent is serve's GOGC when the environment sets none. At
// 5,000 CAPS on a 2-core machine it gave about 2.5% more of the target
// than Go's 100 (BENCHMARKS.md, issue 18 sessions 5 and 6); the heap may
// then grow to three times the live data, which memLimitRatio bounds.
const defaultGCPercent = 200

// memLimitRatio is the share of the memory available to the process (its
// cgroup's limit, else the machine's memory) that serve sets as the soft
// memory limit when GOMEMLIMIT is not set. Near the limit the collector
// runs as often as it must, whatever GOGC says, so GOGC=200 does not let a
// large store outgrow the machine.
const memLimitRatio = 0.9

// tuneGC applies serve's garbage-collector defaults. GOGC and GOMEMLIMIT
// in the environment win (AUTOMEMLIMIT=off turns the derived limit off).
// It returns what is in force.
func tuneGC(log *slog.Logger) (gcPercent int, memLimit int64) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	memLimit, err := memlimit.Set(
		memlimit.WithRatio(memLimitRatio),
		memlimit.WithProvider(memlimit.ApplyFallback(memlimit.FromCgroup, memlimit.FromSystem)),
	)
	if err != nil {
		log.Warn("could not derive a memory limit: none set", "err", err)
	}
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	gcPercent = int(s[0].Value.Uint64())
	log.Info("garbage collector", "gogc", gcPercent, "memory_limit_bytes", memLimit)
	return gcPercent, memLimit
}
