// Command createbench measures Dialtone's create throughput and latency
// against a three-node cluster.
//
// By default it starts the three nodes inside this process on loopback (data
// in a temporary directory, removed at exit); with --addrs it loads an
// already-running cluster through the given gRPC addresses instead. Each
// scenario runs closed-loop writers that call RequestService.CreateRequests
// round-robin across every node, so followers forward to the leader as they
// would for real clients. After a warm-up, calls, records and call latencies
// are measured for --duration. At the end every acknowledged record must be
// stored: the program exits non-zero when one is missing.
//
//	go run ./bench/cmd/createbench --scenario all --duration 10s
//	go run ./bench/cmd/createbench --addrs 127.0.0.1:9081,127.0.0.1:9082,127.0.0.1:9083
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/bench/load"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/test/cluster"
)

type options struct {
	scenario    string
	duration    time.Duration
	warmup      time.Duration
	writers     int
	batch       int
	addrs       string
	connsPer    int
	jsonFile    string
	cpuProfile  string
	maxRecords  uint64
	callTimeout time.Duration
	tenant      string
	logLevel    string
}

// Machine describes where the benchmark ran.
type Machine struct {
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
}

// Latency quantiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// Result is one scenario's outcome.
type Result struct {
	Scenario      string           `json:"scenario"`
	Tenant        string           `json:"tenant"`
	Writers       int              `json:"writers"`
	Batch         int              `json:"batch"`
	Seconds       float64          `json:"seconds"`
	Calls         int64            `json:"calls"`
	Records       int64            `json:"records"`
	CallsPerSec   float64          `json:"calls_per_sec"`
	RecordsPerSec float64          `json:"records_per_sec"`
	Latency       Latency          `json:"latency"`
	Errors        map[string]int64 `json:"errors"`
	ItemFailures  map[string]int64 `json:"item_failures"`
	Acked         int64            `json:"acked_records_total"`
}

// Verification compares acknowledged with stored records.
type Verification struct {
	Method string           `json:"method"`
	Acked  int64            `json:"acked"`
	Stored map[string]int64 `json:"stored"`
	OK     bool             `json:"ok"`
	Detail string           `json:"detail,omitempty"`
}

// Report is the whole run, as written by --json.
type Report struct {
	Started time.Time    `json:"started"`
	Command string       `json:"command"`
	Machine Machine      `json:"machine"`
	Mode    string       `json:"mode"`
	Addrs   []string     `json:"addrs"`
	Results []Result     `json:"results"`
	Verify  Verification `json:"verify"`
}

func main() {
	var o options
	flag.StringVar(&o.scenario, "scenario", "all", "single, bulk or all")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per scenario")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each scenario's measurement")
	flag.IntVar(&o.writers, "writers", 0, "concurrent writers (0: 256 for single, 64 for bulk)")
	flag.IntVar(&o.batch, "batch", 0, "requests per call (0: 1 for single, 100 for bulk)")
	flag.StringVar(&o.addrs, "addrs", "", "comma-separated gRPC addresses of a running cluster (default: start 3 nodes in-process)")
	flag.IntVar(&o.connsPer, "conns", 4, "gRPC client connections per node")
	flag.StringVar(&o.jsonFile, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the load phase to this file")
	flag.Uint64Var(&o.maxRecords, "max-records", 100_000_000, "limits.max_records of the in-process cluster")
	flag.DurationVar(&o.callTimeout, "call-timeout", 10*time.Second, "deadline of one CreateRequests call")
	flag.StringVar(&o.tenant, "tenant", "bench", "tenant prefix; each scenario writes to its own tenant")
	flag.StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "createbench: --log-level:", err)
		os.Exit(2)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	// The in-process nodes log through their own level, so that the
	// expected Raft transport errors of a cluster-wide shutdown can be muted.
	nodeLevel := new(slog.LevelVar)
	nodeLevel.Set(level)
	nodeLog := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: nodeLevel}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o, os.Stdout, nodeLog, nodeLevel)
	stop()
	if err != nil {
		slog.Error("createbench failed", "err", err)
		os.Exit(1)
	}
}

func scenarios(o options) ([]scenario, error) {
	var out []scenario
	switch o.scenario {
	case "single":
		out = []scenario{{"single", 256, 1}}
	case "bulk":
		out = []scenario{{"bulk", 64, 100}}
	case "all":
		out = []scenario{{"single", 256, 1}, {"bulk", 64, 100}}
	default:
		return nil, fmt.Errorf("--scenario %q: want single, bulk or all", o.scenario)
	}
	for i := range out {
		if o.writers > 0 {
			out[i].Writers = o.writers
		}
		if o.batch > 0 {
			out[i].Batch = o.batch
		}
	}
	return out, nil
}

