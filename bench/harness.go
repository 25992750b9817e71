package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/bench/env"
	"github.com/seed-7bfc04c2/dialtone/bench/load"
	"github.com/seed-7bfc04c2/dialtone/internal/sim/mediasim"
	"github.com/seed-7bfc04c2/dialtone/test/cluster"
)

// harness is one run of the harness: the built binary, the temporary
// directory of the processes, the report being written.
type harness struct {
	cfg      Config
	bin      string
	tmp      string
	out      string
	progress io.Writer
	rep      *Report
	repMu    sync.Mutex
}

func (h *harness) logf(format string, a ...any) {
	fmt.Fprintf(h.progress, "%s  "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, a...)...)
}

// check records an invariant: a failure fails the run.
func (h *harness) check(scenario, name string, ok bool, detail string, a ...any) {
	h.record(Check{Scenario: scenario, Name: name, OK: ok, Detail: fmt.Sprintf(detail, a...)})
}

// target records a performance target of the issue: reported, never
// failing the run (the machine is shared and noisy).
func (h *harness) target(scenario, name string, ok bool, detail string, a ...any) {
	h.record(Check{Scenario: scenario, Name: name, Target: true, OK: ok, Detail: fmt.Sprintf(detail, a...)})
}

func (h *harness) record(c Check) {
	h.repMu.Lock()
	h.rep.Checks = append(h.rep.Checks, c)
	h.repMu.Unlock()
	kind, mark := "invariant", "ok  "
	if c.Target {
		kind = "target   "
	}
	if !c.OK {
		mark = "FAIL"
		if c.Target {
			mark = "MISS"
		}
	}
	h.logf("  %s %s %s/%s: %s", kind, mark, c.Scenario, c.Name, c.Detail)
}

// environment is a cluster and its media platform.
type environment struct {
	name string
	dir  string // data, logs, send logs
	sim  env.SimAddrs
	c    *cluster.Processes
	ms   *env.Mediasim
	pool *load.Pool
	http *http.Client
}

// startEnv starts a fresh cluster (dialer.port_view = portView) and, with
// simArgs, a mediasim process with those arguments.
func (h *harness) startEnv(ctx context.Context, name string, portView string, simArgs []string) (*environment, error) {
	sim, err := env.FreeSimAddrs()
	if err != nil {
		return nil, err
	}
	return h.startEnvAt(ctx, sim, name, portView, simArgs)
}

