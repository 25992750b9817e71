// Package chaos runs Dialtone's chaos suite: it brings up the compose
// deployment (deploy/compose) under its own project name and subnets,
// drives a steady load of creates, linearizable gets and cancels while the
// dialer runs at a set CAPS, applies faults in turn (SIGKILL the leader,
// SIGKILL a follower, pause the leader, cut the leader off the cluster
// network, restart every node at once, add two nodes and remove two),
// drains, and records a history.History: every client operation, every
// call the media platform saw, every notification received, the final
// state of every request. The checkers of chaos/check then judge it.
//
// Decisions: a deposed leader is caught by its calls, not by timing: every
// call carries the node that placed it and its call UUID, and a call whose
// attempt the replicated state had already closed (Interrupted, by the
// next leader) when the platform saw it was placed by a deposed leader
// (check.DialOnlyCommitted). Writes whose answer never came are retried
// with the same idempotency key until definite, so each create is one
// operation. The runner restarts what it kills itself (restart policy
// "no"), and always removes its containers, networks and volumes.
package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/test/chaos/check"
	"github.com/seed-7bfc04c2/dialtone/test/chaos/history"
)

// Options configure a run.
type Options struct {
	OutDir         string // where history.json, report.txt, logs go
	ComposeFile    string
	ConfigTemplate string // the cluster TOML with the default subnets
	Seed           int64
	Faults         []string // in order; see FaultNames
	Rounds         int      // times the fault list is applied (membership only in the last)

	Warmup  time.Duration // load before the first fault
	Hold    time.Duration // how long a fault lasts before it is healed
	Recover time.Duration // load after healing, before the next fault

	CAPS         float64
	Servers      int
	PortsPerSrv  int
	Ring, Talk   string
	Mix          string
	TTL          time.Duration
	MaxAttempts  uint32
	CreateRate   float64
	GetRate      float64
	CancelRate   float64
	Clients      int
	OpTimeout    time.Duration
	CreateRetry  time.Duration
	DrainTimeout time.Duration
	CheckTimeout time.Duration // porcupine
	Keep         bool          // leave the deployment up
	Log          func(format string, args ...any)
}

// FaultNames are the faults in their default order.
var FaultNames = []string{"kill-leader", "kill-follower", "pause-leader", "partition-leader", "restart-all", "membership"}

// node is one cluster node as the runner tracks it.
type node struct {
	id, clusterIP, clientIP string
	up                      bool // running and not paused: clients use it
	removed                 bool // left the cluster for good
	started                 bool // has a container
}

// Runner is one run.
type Runner struct {
	opts   Options
	dep    *Deployment
	api    *api
	mu     sync.Mutex
	nodes  map[string]*node
	obs    []history.LeaderObs
	latest map[string]history.LeaderObs
	faults []history.Fault
	log    func(format string, args ...any)
}

// Result is a run's history, its checkers' reports and the measured
// unavailability per fault.
type Result struct {
	History      *history.History
	Reports      []check.Report
	Availability []Availability
}

// OK reports whether every checker passed.
func (r *Result) OK() bool {
	for _, rep := range r.Reports {
		if !rep.OK() {
			return false
		}
	}
	return true
}