func commandLine() string {
	args := []string{filepath.Base(os.Args[0])}
	for _, a := range os.Args[1:] {
		if a == "" || strings.ContainsAny(a, " \t\"'$") {
			a = strconv.Quote(a)
		}
		args = append(args, a)
	}
	return strings.Join(args, " ")
}

func run(ctx context.Context, o options, out io.Writer, nodeLog *slog.Logger, nodeLevel *slog.LevelVar) (err error) {
	scs, err := scenarios(o)
	if err != nil {
		return err
	}
	if o.connsPer < 1 || o.duration <= 0 || o.warmup < 0 {
		return errors.New("--conns must be positive, --duration positive and --warmup not negative")
	}
	rep := Report{
		Started: time.Now().UTC(),
		Command: commandLine(),
		Machine: Machine{runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH},
		Mode:    "in-process",
	}
	fmt.Fprintf(out, "command:  %s\n", rep.Command)
	fmt.Fprintf(out, "machine:  %d CPUs, GOMAXPROCS %d, %s %s/%s\n", rep.Machine.NumCPU, rep.Machine.GOMAXPROCS, rep.Machine.GoVersion, rep.Machine.OS, rep.Machine.Arch)
	fmt.Fprintf(out, "started:  %s\n", rep.Started.Format(time.RFC3339))

	var lc *cluster.InProcess
	if o.addrs == "" {
		t0 := time.Now()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		lc, err = cluster.StartInProcess(sctx, cluster.InProcessOptions{Logger: nodeLog, Options: cluster.Options{
			Edit: func(c *config.Config) { c.Limits.MaxRecords = o.maxRecords },
		}})
		cancel()
		if err != nil {
			return err
		}
		defer func() {
			if nodeLevel.Level() > slog.LevelDebug {
				nodeLevel.Set(slog.LevelError + 4)
			}
			if err := lc.Close(); err != nil {
				slog.Warn("cluster stop", "err", err)
			}
		}()
		rep.Addrs = cluster.GRPCAddrs(lc)
		leader, _ := lc.Leader(ctx)
		slog.Info("cluster formed", "took", time.Since(t0), "leader", leader)
	} else {
		rep.Mode = "external"
		for a := range strings.SplitSeq(o.addrs, ",") {
			if a = strings.TrimSpace(a); a != "" {
				rep.Addrs = append(rep.Addrs, a)
			}
		}
	}
	fmt.Fprintf(out, "cluster:  %s, gRPC %s, %d client connections per node\n\n", rep.Mode, strings.Join(rep.Addrs, " "), o.connsPer)

	p, err := load.DialPool(rep.Addrs, o.connsPer)
	if err != nil {
		return err
	}
	defer p.Close()
	if lc == nil {
		if err := waitReady(ctx, p, o.tenant, 30*time.Second); err != nil {
			return err
		}
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile() // also on early return; a second stop is a no-op
	}

	runID := time.Now().Unix()
	for _, sc := range scs {
		if ctx.Err() != nil {
			break
		}
		tenant := fmt.Sprintf("%s-%d-%s", o.tenant, runID, sc.Name)
		fmt.Fprintf(os.Stderr, "running %s: %d writers x %d requests/call, %s warm-up + %s ...\n", sc.Name, sc.Writers, sc.Batch, o.warmup, o.duration)
		rep.Results = append(rep.Results, result(sc, tenant, runScenario(ctx, p, sc, tenant, o.warmup, o.duration, o.callTimeout)))
	}
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}

	if lc != nil {
		rep.Verify = verifyLocal(lc, rep.Results)
	} else {
		rep.Verify = verifyList(context.WithoutCancel(ctx), p, rep.Results)
	}

	printTable(out, rep)
	if o.jsonFile != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonFile, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if !rep.Verify.OK {
		return fmt.Errorf("verification failed: %s", rep.Verify.Detail)
	}
	return ctx.Err()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func result(sc scenario, tenant string, st *load.Result) Result {
	return Result{
		Scenario: sc.Name, Tenant: tenant, Writers: sc.Writers, Batch: sc.Batch,
		Seconds: st.Seconds, Calls: st.Calls, Records: st.Records,
		CallsPerSec: st.CallsPerSec(), RecordsPerSec: st.RecordsPerSec(),
		Errors: st.Errors, ItemFailures: st.ItemFailures, Acked: st.Acked,
		Latency: Latency{
			P50: ms(st.Quantile(0.50)),
			P90: ms(st.Quantile(0.90)),
			P99: ms(st.Quantile(0.99)),
			Max: ms(st.Quantile(1)),
		},
	}
}

