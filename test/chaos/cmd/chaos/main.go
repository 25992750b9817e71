// Command chaos runs Dialtone's chaos suite against the compose deployment
// (image dialtone:dev, built by `make image`): load, faults, then the
// checkers. It exits 1 when any checker fails. `make chaos` runs it;
// `make chaos CHAOS_FLAGS=--quick` is the short CI pass (every fault once).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/seed-7bfc04c2/dialtone/test/chaos"
	"github.com/seed-7bfc04c2/dialtone/test/chaos/check"
	"github.com/seed-7bfc04c2/dialtone/test/chaos/history"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		o       chaos.Options
		quick   bool
		faults  string
		recheck string
	)
	flag.BoolVar(&quick, "quick", false, "short pass: every fault once, shorter holds and TTL (CI)")
	flag.StringVar(&o.OutDir, "out", "", "output directory (default chaos-out/<time>)")
	flag.StringVar(&o.ComposeFile, "compose", "deploy/compose/docker-compose.yml", "compose file")
	flag.StringVar(&o.ConfigTemplate, "config", "deploy/compose/cluster.toml", "cluster TOML (with the compose file's default subnets)")
	flag.Int64Var(&o.Seed, "seed", time.Now().UnixNano()%1_000_000, "seed of the load and the media platform")
	flag.StringVar(&faults, "faults", strings.Join(chaos.FaultNames, ","), "faults, in order")
	flag.IntVar(&o.Rounds, "rounds", 2, "times the faults are applied (membership only in the last round)")
	flag.DurationVar(&o.Warmup, "warmup", 15*time.Second, "load before the first fault")
	flag.DurationVar(&o.Hold, "hold", 5*time.Second, "how long each fault lasts")
	flag.DurationVar(&o.Recover, "recover", 15*time.Second, "load between faults")
	flag.Float64Var(&o.CAPS, "caps", 20, "dialer CAPS (call attempts per second)")
	flag.IntVar(&o.Servers, "servers", 2, "media servers")
	flag.IntVar(&o.PortsPerSrv, "ports", 20, "ports per media server")
	flag.StringVar(&o.Ring, "ring", "200ms-1s", "mediasim ring time")
	flag.StringVar(&o.Talk, "talk", "1s-5s", "mediasim talk time (longer than a pause plus interrupted_retry_delay, so a paused leader still has calls up when its successor retries them)")
	flag.StringVar(&o.Mix, "mix", "success=60,busy=10,no_answer=15,answering_machine=5,invalid_number=5,internal_error=5", "mediasim outcome mix")
	flag.DurationVar(&o.TTL, "ttl", 60*time.Second, "requests' time to live")
	var maxAttempts uint
	flag.UintVar(&maxAttempts, "max-attempts", 3, "requests' max attempts")
	flag.Float64Var(&o.CreateRate, "create-rate", 8, "creates per second")
	flag.Float64Var(&o.GetRate, "get-rate", 15, "linearizable gets per second")
	flag.Float64Var(&o.CancelRate, "cancel-rate", 2, "cancels per second")
	flag.IntVar(&o.Clients, "clients", 64, "concurrent clients (a client waits for its answer: enough of them that calls hung on a cut-off node do not starve the load)")
	flag.DurationVar(&o.OpTimeout, "op-timeout", 5*time.Second, "timeout of one client operation")
	flag.DurationVar(&o.CreateRetry, "create-retry", 20*time.Second, "how long a create without a definite answer is retried")
	flag.DurationVar(&o.DrainTimeout, "drain", 0, "how long to wait for every request to finish (default TTL + 60s)")
	flag.DurationVar(&o.CheckTimeout, "check-timeout", 2*time.Minute, "linearizability check budget")
	flag.BoolVar(&o.Keep, "keep", false, "leave the deployment running")
	flag.StringVar(&recheck, "check", "", "only run the checkers on a saved history.json")
	var sipMode bool
	var sipUp, sipRinging, sipKills int
	flag.BoolVar(&sipMode, "sip", false, "the SIP variant (issue 15): calls up and ringing over SIP to SIPp far ends on the host, the leader SIGKILLed, paused and partitioned; see test/chaos/sip.go")
	flag.IntVar(&sipUp, "sip-up", 40, "with --sip: calls up at each fault")
	flag.IntVar(&sipRinging, "sip-ringing", 10, "with --sip: calls ringing at each fault")
	flag.IntVar(&sipKills, "sip-kills", 5, "with --sip: SIGKILLs of the leader (then one pause and one partition)")
	flag.Parse()
	if sipMode {
		return runSIP(quick, sipUp, sipRinging, sipKills, o.Seed, o.OutDir, o.Keep)
	}
	o.MaxAttempts = uint32(maxAttempts)
	o.Faults = strings.Split(faults, ",")
	if quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("rounds", func() { o.Rounds = 1 })
		def("warmup", func() { o.Warmup = 10 * time.Second })
		def("hold", func() { o.Hold = 4 * time.Second })
		def("recover", func() { o.Recover = 8 * time.Second })
		def("ttl", func() { o.TTL = 30 * time.Second })
		def("check-timeout", func() { o.CheckTimeout = time.Minute })
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = o.TTL + 60*time.Second
	}
	logf := func(format string, args ...any) {
		fmt.Printf("%s chaos: %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}

	if recheck != "" {
		h, err := history.Load(recheck)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		reports := append([]check.Report{check.Linearizable(h, o.CheckTimeout, filepath.Dir(recheck))}, check.Invariants(h)...)
		return report(os.Stdout, reports, nil)
	}

	if o.OutDir == "" {
		o.OutDir = filepath.Join("chaos-out", time.Now().UTC().Format("20060102-150405"))
	}
	o.Log = logf
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	logf("output in %s (seed %d)", o.OutDir, o.Seed)
	res, err := chaos.Run(ctx, o)
	if err != nil {
		logf("run failed: %v", err)
		return 2
	}
	f, ferr := os.Create(filepath.Join(o.OutDir, "report.txt"))
	if ferr == nil {
		defer f.Close()
		terms, unforced := chaos.LeaderTerms(res.History)
		fmt.Fprintf(f, "seed %d, faults %s, rounds %d, duration %v\n", o.Seed, faults, o.Rounds, time.Since(start).Round(time.Second))
		fmt.Fprintf(f, "%d operations, %d calls, %d notifications; %d leader changes, %d of them outside the faults\n\n",
			len(res.History.Ops), len(res.History.Calls), len(res.History.Notifications), terms, unforced)
		report(f, res.Reports, res.Availability)
	}
	terms, unforced := chaos.LeaderTerms(res.History)
	logf("%d leader changes, %d of them outside the faults", terms, unforced)
	code := report(os.Stdout, res.Reports, res.Availability)
	logf("done in %v; history, report and container logs in %s", time.Since(start).Round(time.Second), o.OutDir)
	return code
}

func report(w *os.File, reports []check.Report, av []chaos.Availability) int {
	if av != nil {
		fmt.Fprintln(w, chaos.AvailabilityTable(av))
	}
	code := 0
	for _, r := range reports {
		fmt.Fprint(w, r.String())
		if !r.OK() {
			code = 1
		}
	}
	if code == 0 {
		fmt.Fprintln(w, "chaos: every checker passed")
	} else {
		fmt.Fprintln(w, "chaos: CHECKS FAILED")
	}
	return code
}

// runSIP runs the SIP variant.
func runSIP(quick bool, up, ringing, kills int, seed int64, out string, keep bool) int {
	if quick {
		up, ringing, kills = min(up, 10), min(ringing, 4), min(kills, 1)
	}
	logf := func(format string, args ...any) {
		fmt.Printf("%s chaos-sip: %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
	if out == "" {
		out = filepath.Join("chaos-out", "sip-"+time.Now().UTC().Format("20060102-150405"))
	}
	var faults []string
	for range kills {
		faults = append(faults, "kill-leader")
	}
	faults = append(faults, "pause-leader", "partition-leader")
	o := chaos.SIPOptions{
		OutDir: out, ComposeFile: "deploy/compose/docker-compose.yml", Override: "deploy/compose/sip.yml",
		ConfigTemplate: "deploy/compose/cluster-sip.toml", Scenarios: "test/chaos/testdata/sipp",
		Seed: seed, Up: up, Ringing: ringing, Faults: faults, Hold: 5 * time.Second, Keep: keep, Log: logf,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	logf("output in %s (seed %d), %d up + %d ringing, faults %s", out, seed, up, ringing, strings.Join(faults, ","))
	rounds, err := chaos.RunSIP(ctx, o)
	code := 0
	var b strings.Builder
	for i, r := range rounds {
		fmt.Fprintf(&b, "round %d: %s\n", i+1, r)
		if !r.OK(up, ringing) {
			code = 1
		}
	}
	if err != nil {
		fmt.Fprintf(&b, "run failed: %v\n", err)
		code = 2
	} else if code == 0 {
		fmt.Fprintln(&b, "chaos-sip: every round kept every promise")
	} else {
		fmt.Fprintln(&b, "chaos-sip: CHECKS FAILED")
	}
	fmt.Fprintf(&b, "duration %v\n", time.Since(start).Round(time.Second))
	fmt.Print(b.String())
	_ = os.WriteFile(filepath.Join(out, "report.txt"), []byte(b.String()), 0o644)
	return code
}