// Run performs one chaos run. The deployment is removed at the end, also on
// failure (unless Options.Keep).
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	outAbs, err := filepath.Abs(o.OutDir)
	if err != nil {
		return nil, err
	}
	composeAbs, err := filepath.Abs(o.ComposeFile)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 7))
	project := fmt.Sprintf("dtchaos%d", time.Now().UnixNano()%1_000_000_000)
	tmpl, err := os.ReadFile(o.ConfigTemplate)
	if err != nil {
		return nil, fmt.Errorf("cluster TOML: %w", err)
	}
	r := &Runner{
		opts: o, log: o.Log, nodes: map[string]*node{}, latest: map[string]history.LeaderObs{},
		api: newAPI("acme"),
	}
	// Subnets unique to the run (retried when Docker finds them taken).
	for try := 0; ; try++ {
		b := 100 + rng.IntN(150)
		c := rng.IntN(250)
		clusterNet, clientNet := fmt.Sprintf("10.%d.%d", b, c), fmt.Sprintf("10.%d.%d", b, c+1)
		cfgPath := filepath.Join(outAbs, "cluster.toml")
		toml := strings.ReplaceAll(string(tmpl), "10.213.1.", clusterNet+".")
		if err := os.WriteFile(cfgPath, []byte(toml), 0o644); err != nil {
			return nil, err
		}
		r.dep = &Deployment{
			Project: project, ComposeFile: composeAbs, Config: cfgPath, ClusterNet: clusterNet, ClientNet: clientNet,
			MediasimArgs: fmt.Sprintf("--servers %d --ports %d --ring %s --talk %s --mix %s --seed %d",
				o.Servers, o.PortsPerSrv, o.Ring, o.Talk, o.Mix, o.Seed),
			Log: o.Log,
		}
		r.log("deployment %s: cluster net %s.0/24, client net %s.0/24", project, clusterNet, clientNet)
		err = r.dep.Up(ctx)
		if err == nil {
			break
		}
		_ = r.dep.Down()
		if try == 2 || !strings.Contains(err.Error(), "overlap") {
			return nil, fmt.Errorf("deployment: %w", err)
		}
	}
	defer func() {
		if lerr := r.dep.Logs(filepath.Join(outAbs, "containers.log")); lerr != nil {
			r.log("saving container logs: %v", lerr)
		}
		if o.Keep {
			r.log("deployment %s left running (--keep)", project)
			return
		}
		if derr := r.dep.Down(); derr != nil {
			r.log("removing the deployment: %v", derr)
			if err == nil {
				err = derr
			}
		}
	}()
	for _, svc := range []string{"n1", "n2", "n3", "mediasim"} {
		if _, err := r.dep.Container(ctx, svc); err != nil {
			return nil, err
		}
	}
	for i := 1; i <= 5; i++ {
		r.nodes[fmt.Sprintf("n%d", i)] = &node{
			id:        fmt.Sprintf("n%d", i),
			clusterIP: fmt.Sprintf("%s.%d", r.dep.ClusterNet, 10+i),
			clientIP:  fmt.Sprintf("%s.%d", r.dep.ClientNet, 10+i),
			up:        i <= 3, started: i <= 3,
		}
	}
	return r.run(ctx, rng)
}

func (r *Runner) base(n *node) string { return "http://" + n.clientIP + ":8080" }

// pickNode chooses a node that is up (a partitioned node is up: clients
// still reach it).
func (r *Runner) pickNode(rng *rand.Rand) (string, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var up []*node
	for _, id := range []string{"n1", "n2", "n3", "n4", "n5"} {
		if n := r.nodes[id]; n.up && !n.removed {
			up = append(up, n)
		}
	}
	if len(up) == 0 {
		n := r.nodes["n1"]
		return n.id, r.base(n)
	}
	n := up[rng.IntN(len(up))]
	return n.id, r.base(n)
}

func (r *Runner) setUp(id string, up bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nodes[id].up = up
}

// watch polls every started node's view of the cluster until ctx ends.
func (r *Runner) watch(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		r.mu.Lock()
		var ns []*node
		for _, n := range r.nodes {
			if n.started && !n.removed {
				ns = append(ns, n)
			}
		}
		r.mu.Unlock()
		var wg sync.WaitGroup
		for _, n := range ns {
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
				defer cancel()
				st, err := r.api.status(cctx, r.base(n))
				if err != nil {
					return
				}
				o := history.LeaderObs{Time: time.Now(), Node: n.id, State: st.GetState(), Leader: st.GetLeaderId(), Term: st.GetTerm()}
				r.mu.Lock()
				r.obs = append(r.obs, o)
				r.latest[n.id] = o
				r.mu.Unlock()
			})
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// leader is the node that most recently said it leads (highest term),
// among those seen in the last second.
func (r *Runner) leader() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	best, term := "", uint64(0)
	for id, o := range r.latest {
		n := r.nodes[id]
		if n.removed || !n.up || time.Since(o.Time) > time.Second || o.State != "Leader" {
			continue
		}
		if o.Term >= term {
			best, term = id, o.Term
		}
	}
	return best
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLeader waits for a leader other than the excluded nodes, whose
// status was read after since, and answers it.
func (r *Runner) waitLeader(ctx context.Context, since time.Time, timeout time.Duration, exclude ...string) (string, bool) {
	var l string
	ok := waitFor(ctx, timeout, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for id, o := range r.latest {
			if o.State == "Leader" && o.Time.After(since) && !slices.Contains(exclude, id) && !r.nodes[id].removed {
				l = id
				return true
			}
		}
		return false
	})
	return l, ok
}

// waitFollowing waits until node id (re)joined: it sees a leader, and it
// is not the one it names unless it is one.
func (r *Runner) waitFollowing(ctx context.Context, id string, since time.Time, timeout time.Duration) bool {
	return waitFor(ctx, timeout, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		o, ok := r.latest[id]
		return ok && o.Time.After(since) && o.Leader != ""
	})
}