func printTable(out io.Writer, rep Report) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\twriters\tbatch\tcalls\tcalls/s\trecords/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t\n",
			r.Scenario, r.Writers, r.Batch, r.Calls, r.CallsPerSec, r.RecordsPerSec,
			r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max)
	}
	_ = tw.Flush()
	fmt.Fprintln(out)
	for _, r := range rep.Results {
		fmt.Fprintf(out, "%s: failed calls (whole run incl. warm-up): %s; failed records: %s\n", r.Scenario, load.Counts(r.Errors), load.Counts(r.ItemFailures))
	}
	v := rep.Verify
	if v.OK {
		fmt.Fprintf(out, "verify (%s): OK, %d acknowledged records stored (%s)\n", v.Method, v.Acked, load.Counts(v.Stored))
		if v.Detail != "" {
			fmt.Fprintf(out, "  note: %s\n", v.Detail)
		}
		return
	}
	fmt.Fprintln(out, "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!")
	fmt.Fprintf(out, "!!! VERIFY FAILED (%s): %s\n", v.Method, v.Detail)
	fmt.Fprintf(out, "!!! acknowledged %d, stored %s\n", v.Acked, load.Counts(v.Stored))
	fmt.Fprintln(out, "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!")
}

// waitReady waits until every address answers a linearizable read, which
// needs a leader.
func waitReady(ctx context.Context, p *load.Pool, tenant string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i, cl := range p.Clients {
		for {
			_, err := cl[0].ListRequests(ctx, &pb.ListRequestsRequest{Tenant: tenant, PageSize: 1, Consistency: "linearizable"})
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("node %d not ready: %w", i, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// verifyLocal checks each in-process node's record count against the
// acknowledged total. The cluster is fresh, so every stored record is ours.
// Followers may still be applying, so it waits a little for them.
func verifyLocal(lc *cluster.InProcess, results []Result) Verification {
	v := Verification{Method: "FSM().Count() on every node", Stored: map[string]int64{}}
	for _, r := range results {
		v.Acked += r.Acked
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		short := false
		for _, id := range lc.Running() {
			nd := lc.Node(id)
			c := int64(nd.FSM().Count())
			v.Stored[nd.Cluster().NodeID()] = c
			short = short || c < v.Acked
		}
		if !short || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := map[string]int64{}
	for id := range v.Stored {
		want[id] = v.Acked
	}
	return judge(v, want)
}

// verifyList walks each scenario's tenant with ListRequests through the
// first address; the first page is linearizable, so every acknowledged
// write is visible.
func verifyList(ctx context.Context, p *load.Pool, results []Result) Verification {
	v := Verification{Method: "ListRequests page walk", Stored: map[string]int64{}}
	cl := p.Clients[0][0]
	for _, r := range results {
		v.Acked += r.Acked
		var n int64
		req := &pb.ListRequestsRequest{Tenant: r.Tenant, PageSize: 1000, Consistency: "linearizable"}
		for {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			resp, err := cl.ListRequests(cctx, req)
			cancel()
			if err != nil {
				v.Detail = fmt.Sprintf("list %s: %v", r.Tenant, err)
				return v
			}
			n += int64(len(resp.GetRequests()))
			if resp.GetNextPageToken() == "" {
				break
			}
			req.PageToken, req.Consistency, req.MinIndex = resp.GetNextPageToken(), "local", resp.GetMeta().GetAppliedIndex()
		}
		v.Stored[r.Tenant] = n
	}
	want := map[string]int64{}
	for _, r := range results {
		want[r.Tenant] = r.Acked
	}
	return judge(v, want)
}

// judge compares stored with acknowledged counts per key (node or tenant).
// Fewer stored than acknowledged is a lost write; more is allowed: calls
// that failed with an unknown outcome may still have been committed.
func judge(v Verification, want map[string]int64) Verification {
	v.OK = true
	var bad, extra []string
	for k, s := range v.Stored {
		switch a := want[k]; {
		case s < a:
			bad = append(bad, fmt.Sprintf("%s: %d acknowledged records missing (acked %d, stored %d)", k, a-s, a, s))
		case s > a:
			extra = append(extra, fmt.Sprintf("%s: %d stored beyond the acknowledged (calls with unknown outcome)", k, s-a))
		}
	}
	sort.Strings(bad)
	sort.Strings(extra)
	if len(bad) > 0 {
		v.OK, v.Detail = false, strings.Join(bad, "; ")
	} else {
		v.Detail = strings.Join(extra, "; ")
	}
	return v
}
