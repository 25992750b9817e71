// Command portbench measures Dialtone's port-usage service on a three-node
// cluster:
//
//   - ingest: many publisher streams (PortUsageService.Publish) into one
//     node, which relays every accepted report to its two peers. Measures
//     acknowledged reports/s, how stale the peers' view of a server is
//     (relay lag) and, after the load stops, that both peers converge on
//     every server's last report.
//   - read: simulated media servers publish at 1/s while closed-loop HTTP
//     workers call GET /v1/port-usage on a follower. Measures requests/s and
//     latency quantiles.
//
// By default it starts the nodes inside this process on loopback (data in a
// temporary directory, removed at exit); with --addrs (gRPC) and --http it
// loads a running cluster, e.g. `dialtone dev`. Runs stop by themselves.
//
//	go run ./bench/cmd/portbench --scenario all
//	go run ./bench/cmd/portbench --addrs 127.0.0.1:9081,127.0.0.1:9082,127.0.0.1:9083 --http 127.0.0.1:8082
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/client"
	"github.com/seed-7bfc04c2/dialtone/portpub"
	"github.com/seed-7bfc04c2/dialtone/test/cluster"
)

type options struct {
	scenario string
	duration time.Duration
	warmup   time.Duration
	addrs    string
	httpAddr string
	httpAll  string
	// ingest
	streams int
	window  int
	conns   int
	// read
	readServers int
	conc        int
	user        string
	bearer      string
	logLevel    string
}

