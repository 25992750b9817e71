package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
)

// Config is every parameter of a run: the defaults, then --quick's
// preset, then the TOML file of --config, then the flags.
type Config struct {
	Scenarios string `toml:"scenarios"`
	Out       string `toml:"out"`
	// Raft timeouts of the generated cluster config.
	Heartbeat  Duration `toml:"heartbeat_timeout"`
	Election   Duration `toml:"election_timeout"`
	Lease      Duration `toml:"leader_lease_timeout"`
	CPUProfile bool     `toml:"cpu_profile"`
	// ChartFormat: svg or png.
	ChartFormat string `toml:"chart_format"`
	Keep        bool   `toml:"keep"`

	Caps     CapsConfig     `toml:"caps"`
	Ports    PortsConfig    `toml:"ports"`
	Ingest   IngestConfig   `toml:"ingest"`
	Failover FailoverConfig `toml:"failover"`
	Reads    ReadsConfig    `toml:"reads"`
}

// CapsConfig: the CAPS accuracy scenario.
type CapsConfig struct {
	// Targets: CAPS, or CAPS@PortLoadFactor for a run the ports cap.
	Targets  string   `toml:"targets"`
	Duration Duration `toml:"duration"`
	Warmup   Duration `toml:"warmup"`
	Servers  int      `toml:"servers"`
	Ports    int      `toml:"ports_per_server"`
	Ring     string   `toml:"ring"`
	Talk     string   `toml:"talk"`
	// DNC, when > 0, runs every target a second time on a tenant with a
	// suppression list of that many numbers loaded (none of them in the
	// backlog: every dispatch check misses), for the ratio of the two.
	DNC int `toml:"dnc_numbers"`
}

// PortsConfig: the port utilisation scenario.
type PortsConfig struct {
	Views    string   `toml:"views"`
	Duration Duration `toml:"duration"`
	// Skip is the fill-up at the start left out of the utilisation.
	Skip    Duration `toml:"skip"`
	CAPS    float64  `toml:"caps"`
	PLF     int      `toml:"port_load_factor"`
	Servers int      `toml:"servers"`
	Ports   int      `toml:"ports_per_server"`
	Ring    string   `toml:"ring"`
	Talk    string   `toml:"talk"`
	Mix     string   `toml:"mix"`
	Backlog int      `toml:"backlog"`
}

// IngestConfig: the create throughput scenario.
type IngestConfig struct {
	Protocols     string   `toml:"protocols"`
	Duration      Duration `toml:"duration"`
	Warmup        Duration `toml:"warmup"`
	SingleWriters int      `toml:"single_writers"`
	BulkWriters   int      `toml:"bulk_writers"`
	BulkSize      int      `toml:"bulk_size"`
}

// FailoverConfig: leader kills during a CAPS run.
type FailoverConfig struct {
	CAPS      float64  `toml:"caps"`
	Duration  Duration `toml:"duration"`
	KillEvery Duration `toml:"kill_every"`
	// RestartAfter: a killed node is started again this long after.
	RestartAfter Duration `toml:"restart_after"`
	Settle       Duration `toml:"settle"` // the longest wait for every request to finish
}

// ReadsConfig: reads on a follower.
type ReadsConfig struct {
	Duration Duration `toml:"duration"`
	Warmup   Duration `toml:"warmup"`
	Workers  int      `toml:"workers"`
	Requests int      `toml:"requests"`
	// OpenRates: the fixed offered rates (calls/s, comma-separated) of the
	// open-loop runs; "" leaves them out.
	OpenRates string `toml:"open_rates"`
}

// Duration is a time.Duration written as "10s" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	d.Duration = v
	return err
}

// MarshalText writes the duration as a string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func dur(d time.Duration) Duration { return Duration{d} }

