// Command bench is Dialtone's benchmark harness: one command that builds the
// dialtone binary, starts real three-node clusters of separate `dialtone
// serve` processes with a simulated media platform and notification
// receiver (`dialtone mediasim`), drives them with load generators, and
// writes a report (summary.md, results.json and SVG charts).
//
//	go run ./bench                          # every scenario, full size (about 11 minutes)
//	go run ./bench --quick                  # every scenario, small (under two minutes; CI)
//	go run ./bench --scenario caps,failover --caps-targets 100,1000
//
// Scenarios: caps (CAPS accuracy), ports (port utilisation against an
// SSG-style baseline), rawraft (the raw Raft baseline the bulk creates are
// compared with), ingest (creates/s by protocol), failover (leader
// SIGKILLs while dialling) and reads (follower reads, closed and open
// loop). Attempts are counted
// at the media platform: caps on the wire (a tcpdump capture of the packets
// to mediasim's gRPC port, decoded by bench/wire), the others from
// mediasim's own record of every call's start time.
// It exits non-zero when an invariant fails (a lost request, two attempts
// of one request at once, attempts beyond MaxAttempts, a call refused by a
// full platform at PortLoadFactor ≤ 100), a scenario cannot run, or the
// report cannot be written; the issue's performance targets are reported,
// not asserted. bench/README.md describes every parameter.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/seed-7bfc04c2/dialtone/test/cluster"
)

func main() {
	cfg, isQuick, err := parseConfig(os.Args[1:])
	if err != nil {
		if errors.Is(err, errHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, cfg, isQuick)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, cfg Config, isQuick bool) int {
	start := time.Now()
	h := &harness{cfg: cfg, progress: os.Stdout, rep: &Report{
		Started: start.UTC(), Command: commandLine(), Machine: machine(), Quick: isQuick, Config: cfg, Checks: []Check{}, Charts: []string{},
	}}
	out, err := filepath.Abs(cfg.Out)
	if err == nil {
		err = os.MkdirAll(out, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: report directory:", err)
		return 1
	}
	h.out = out
	// Old charts would be listed as if they were this run's.
	old, _ := filepath.Glob(filepath.Join(out, "*.svg"))
	png, _ := filepath.Glob(filepath.Join(out, "*.png"))
	for _, f := range append(old, png...) {
		_ = os.Remove(f)
	}
	if h.tmp, err = os.MkdirTemp("", "dialtone-bench-"); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	keep := cfg.Keep
	defer func() {
		if keep {
			fmt.Printf("data and logs kept in %s\n", h.tmp)
			return
		}
		_ = os.RemoveAll(h.tmp)
	}()
	h.logf("building ./cmd/dialtone ...")
	root, _ := os.Getwd()
	if h.bin, err = cluster.Build(ctx, root, h.tmp); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	h.logf("built in %s; scenarios %s; report in %s", time.Since(start).Round(time.Millisecond), strings.Join(cfg.scenarios(), ","), out)

	for _, sc := range cfg.scenarios() {
		if ctx.Err() != nil {
			break
		}
		t0 := time.Now()
		h.logf("=== %s", sc)
		var err error
		switch sc {
		case "caps":
			err = h.runCaps(ctx)
		case "ports":
			err = h.runPorts(ctx)
		case "rawraft":
			err = h.runRawRaft(ctx)
		case "ingest":
			err = h.runIngest(ctx)
		case "failover":
			err = h.runFailover(ctx)
		case "reads":
			err = h.runReads(ctx)
		}
		if err != nil {
			h.logf("%s FAILED: %v", sc, err)
			h.rep.Errors = append(h.rep.Errors, fmt.Sprintf("%s: %v", sc, err))
			keep = true
		}
		h.logf("=== %s done in %s", sc, time.Since(t0).Round(time.Millisecond))
	}
	h.issue18Targets()
	if ctx.Err() != nil {
		h.rep.Errors = append(h.rep.Errors, "interrupted: "+ctx.Err().Error())
	}
	h.rep.Finished = time.Now().UTC()
	if err := h.writeReport(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: writing the report:", err)
		return 1
	}
	failed := len(h.rep.Errors)
	for _, c := range h.rep.Checks {
		if !c.OK && !c.Target {
			failed++
			keep = true
		}
	}
	h.logf("report: %s (%s in all)", filepath.Join(out, "summary.md"), time.Since(start).Round(time.Second))
	if failed > 0 {
		fmt.Printf("BENCH FAILED: %d failed invariant(s) or scenario(s); see %s\n", failed, filepath.Join(out, "summary.md"))
		return 1
	}
	return 0
}

// writeReport writes results.json and summary.md and checks that they
// exist and are not empty.
func (h *harness) writeReport() error {
	b, err := json.MarshalIndent(h.rep, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(h.out, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(h.out, "summary.md"), []byte(summary(h.rep)), 0o644); err != nil {
		return err
	}
	for _, f := range append([]string{"results.json", "summary.md"}, h.rep.Charts...) {
		st, err := os.Stat(filepath.Join(h.out, f))
		if err != nil {
			return err
		}
		if st.Size() == 0 {
			return fmt.Errorf("%s is empty", f)
		}
	}
	return nil
}

func commandLine() string {
	args := []string{"go run ./bench"}
	for _, a := range os.Args[1:] {
		if a == "" || strings.ContainsAny(a, " \t\"'$") {
			a = strconv.Quote(a)
		}
		args = append(args, a)
	}
	return strings.Join(args, " ")
}

func machine() Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				m.MemGiB = float64(int(kb/1024/1024*10)) / 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.Load1 = strings.Join(f[:3], " ")
		}
	}
	return m
}