func (r *Runner) run(ctx context.Context, rng *rand.Rand) (*Result, error) {
	o := r.opts
	wctx, stopWatch := context.WithCancel(ctx)
	var watchWG sync.WaitGroup
	watchWG.Go(func() { r.watch(wctx) })
	defer func() {
		stopWatch()
		watchWG.Wait()
	}()

	start := time.Now()
	l, ok := r.waitLeader(ctx, start, 60*time.Second)
	if !ok {
		return nil, fmt.Errorf("no leader within 60s of starting the deployment")
	}
	r.log("cluster up: leader %s", l)
	// Pacing: the set CAPS at PortLoadFactor 100, and keep finished records
	// (the final reads need their attempts).
	if err := r.setPacing(ctx); err != nil {
		return nil, err
	}
	// Wait until the media platform's ports are known to the cluster.
	if !waitFor(ctx, 30*time.Second, func() bool { return r.portsKnown(ctx) }) {
		return nil, fmt.Errorf("the media platform's ports never reached the cluster")
	}

	// Contact rules (invariant 8): checked by check.ContactRules.
	contact, err := r.setContactRules(ctx, time.Now())
	if err != nil {
		return nil, err
	}
	h := &history.History{
		Settings: history.Settings{Tenant: "acme", CAPS: o.CAPS, PortLoadFactor: 100, TotalPorts: o.Servers * o.PortsPerSrv,
			MaxAttempts: o.MaxAttempts, Skew: 250 * time.Millisecond, Contact: contact},
		Start: time.Now(),
	}
	rec := &recorder{}
	ld := &load{r: r, rec: rec, prefix: fmt.Sprintf("c%d", o.Seed)}
	lctx, stopLoad := context.WithCancel(ctx)
	var loadWG sync.WaitGroup
	loadWG.Go(func() { ld.run(lctx, o.Clients) })
	r.log("load: %.1f creates/s, %.1f gets/s, %.1f cancels/s over %d clients; CAPS %.1f; %d ports",
		o.CreateRate, o.GetRate, o.CancelRate, o.Clients, o.CAPS, o.Servers*o.PortsPerSrv)

	faultErr := r.faultSchedule(ctx, rng)
	stopLoad()
	loadWG.Wait()
	loadEnd := time.Now()
	if faultErr != nil {
		r.log("fault schedule stopped: %v", faultErr)
	}
	ops, knowns := rec.snapshot()
	r.log("load stopped: %d operations, %d acknowledged creates (ticks dropped with every client busy: %d creates, %d gets, %d cancels); draining",
		len(ops), len(knowns), ld.dropped[0], ld.dropped[1], ld.dropped[2])

	finals, err := r.drain(ctx, knowns)
	if err != nil {
		r.log("drain: %v", err)
	}
	calls, notes, cerr := r.collect(ctx)
	if cerr != nil {
		return nil, cerr
	}
	h.End = time.Now()
	h.Ops, h.Calls, h.Notifications, h.Finals = ops, calls, notes, finals
	r.mu.Lock()
	h.Faults, h.Leaders = slices.Clone(r.faults), slices.Clone(r.obs)
	r.mu.Unlock()

	res := &Result{History: h}
	if err := h.Save(filepath.Join(o.OutDir, "history.json")); err != nil {
		return nil, err
	}
	res.Reports = append(res.Reports, check.Linearizable(h, o.CheckTimeout, o.OutDir))
	res.Reports = append(res.Reports, check.Invariants(h)...)
	res.Availability = Measure(h, loadEnd)
	if faultErr != nil {
		res.Reports = append(res.Reports, check.Report{Checker: "fault-schedule", Checked: "the faults ran",
			Findings: []check.Finding{{Message: faultErr.Error()}}})
	}
	if err != nil {
		res.Reports = append(res.Reports, check.Report{Checker: "drain", Checked: "every request finished",
			Findings: []check.Finding{{Message: err.Error()}}})
	}
	return res, nil
}

func (r *Runner) setPacing(ctx context.Context) error {
	p := &pb.Pacing{Caps: r.opts.CAPS, PortLoadFactor: 100, Retention: "24h", CleanInterval: "1h"}
	return r.retry(ctx, 30*time.Second, func(ctx context.Context, base string) error {
		return r.api.setPacing(ctx, base, p)
	})
}

// retry calls f on up nodes (10 s each) until it succeeds or timeout
// passes.
func (r *Runner) retry(ctx context.Context, timeout time.Duration, f func(ctx context.Context, base string) error) error {
	rng := rand.New(rand.NewPCG(1, 2))
	var err error
	waitFor(ctx, timeout, func() bool {
		_, base := r.pickNode(rng)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err = f(cctx, base)
		return err == nil
	})
	return err
}

func (r *Runner) portsKnown(ctx context.Context) bool {
	_, base := r.pickNode(rand.New(rand.NewPCG(3, 4)))
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := r.api.portUsage(cctx, base)
	if err != nil {
		return false
	}
	for _, t := range out.GetTenants() {
		if t.GetTenant() == "acme" && int(t.GetTotalPorts()) == r.opts.Servers*r.opts.PortsPerSrv {
			return true
		}
	}
	return false
}