func defaults() Config {
	return Config{
		Scenarios: "all", Out: "bench/results/latest", ChartFormat: "svg",
		Heartbeat: dur(config.Default().Cluster.HeartbeatTimeout.Duration), Election: dur(config.Default().Cluster.ElectionTimeout.Duration),
		Lease: dur(config.Default().Cluster.LeaderLeaseTimeout.Duration), // the shipped defaults
		Caps: CapsConfig{Targets: "50,200,1000,5000,1000@2", Duration: dur(60 * time.Second), Warmup: dur(3 * time.Second),
			Servers: 4, Ports: 2500, Ring: "50ms-150ms", Talk: "100ms-300ms"},
		Ports: PortsConfig{Views: "live,sampled-5s", Duration: dur(60 * time.Second), Skip: dur(10 * time.Second), CAPS: 50, PLF: 100,
			Servers: 2, Ports: 50, Ring: "1s-3s", Talk: "5s-15s", Mix: "success=75,no_answer=15,busy=10", Backlog: 5000},
		Ingest: IngestConfig{Protocols: "grpc,rest,ssg", Duration: dur(10 * time.Second), Warmup: dur(2 * time.Second),
			SingleWriters: 256, BulkWriters: 64, BulkSize: 100},
		Failover: FailoverConfig{CAPS: 200, Duration: dur(60 * time.Second), KillEvery: dur(10 * time.Second),
			RestartAfter: dur(3 * time.Second), Settle: dur(90 * time.Second)},
		Reads: ReadsConfig{Duration: dur(10 * time.Second), Warmup: dur(2 * time.Second), Workers: 8, Requests: 10000, OpenRates: "2000,5000,10000"},
	}
}

// quick is the --quick preset: every scenario, small, under two minutes.
func quick(c *Config) {
	c.Out = filepath.Join(os.TempDir(), "dialtone-bench-quick") // not committed
	c.Caps.Targets, c.Caps.Duration, c.Caps.Warmup = "50,500", dur(5*time.Second), dur(time.Second)
	c.Ports.Duration, c.Ports.Skip, c.Ports.Talk, c.Ports.Ring, c.Ports.Backlog, c.Ports.CAPS = dur(12*time.Second), dur(3*time.Second), "1s-3s", "200ms-500ms", 1000, 200
	c.Ingest.Duration, c.Ingest.Warmup, c.Ingest.SingleWriters, c.Ingest.BulkWriters = dur(1500*time.Millisecond), dur(500*time.Millisecond), 32, 8
	c.Failover.CAPS, c.Failover.Duration, c.Failover.KillEvery, c.Failover.RestartAfter, c.Failover.Settle =
		100, dur(12*time.Second), dur(4*time.Second), dur(1500*time.Millisecond), dur(40*time.Second)
	c.Reads.Duration, c.Reads.Warmup, c.Reads.Requests, c.Reads.OpenRates = dur(2*time.Second), dur(500*time.Millisecond), 1000, "1000"
}