func main() {
	var o options
	flag.StringVar(&o.scenario, "scenario", "all", "ingest, read or all")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per scenario")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each scenario's measurement")
	flag.StringVar(&o.addrs, "addrs", "", "gRPC addresses of a running cluster (the first takes the ingest load); empty: start 3 nodes in this process")
	flag.StringVar(&o.httpAddr, "http", "", "with --addrs: HTTP address of the node to read from (a follower)")
	flag.StringVar(&o.httpAll, "http-all", "", "with --addrs: the nodes' HTTP addresses in --addrs order, to count relayed reports from /metrics")
	flag.IntVar(&o.streams, "streams", 200, "ingest: concurrent publisher streams (one media server each)")
	flag.IntVar(&o.window, "window", 8, "ingest: unacknowledged reports in flight per stream")
	flag.IntVar(&o.conns, "conns", 4, "ingest: gRPC connections the streams share")
	flag.IntVar(&o.readServers, "read-servers", 100, "read: simulated media servers publishing at 1/s during the read test")
	flag.IntVar(&o.conc, "conc", 8, "read: concurrent HTTP workers")
	flag.StringVar(&o.user, "user", "", "basic-auth user (password from DIALTONE_PASSWORD) with publish and read roles")
	flag.StringVar(&o.bearer, "bearer", "", "bearer token with publish and read roles")
	flag.StringVar(&o.logLevel, "log-level", "none", "log level of in-process nodes and publishers (none, debug, info, warn, error)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "portbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	log := slog.New(slog.DiscardHandler)
	if o.logLevel != "none" {
		var level slog.Level
		if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
			return err
		}
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	fmt.Printf("machine: NumCPU %d, GOMAXPROCS %d, %s %s/%s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)

	var grpcAddrs, httpAddrs []string
	var readHTTP string
	if o.addrs == "" {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		lc, err := cluster.StartInProcess(sctx, cluster.InProcessOptions{Logger: log})
		cancel()
		if err != nil {
			return err
		}
		defer func() { _ = lc.Close() }()
		grpcAddrs, httpAddrs = cluster.GRPCAddrs(lc), cluster.HTTPAddrs(lc)
		// Read from a follower; ingest into the first node.
		leader, _ := lc.Leader(ctx)
		for _, id := range lc.IDs() {
			if id != leader {
				readHTTP = lc.HTTPAddr(id)
			}
		}
		fmt.Printf("cluster: 3 nodes in this process, leader %s, gRPC %s, reads from follower http://%s\n", leader, strings.Join(grpcAddrs, ","), readHTTP)
	} else {
		grpcAddrs = strings.Split(o.addrs, ",")
		readHTTP = o.httpAddr
		if o.httpAll != "" {
			httpAddrs = strings.Split(o.httpAll, ",")
		}
		if len(grpcAddrs) < 2 {
			return errors.New("--addrs: want the ingest node and at least one peer")
		}
	}
	var dial []grpc.DialOption
	var authHeader string // for /metrics
	var restAuth []client.Option
	switch {
	case o.user != "":
		pw := os.Getenv("DIALTONE_PASSWORD")
		dial = append(dial, portpub.BasicAuth(o.user, pw))
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth(o.user, pw)
		authHeader = req.Header.Get("Authorization")
		restAuth = append(restAuth, client.WithBasicAuth(o.user, pw))
	case o.bearer != "":
		dial = append(dial, portpub.BearerToken(o.bearer))
		authHeader = "Bearer " + o.bearer
		restAuth = append(restAuth, client.WithBearerToken(o.bearer))
	}
	authDial := dial
	dial = append(portpub.DefaultDialOptions(), authDial...)

	failed := false
	if o.scenario == "ingest" || o.scenario == "all" {
		ok, err := ingest(ctx, o, grpcAddrs, httpAddrs, dial, authHeader)
		if err != nil {
			return err
		}
		failed = failed || !ok
	}
	if o.scenario == "read" || o.scenario == "all" {
		if readHTTP == "" {
			return errors.New("read: --http is required with --addrs")
		}
		if err := read(ctx, o, grpcAddrs, readHTTP, authDial, restAuth, log); err != nil {
			return err
		}
	}
	if failed {
		return errors.New("VERIFY FAILED")
	}
	return nil
}

// ---- ingest ----

// finalInUse marks each stream's last report, so the peers' convergence on
// it can be checked.
const (
	benchTotal = 1000
	finalInUse = 999
)

func ingest(ctx context.Context, o options, addrs, httpAddrs []string, dial []grpc.DialOption, authHeader string) (bool, error) {
	run := fmt.Sprintf("pb%d", time.Now().Unix()%100000)
	fmt.Printf("\n== ingest: %d streams x window %d into %s over %d connections; peers %s; %s warm-up + %s measured\n",
		o.streams, o.window, addrs[0], o.conns, strings.Join(addrs[1:], ","), o.warmup, o.duration)
	var conns []*grpc.ClientConn
	for range o.conns {
		cc, err := grpc.NewClient(addrs[0], dial...)
		if err != nil {
			return false, err
		}
		defer cc.Close()
		conns = append(conns, cc)
	}
	peers := make([]pb.PortUsageServiceClient, 0, len(addrs)-1)
	for _, a := range addrs[1:] {
		cc, err := grpc.NewClient(a, dial...)
		if err != nil {
			return false, err
		}
		defer cc.Close()
		peers = append(peers, pb.NewPortUsageServiceClient(cc))
	}
	self := pb.NewPortUsageServiceClient(conns[0])

	before := scrapeAll(httpAddrs, authHeader)
	var acked, sendErrs atomic.Int64
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup
	lastOK := make([]atomic.Bool, o.streams)
	for i := range o.streams {
		wg.Go(func() {
			id := fmt.Sprintf("%s-%d", run, i)
			ok, err := publishFlood(loadCtx, pb.NewPortUsageServiceClient(conns[i%len(conns)]), id, o.window, &acked)
			if err != nil && ctx.Err() == nil {
				sendErrs.Add(1)
				fmt.Fprintf(os.Stderr, "stream %s: %v\n", id, err)
			}
			lastOK[i].Store(ok)
		})
	}
	// Staleness sampler: how old the newest report of a sample server is,
	// as seen by the ingest node and by each peer (last_report_unix_ms is
	// the time the ingest node received it; relayed copies keep it).
	var (
		stMu       sync.Mutex
		selfStale  []float64
		peerStale  []float64
		sampling   atomic.Bool
		sampleDone = make(chan struct{})
	)
	go func() {
		defer close(sampleDone)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		k := 0
		for {
			select {
			case <-loadCtx.Done():
				return
			case <-t.C:
			}
			id := fmt.Sprintf("%s-%d", run, k%o.streams)
			k++
			for j, c := range append([]pb.PortUsageServiceClient{self}, peers...) {
				cctx, cancel := context.WithTimeout(loadCtx, time.Second)
				s, err := c.GetServer(cctx, &pb.GetServerRequest{Id: id})
				now := time.Now().UnixMilli()
				cancel()
				if err != nil || !sampling.Load() {
					continue
				}
				stMu.Lock()
				age := float64(now - s.GetLastReportUnixMs())
				if j == 0 {
					selfStale = append(selfStale, age)
				} else {
					peerStale = append(peerStale, age)
				}
				stMu.Unlock()
			}
		}
	}()

	if !sleepCtx(ctx, o.warmup) {
		return false, ctx.Err()
	}
	sampling.Store(true)
	a0, t0 := acked.Load(), time.Now()
	if !sleepCtx(ctx, o.duration) {
		return false, ctx.Err()
	}
	a1, t1 := acked.Load(), time.Now()
	sampling.Store(false)
	stopLoad()
	wg.Wait()
	<-sampleDone
	rate := float64(a1-a0) / t1.Sub(t0).Seconds()
	fmt.Printf("accepted: %d reports in %.1fs = %.0f reports/s (stream errors: %d)\n", a1-a0, t1.Sub(t0).Seconds(), rate, sendErrs.Load())
	stMu.Lock()
	fmt.Printf("age of a server's newest report (ms):  ingest node %s\n", quantiles(selfStale))
	fmt.Printf("                                        peers       %s\n", quantiles(peerStale))
	stMu.Unlock()

	// Convergence: every stream's final report (in use = 999) reaches both
	// peers.
	want := 0
	for i := range lastOK {
		if lastOK[i].Load() {
			want++
		}
	}
	stopped := time.Now()
	deadline := stopped.Add(10 * time.Second)
	ok := true
	for j, c := range peers {
		for {
			resp, err := c.ListServers(ctx, &pb.ListServersRequest{})
			got := 0
			if err == nil {
				for _, s := range resp.GetServers() {
					if strings.HasPrefix(s.GetId(), run+"-") && s.GetPortsInUse() == finalInUse {
						got++
					}
				}
			}
			if got >= want {
				fmt.Printf("peer %s: all %d servers' final reports present %s after the load stopped\n", addrs[j+1], want, time.Since(stopped).Round(time.Millisecond))
				break
			}
			if time.Now().After(deadline) {
				fmt.Printf("VERIFY FAILED: peer %s has %d of %d final reports (err %v)\n", addrs[j+1], got, want, err)
				ok = false
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if before != nil {
		// Relay completeness over the whole run: what the ingest node
		// queued for its peers against what each peer accepted from it.
		after := scrapeAll(httpAddrs, authHeader)
		out := after[0]["relayed_out"] - before[0]["relayed_out"]
		fmt.Printf("relay: ingest node accepted %.0f and queued %.0f for its peers\n", after[0]["ingested"]-before[0]["ingested"], out)
		for j := 1; j < len(after); j++ {
			in := after[j]["relayed_in"] - before[j]["relayed_in"]
			dup := after[j]["dropped_duplicate"] - before[j]["dropped_duplicate"]
			old := after[j]["dropped_too_old"] - before[j]["dropped_too_old"]
			fmt.Printf("relay: peer %s accepted %.0f relayed reports (%.2f%% of those queued), dropped %.0f as duplicate/out of order, %.0f as too old\n",
				addrs[j], in, 100*in/max(out, 1), dup, old)
		}
	}
	return ok, nil
}

// scrapeAll reads dialtone_port_usage_reports_total by event from every
// node's /metrics (nil when there are no HTTP addresses or one fails).
func scrapeAll(httpAddrs []string, authHeader string) []map[string]float64 {
	if len(httpAddrs) == 0 {
		return nil
	}
	var out []map[string]float64
	for _, a := range httpAddrs {
		req, _ := http.NewRequest("GET", "http://"+a+"/metrics", nil)
		if authHeader != "" {
			req.Header.Set("Authorization", authHeader)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "metrics:", err)
			return nil
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := map[string]float64{}
		for line := range strings.SplitSeq(string(b), "\n") {
			if !strings.HasPrefix(line, "dialtone_port_usage_reports_total{") {
				continue
			}
			_, rest, _ := strings.Cut(line, `event="`)
			ev, _, _ := strings.Cut(rest, `"`)
			var v float64
			_, _ = fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
			m[ev] += v
		}
		out = append(out, m)
	}
	return out
}

// publishFlood streams reports for server id as fast as the window allows
// until ctx ends, then sends a final report (in use = finalInUse) and waits
// for its ack; ok says that it was acknowledged.
func publishFlood(ctx context.Context, c pb.PortUsageServiceClient, id string, window int, acked *atomic.Int64) (ok bool, err error) {
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.Publish(sctx)
	if err != nil {
		return false, err
	}
	credits := make(chan struct{}, window)
	for range window {
		credits <- struct{}{}
	}
	var lastAck atomic.Uint64
	recvDone := make(chan error, 1)
	go func() {
		for {
			a, err := stream.Recv()
			if err != nil {
				recvDone <- err
				return
			}
			lastAck.Store(a.GetSeq())
			acked.Add(1)
			credits <- struct{}{}
		}
	}()
	seq := uint64(time.Now().UnixMicro())
	rep := &pb.PortReport{ServerId: id, Address: "198.51.100.1", Tenant: "bench", TotalPorts: benchTotal}
	send := func(inUse uint32) error {
		seq++
		rep.Seq, rep.PortsInUse, rep.TimeUnixMs = seq, inUse, time.Now().UnixMilli()
		return stream.Send(rep)
	}
	for n := uint32(0); ; n++ {
		select {
		case <-ctx.Done():
			// Final report: wait for credit, send, wait for its ack.
			for range window {
				select {
				case <-credits:
				case err := <-recvDone:
					return false, err
				case <-time.After(5 * time.Second):
					return false, errors.New("no credit for the final report")
				}
			}
			if err := send(finalInUse); err != nil {
				return false, err
			}
			final := seq
			deadline := time.Now().Add(5 * time.Second)
			for lastAck.Load() < final {
				if time.Now().After(deadline) {
					return false, errors.New("final report not acknowledged")
				}
				time.Sleep(5 * time.Millisecond)
			}
			_ = stream.CloseSend()
			return true, nil
		case <-credits:
			if err := send(n % finalInUse); err != nil {
				return false, err
			}
		case err := <-recvDone:
			return false, err
		}
	}
}

// ---- read ----

func read(ctx context.Context, o options, grpcAddrs []string, httpAddr string, authDial []grpc.DialOption, restAuth []client.Option, log *slog.Logger) error {
	fmt.Printf("\n== read: GET http://%s/v1/port-usage, %d workers; %d simulated servers publishing at 1/s; %s warm-up + %s measured\n",
		httpAddr, o.conc, o.readServers, o.warmup, o.duration)
	simCtx, stopSim := context.WithCancel(ctx)
	defer stopSim()
	sim := portpub.NewSim(portpub.SimOptions{
		Servers: o.readServers, Ports: 100, Tenant: "bench-read", IDPrefix: fmt.Sprintf("rd%d", time.Now().Unix()%100000),
		Endpoints: grpcAddrs, DialOptions: authDial, Logger: log,
	})
	var simWG sync.WaitGroup
	simWG.Go(func() { _ = sim.Run(simCtx) })
	simWG.Go(func() { sim.RandomWalk(simCtx, time.Second, rand.New(rand.NewPCG(1, 2))) })
	defer simWG.Wait()
	defer stopSim()

	tr := &http.Transport{MaxIdleConns: o.conc * 2, MaxIdleConnsPerHost: o.conc * 2}
	defer tr.CloseIdleConnections()
	rc, err := client.New(httpAddr, append(restAuth, client.WithHTTPClient(&http.Client{Transport: tr}), client.WithTimeout(5*time.Second))...)
	if err != nil {
		return err
	}
	// Wait until the follower shows every simulated server.
	deadline := time.Now().Add(20 * time.Second)
	for {
		u, err := rc.GetPortUsage(ctx)
		if err == nil && benchReadServers(u) >= o.readServers {
			fmt.Printf("follower answers with all %d servers\n", o.readServers)
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("read: follower does not show the simulated servers (%d, err %v)", benchReadServers(u), err)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}

	var (
		measuring atomic.Bool
		stop      atomic.Bool
		mu        sync.Mutex
		lat       []float64
		errs      atomic.Int64
		wg        sync.WaitGroup
	)
	for range o.conc {
		wg.Go(func() {
			var mine []float64
			for !stop.Load() {
				t := time.Now()
				_, err := rc.GetPortUsage(ctx)
				d := time.Since(t)
				if err != nil {
					errs.Add(1)
					continue
				}
				if measuring.Load() {
					mine = append(mine, float64(d.Microseconds())/1000)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	sleepCtx(ctx, o.warmup)
	measuring.Store(true)
	t0 := time.Now()
	sleepCtx(ctx, o.duration)
	measuring.Store(false)
	el := time.Since(t0)
	stop.Store(true)
	wg.Wait()
	fmt.Printf("requests: %d in %.1fs = %.0f requests/s, errors %d\n", len(lat), el.Seconds(), float64(len(lat))/el.Seconds(), errs.Load())
	fmt.Printf("latency (ms): %s\n", quantiles(lat))
	return nil
}

// benchReadServers is the server count of the bench-read tenant.
func benchReadServers(u *pb.Usage) int {
	for _, t := range u.GetTenants() {
		if t.GetTenant() == "bench-read" {
			return int(t.GetServers())
		}
	}
	return 0
}

// ---- helpers ----

func quantiles(v []float64) string {
	if len(v) == 0 {
		return "no samples"
	}
	s := slices.Clone(v)
	slices.Sort(s)
	q := func(p float64) float64 { return s[min(int(p*float64(len(s))), len(s)-1)] }
	var sum float64
	for _, x := range s {
		sum += x
	}
	return fmt.Sprintf("n=%d mean %.2f p50 %.2f p90 %.2f p99 %.2f max %.2f", len(s), sum/float64(len(s)), q(0.5), q(0.9), q(0.99), s[len(s)-1])
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