// startEnvAt is startEnv with mediasim on the addresses sim, chosen by the
// caller (who may capture its port first).
func (h *harness) startEnvAt(ctx context.Context, sim env.SimAddrs, name string, portView string, simArgs []string) (*environment, error) {
	dir := filepath.Join(h.tmp, name)
	t0 := time.Now()
	var profile func(id string) string
	if h.cfg.CPUProfile {
		profile = func(id string) string { return filepath.Join(h.out, "cpu-"+name+"-"+id+".pprof") }
	}
	c, err := env.StartCluster(ctx, env.ClusterOptions{
		Bin: h.bin, Dir: dir, Sim: sim, PortView: portView, CPUProfile: profile, SendLog: func(id string) string { return sendLogPath(dir, id) },
		Heartbeat: h.cfg.Heartbeat.Duration, Election: h.cfg.Election.Duration, Lease: h.cfg.Lease.Duration,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	e := &environment{name: name, dir: dir, sim: sim, c: c,
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 512}}}
	if e.pool, err = load.DialPool(cluster.GRPCAddrs(c), 4); err != nil {
		e.stop()
		return nil, err
	}
	if simArgs != nil {
		if profile != nil {
			simArgs = append(slices.Clip(simArgs), "--cpuprofile", profile("mediasim"))
		}
		if e.ms, err = env.StartMediasim(ctx, h.bin, dir, sim, cluster.GRPCAddrs(c), simArgs...); err != nil {
			e.stop()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	h.logf("%s: cluster (port_view %s) and media platform up in %s; data and logs in %s", name, c.Config().Dialer.PortView, time.Since(t0).Round(time.Millisecond), dir)
	return e, nil
}

func (e *environment) stop() {
	if e.ms != nil {
		e.ms.Stop()
	}
	if e.pool != nil {
		e.pool.Close()
	}
	_ = e.c.Close()
}

// dialerClient is a DialerService client on a running node.
func (e *environment) dialerClient(ctx context.Context) (pb.DialerServiceClient, error) {
	id, err := e.c.Leader(ctx)
	if err != nil {
		id = e.c.IDs()[0]
	}
	conn, err := e.c.Conn(id)
	if err != nil {
		return nil, err
	}
	return pb.NewDialerServiceClient(conn), nil
}

// follower is a running node that does not lead, or "".
func (e *environment) follower(ctx context.Context) string {
	leader, _ := e.c.Leader(ctx)
	for _, id := range e.c.Running() {
		if id != leader {
			return id
		}
	}
	return ""
}

// setPacing stores tenant's CAPS and PortLoadFactor (retrying through a
// leader change).
func (e *environment) setPacing(ctx context.Context, tenant string, caps float64, plf int) error {
	var err error
	for range 50 {
		var dc pb.DialerServiceClient
		if dc, err = e.dialerClient(ctx); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = dc.SetPacing(cctx, &pb.SetPacingRequest{Tenant: tenant,
			Pacing: &pb.Pacing{Caps: caps, PortLoadFactor: uint32(plf)}})
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("set pacing of %s: %w", tenant, err)
}

// dialerStatus is the leader's engine status.
func (e *environment) dialerStatus(ctx context.Context) (*pb.DialerStatus, error) {
	dc, err := e.dialerClient(ctx)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return dc.GetDialerStatus(cctx, &pb.GetDialerStatusRequest{})
}

// notifyURL is the notification receiver of mediasim.
func (e *environment) notifyURL() string { return "http://" + e.sim.Notify + "/notify" }

// createBacklog creates n requests of tenant through every node (bulk calls
// of 1000) and returns the acknowledged ids.
func (e *environment) createBacklog(ctx context.Context, tenant string, n int, maxAttempts uint32) ([]string, error) {
	const chunk, workers = 1000, 6
	var next atomic.Int64
	var mu sync.Mutex
	ids := make([]string, 0, n)
	var firstErr error
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for k := 0; ; k++ {
				from := int(next.Add(chunk)) - chunk
				if from >= n || ctx.Err() != nil {
					return
				}
				req := &pb.CreateRequestsRequest{Tenant: tenant}
				for i := from; i < min(from+chunk, n); i++ {
					req.Requests = append(req.Requests, &pb.RequestSpec{
						Token: "b" + strconv.Itoa(i), IvrProfile: "Application",
						Telnum: strconv.Itoa(15_550_000_000 + i), NotificationUrl: e.notifyURL(),
						MaxAttempts: maxAttempts, TimeToLive: "3600s",
					})
				}
				var resp *pb.CreateRequestsResponse
				var err error
				for try := range 20 {
					cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					resp, err = e.pool.Client(w, k+try).CreateRequests(cctx, req)
					cancel()
					if err == nil || ctx.Err() != nil {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = fmt.Errorf("create backlog of %s: %w", tenant, err)
					}
					mu.Unlock()
					return
				}
				for _, r := range resp.GetResults() {
					if r.GetOk() {
						ids = append(ids, r.GetId())
					} else if firstErr == nil {
						firstErr = fmt.Errorf("create backlog of %s: %s %s", tenant, r.GetCode(), r.GetReason())
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ids, firstErr
}

// simGet decodes mediasim's JSON at path.
func (e *environment) simGet(ctx context.Context, path string, v any) error {
	return e.getJSON(ctx, "http://"+e.sim.HTTP+path, v)
}

// getJSON decodes the JSON answer of a GET.
func (e *environment) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (e *environment) simStats(ctx context.Context, tenant string) (mediasim.Stats, error) {
	var out struct {
		Platforms []mediasim.Stats `json:"platforms"`
	}
	if err := e.simGet(ctx, "/stats?tenant="+tenant, &out); err != nil {
		return mediasim.Stats{}, err
	}
	if len(out.Platforms) != 1 {
		return mediasim.Stats{}, fmt.Errorf("mediasim /stats: %d platforms for %s", len(out.Platforms), tenant)
	}
	return out.Platforms[0], nil
}

func (e *environment) simStarts(ctx context.Context, tenant string) (mediasim.CallStarts, error) {
	var out struct {
		Platforms []mediasim.CallStarts `json:"platforms"`
	}
	if err := e.simGet(ctx, "/starts?tenant="+tenant, &out); err != nil {
		return mediasim.CallStarts{}, err
	}
	if len(out.Platforms) != 1 {
		return mediasim.CallStarts{}, fmt.Errorf("mediasim /starts: %d platforms for %s", len(out.Platforms), tenant)
	}
	return out.Platforms[0], nil
}

func (e *environment) simCalls(ctx context.Context, tenant string) ([]mediasim.CallRecord, error) {
	var out struct {
		Calls []mediasim.CallRecord `json:"calls"`
	}
	err := e.simGet(ctx, "/calls?tenant="+tenant, &out)
	return out.Calls, err
}

// Sample is one look at the leader's engine and the platform of a tenant.
type Sample struct {
	T float64 `json:"t_s"` // since the scenario's origin
	// From the leader's GET /v1/dialer.
	Queued     uint32 `json:"queued"`
	InProgress uint32 `json:"in_progress"`
	Budget     uint32 `json:"port_budget"`
	PortsInUse uint32 `json:"ports_in_use_reported"`
	PortsTotal uint32 `json:"ports_total"`
	Leader     string `json:"leader,omitempty"`
	// From the platform (mediasim /stats): the truth.
	PlatformInUse int64  `json:"platform_in_use"`
	Placed        uint64 `json:"placed"`
	Refused       uint64 `json:"refused"`
}

// sampler looks at tenant every period until stopped.
type sampler struct {
	stop    context.CancelFunc
	done    chan struct{}
	samples []Sample
}

func (e *environment) startSampler(ctx context.Context, tenant string, origin time.Time, every time.Duration) *sampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &sampler{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			smp := Sample{T: time.Since(origin).Seconds()}
			if st, err := e.dialerStatus(ctx); err == nil {
				smp.Leader = st.GetNodeId()
				for _, ts := range st.GetTenants() {
					if ts.GetTenant() == tenant {
						smp.Queued, smp.InProgress, smp.Budget = ts.GetQueued(), ts.GetInProgress(), ts.GetPortBudget()
						smp.PortsInUse, smp.PortsTotal = ts.GetPortsInUse(), ts.GetPortsTotal()
					}
				}
			}
			if ms, err := e.simStats(ctx, tenant); err == nil {
				smp.PlatformInUse, smp.Placed, smp.Refused = ms.InProgress, ms.Placed, ms.Refused
			}
			if ctx.Err() != nil {
				return
			}
			s.samples = append(s.samples, smp)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// finish stops the sampler and returns its samples.
func (s *sampler) finish() []Sample {
	s.stop()
	<-s.done
	return s.samples
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// waitFor polls cond every 100ms until it holds or within passes.
func waitFor(ctx context.Context, within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) || sleepCtx(ctx, 100*time.Millisecond) != nil {
			return false
		}
	}
	return true
}