// parseConfig reads the defaults, --quick, --config and the flags, in that
// order.
func parseConfig(args []string) (Config, bool, error) {
	c := defaults()
	isQuick := slices.ContainsFunc(args, func(a string) bool {
		return a == "--quick" || a == "-quick" || a == "--quick=true" || a == "-quick=true"
	})
	if isQuick {
		quick(&c)
	}
	for i, a := range args {
		path, ok := "", false
		switch {
		case (a == "--config" || a == "-config") && i+1 < len(args):
			path, ok = args[i+1], true
		case strings.HasPrefix(a, "--config="), strings.HasPrefix(a, "-config="):
			path, ok = a[strings.Index(a, "=")+1:], true
		}
		if ok {
			md, err := toml.DecodeFile(path, &c)
			if err != nil {
				return c, false, fmt.Errorf("--config: %w", err)
			}
			if und := md.Undecoded(); len(und) > 0 {
				return c, false, fmt.Errorf("--config %s: unknown key %s", path, und[0])
			}
		}
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: go run ./bench [flags]   (see bench/README.md)")
		fs.PrintDefaults()
	}
	var cfgPath string
	var q bool
	fs.StringVar(&cfgPath, "config", "", "TOML file of parameters (read before the other flags; keys as in bench/README.md)")
	fs.BoolVar(&q, "quick", false, "every scenario, small: under two minutes; asserts only the invariants and that the report was written")
	fs.StringVar(&c.Scenarios, "scenario", c.Scenarios, "comma-separated: caps, ports, rawraft, ingest, failover, reads, or all")
	fs.StringVar(&c.Out, "out", c.Out, "report directory (summary.md, results.json, charts)")
	fs.DurationVar(&c.Heartbeat.Duration, "heartbeat-timeout", c.Heartbeat.Duration, "cluster.heartbeat_timeout of the generated config")
	fs.DurationVar(&c.Election.Duration, "election-timeout", c.Election.Duration, "cluster.election_timeout")
	fs.DurationVar(&c.Lease.Duration, "leader-lease-timeout", c.Lease.Duration, "cluster.leader_lease_timeout")
	fs.BoolVar(&c.CPUProfile, "cpuprofile", c.CPUProfile, "write a CPU profile of every node and of mediasim to the report directory (cpu-<scenario>-<node>.pprof, cpu-<scenario>-mediasim.pprof)")
	fs.StringVar(&c.ChartFormat, "chart-format", c.ChartFormat, "svg or png")
	fs.BoolVar(&c.Keep, "keep", c.Keep, "keep the nodes' data and logs (temporary directory) after the run")

	fs.StringVar(&c.Caps.Targets, "caps-targets", c.Caps.Targets, "caps: target CAPS, comma-separated; CAPS@PLF runs at that PortLoadFactor (a run the ports cap)")
	fs.DurationVar(&c.Caps.Duration.Duration, "caps-duration", c.Caps.Duration.Duration, "caps: measured time per target")
	fs.DurationVar(&c.Caps.Warmup.Duration, "caps-warmup", c.Caps.Warmup.Duration, "caps: time after the CAPS change that is not measured")
	fs.IntVar(&c.Caps.Servers, "caps-servers", c.Caps.Servers, "caps: media servers per tenant")
	fs.IntVar(&c.Caps.Ports, "caps-ports", c.Caps.Ports, "caps: ports per media server")
	fs.StringVar(&c.Caps.Ring, "caps-ring", c.Caps.Ring, "caps: ring time (mediasim --ring)")
	fs.StringVar(&c.Caps.Talk, "caps-talk", c.Caps.Talk, "caps: talk time (mediasim --talk)")
	fs.IntVar(&c.Caps.DNC, "caps-dnc", c.Caps.DNC, "caps: also run each target with a suppression list of this many numbers loaded (0: not)")

	fs.StringVar(&c.Ports.Views, "ports-views", c.Ports.Views, "ports: dialer.port_view values run side by side")
	fs.DurationVar(&c.Ports.Duration.Duration, "ports-duration", c.Ports.Duration.Duration, "ports: run time")
	fs.DurationVar(&c.Ports.Skip.Duration, "ports-skip", c.Ports.Skip.Duration, "ports: fill-up time left out of the utilisation")
	fs.Float64Var(&c.Ports.CAPS, "ports-caps", c.Ports.CAPS, "ports: CAPS (high enough that ports limit)")
	fs.IntVar(&c.Ports.PLF, "ports-plf", c.Ports.PLF, "ports: PortLoadFactor")
	fs.IntVar(&c.Ports.Servers, "ports-servers", c.Ports.Servers, "ports: media servers")
	fs.IntVar(&c.Ports.Ports, "ports-ports", c.Ports.Ports, "ports: ports per media server")
	fs.StringVar(&c.Ports.Ring, "ports-ring", c.Ports.Ring, "ports: ring time")
	fs.StringVar(&c.Ports.Talk, "ports-talk", c.Ports.Talk, "ports: talk time")
	fs.StringVar(&c.Ports.Mix, "ports-mix", c.Ports.Mix, "ports: outcome mix (mediasim --mix)")
	fs.IntVar(&c.Ports.Backlog, "ports-backlog", c.Ports.Backlog, "ports: requests created (more than the run can dial)")

	fs.StringVar(&c.Ingest.Protocols, "ingest-protocols", c.Ingest.Protocols, "ingest: grpc, rest, ssg")
	fs.DurationVar(&c.Ingest.Duration.Duration, "ingest-duration", c.Ingest.Duration.Duration, "ingest: measured time per protocol and shape")
	fs.DurationVar(&c.Ingest.Warmup.Duration, "ingest-warmup", c.Ingest.Warmup.Duration, "ingest: warm-up per protocol and shape")
	fs.IntVar(&c.Ingest.SingleWriters, "ingest-single-writers", c.Ingest.SingleWriters, "ingest: closed-loop writers, one request per call")
	fs.IntVar(&c.Ingest.BulkWriters, "ingest-bulk-writers", c.Ingest.BulkWriters, "ingest: closed-loop writers, bulk calls")
	fs.IntVar(&c.Ingest.BulkSize, "ingest-bulk-size", c.Ingest.BulkSize, "ingest: requests per bulk call")

	fs.Float64Var(&c.Failover.CAPS, "failover-caps", c.Failover.CAPS, "failover: CAPS during the kills")
	fs.DurationVar(&c.Failover.Duration.Duration, "failover-duration", c.Failover.Duration.Duration, "failover: run time")
	fs.DurationVar(&c.Failover.KillEvery.Duration, "failover-kill-every", c.Failover.KillEvery.Duration, "failover: SIGKILL the leader this often")
	fs.DurationVar(&c.Failover.RestartAfter.Duration, "failover-restart-after", c.Failover.RestartAfter.Duration, "failover: restart a killed node after")
	fs.DurationVar(&c.Failover.Settle.Duration, "failover-settle", c.Failover.Settle.Duration, "failover: longest wait for every request to finish")

	fs.DurationVar(&c.Reads.Duration.Duration, "reads-duration", c.Reads.Duration.Duration, "reads: measured time per read")
	fs.DurationVar(&c.Reads.Warmup.Duration, "reads-warmup", c.Reads.Warmup.Duration, "reads: warm-up per read")
	fs.IntVar(&c.Reads.Workers, "reads-workers", c.Reads.Workers, "reads: closed-loop HTTP workers")
	fs.IntVar(&c.Reads.Requests, "reads-requests", c.Reads.Requests, "reads: stored requests read at random")
	fs.StringVar(&c.Reads.OpenRates, "reads-open-rates", c.Reads.OpenRates, "reads: offered rates of the open-loop runs (calls/s, comma-separated; empty: none)")
	if err := fs.Parse(args); err != nil {
		return c, false, err
	}
	if fs.NArg() > 0 {
		return c, false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, isQuick, c.validate()
}

var allScenarios = []string{"caps", "ports", "rawraft", "ingest", "failover", "reads"}

func (c Config) scenarios() []string {
	if c.Scenarios == "all" {
		return allScenarios
	}
	var out []string
	for s := range strings.SplitSeq(c.Scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// capsTarget is one caps run.
type capsTarget struct {
	CAPS float64
	PLF  int
}

func (t capsTarget) label() string {
	s := strconv.FormatFloat(t.CAPS, 'f', -1, 64)
	if t.PLF != 100 {
		s += "@" + strconv.Itoa(t.PLF)
	}
	return s
}

func (c CapsConfig) targets() ([]capsTarget, error) {
	var out []capsTarget
	for s := range strings.SplitSeq(c.Targets, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		t := capsTarget{PLF: 100}
		caps, plf, hasPLF := strings.Cut(s, "@")
		v, err := strconv.ParseFloat(caps, 64)
		if err != nil || v < 0.1 || v > 100000 {
			return nil, fmt.Errorf("caps.targets: %q: CAPS must be 0.1..100000", s)
		}
		t.CAPS = v
		if hasPLF {
			p, err := strconv.Atoi(plf)
			if err != nil || p < 1 || p > 1000 {
				return nil, fmt.Errorf("caps.targets: %q: PortLoadFactor must be 1..1000", s)
			}
			t.PLF = p
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, errors.New("caps.targets: none")
	}
	return out, nil
}

func (c Config) validate() error {
	for _, s := range c.scenarios() {
		if !slices.Contains(allScenarios, s) {
			return fmt.Errorf("--scenario: %q is not one of %s or all", s, strings.Join(allScenarios, ", "))
		}
	}
	if _, err := c.Caps.targets(); err != nil {
		return err
	}
	for v := range strings.SplitSeq(c.Ports.Views, ",") {
		if v != "live" && v != "sampled-5s" {
			return fmt.Errorf("ports.views: %q must be live or sampled-5s", v)
		}
	}
	for p := range strings.SplitSeq(c.Ingest.Protocols, ",") {
		if p != "grpc" && p != "rest" && p != "ssg" {
			return fmt.Errorf("ingest.protocols: %q must be grpc, rest or ssg", p)
		}
	}
	if _, err := c.Reads.openRates(); err != nil {
		return err
	}
	if c.ChartFormat != "svg" && c.ChartFormat != "png" {
		return fmt.Errorf("--chart-format: %q must be svg or png", c.ChartFormat)
	}
	if c.Failover.KillEvery.Duration <= c.Failover.RestartAfter.Duration {
		return errors.New("failover: kill_every must be longer than restart_after")
	}
	if c.Caps.Duration.Duration <= 0 || c.Ports.Duration.Duration <= c.Ports.Skip.Duration || c.Failover.Duration.Duration <= 0 {
		return errors.New("durations must be positive (ports.duration longer than ports.skip)")
	}
	if _, err := os.Stat("go.mod"); err != nil {
		return errors.New("run from the repository root (make bench, or build/bench there): go.mod not found")
	}
	return nil
}

var errHelp = flag.ErrHelp

func (c ReadsConfig) openRates() ([]float64, error) {
	var out []float64
	for s := range strings.SplitSeq(c.OpenRates, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 1 || v > 1_000_000 {
			return nil, fmt.Errorf("reads.open_rates: %q must be 1..1000000 calls/s", s)
		}
		out = append(out, v)
	}
	return out, nil
}
