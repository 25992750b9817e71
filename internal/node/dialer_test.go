package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/node"
	"github.com/seed-7bfc04c2/dialtone/internal/sim/mediasim"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// notifications is a trigger application that records every notification.
type notifications struct {
	mu  sync.Mutex
	got map[string][]url.Values
}

func (n *notifications) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.got == nil {
		n.got = map[string][]url.Values{}
	}
	q := r.URL.Query()
	n.got[q.Get("RequestID")] = append(n.got[q.Get("RequestID")], q)
}

func (n *notifications) of(id string) []url.Values {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.got[id])
}

// dialerCluster is a 3-node cluster sharing one in-process simulated media
// platform (tenant acme) that publishes its port usage to every node.
func dialerCluster(t *testing.T, servers int, ports uint32, mix map[string]int, ring, talk mediasim.Range) (*testCluster, *mediasim.Platform) {
	t.Helper()
	return dialerClusterFor(t, "acme", servers, ports, mix, ring, talk)
}

// startPlatform runs an in-process media platform (o, plus the IDs, seed
// and logger every test uses) publishing its port usage to cfg's nodes,
// until the test ends.
func startPlatform(t *testing.T, cfg config.Config, o mediasim.Options) *mediasim.Platform {
	t.Helper()
	for _, nb := range cfg.Nodes {
		o.Endpoints = append(o.Endpoints, nb.GRPC)
	}
	o.IDPrefix, o.Seed, o.Logger = "vxml", 42, slog.New(slog.DiscardHandler)
	plat, err := mediasim.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = plat.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return plat
}

// dialerClusterFor is dialerCluster with the platform serving tenant
// (mediasim.AnyTenant: a shared platform).
func dialerClusterFor(t *testing.T, tenant string, servers int, ports uint32, mix map[string]int, ring, talk mediasim.Range) (*testCluster, *mediasim.Platform) {
	t.Helper()
	var plat *mediasim.Platform
	tc := newTestClusterWith(t, 3, func(c *config.Config) {
		c.Dialer.InterruptedRetryDelay = config.Duration{Duration: 500 * time.Millisecond}
	}, func(c config.Config) telephony.Backend {
		plat = startPlatform(t, c, mediasim.Options{Tenant: tenant, Servers: servers, PortsPerServer: ports, RingTime: ring, TalkTime: talk, Mix: mix})
		return plat
	})
	return tc, plat
}

func submitMany(t *testing.T, tc *testCluster, n int, notifyURL string, maxAttempts uint32, ttl string) []string {
	t.Helper()
	var ids []string
	for start := 0; start < n; start += 500 {
		var specs []*pb.RequestSpec
		for i := start; i < min(n, start+500); i++ {
			s := spec(fmt.Sprintf("T%d", i))
			s.Telnum = fmt.Sprintf("9%09d", i)
			s.NotificationUrl = notifyURL
			s.MaxAttempts = maxAttempts
			s.TimeToLive = ttl
			specs = append(specs, s)
		}
		resp, err := tc.requests(tc.follower()).CreateRequests(ctxT(t, 20*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: specs})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.Results {
			if !r.Ok {
				t.Fatalf("create: %v", r)
			}
			ids = append(ids, r.Id)
		}
	}
	return ids
}

func setPacing(t *testing.T, tc *testCluster, p *pb.Pacing) {
	t.Helper()
	if _, err := pb.NewDialerServiceClient(tc.conn(tc.follower())).SetPacing(ctxT(t, 10*time.Second), &pb.SetPacingRequest{Tenant: p.Tenant, Pacing: p}); err != nil {
		t.Fatalf("set pacing: %v", err)
	}
}

// waitAllNotified waits until every request is PROCESSED and notified (on
// the leader's replica) and the trigger application received it.
func waitAllNotified(t *testing.T, tc *testCluster, recv *notifications, ids []string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "every request finished and notified", func() error {
		var nd *node.Node
		for _, id := range tc.ids() {
			if x := tc.Node(id); x != nil && x.Cluster().IsLeader() {
				nd = x
			}
		}
		if nd == nil {
			return fmt.Errorf("no leader")
		}
		left := 0
		var example string
		for _, id := range ids {
			r, ok := nd.FSM().Get(id)
			if !ok {
				return fmt.Errorf("request %s lost", id)
			}
			if r.State != fsmpb.State_PROCESSED || r.NotifyState != fsmpb.NotifyState_NOTIFIED || len(recv.of(id)) == 0 {
				left++
				example = fmt.Sprintf("%s %s/%s", id, r.State, r.NotifyState)
			}
		}
		if left > 0 {
			total, inUse, _, ok := nd.PortUsage().TenantPorts("acme")
			return fmt.Errorf("%d of %d not finished and notified, e.g. %s; leader's dialer %+v; ports %d/%d %v", left, len(ids), example, nd.Dialer().Stats(), inUse, total, ok)
		}
		return nil
	})
}

// TestDialerFailoverUnderLoad kills the leader repeatedly while it dials
// thousands of requests at CAPS 200 and checks the invariants of docs/DESIGN.md
// from the platform's call log and the replicated records.
func TestDialerFailoverUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("long failover run")
	}
	mix := map[string]int{mediasim.Success: 70, mediasim.Busy: 10, mediasim.NoAnswer: 10, mediasim.AnsweringMachine: 5, mediasim.InternalError: 5}
	tc, plat := dialerCluster(t, 2, 20, mix, mediasim.Range{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond}, mediasim.Range{Min: 100 * time.Millisecond, Max: 300 * time.Millisecond})
	recv := &notifications{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	setPacing(t, tc, &pb.Pacing{Tenant: "acme", Caps: 200, NextRetryInterval: "1s"})
	// A 60 s TTL: no-answer retries come about 20 s apart (the TTL divided
	// among the attempts left), busy ones after 15 s.
	ids := submitMany(t, tc, 3000, srv.URL+"/result", 3, "60s")

	var kills []time.Time
	for range 3 {
		eventually(t, 20*time.Second, "dialling", func() error {
			if n := len(plat.Calls()); n < 300*(len(kills)+1) {
				return fmt.Errorf("%d calls so far", n)
			}
			return nil
		})
		l := tc.leader()
		kills = append(kills, time.Now())
		tc.kill(l)
		tc.start(l)
	}
	waitAllNotified(t, tc, recv, ids, 3*time.Minute)

	st := plat.Stats()
	calls := plat.Calls()
	t.Logf("platform: %d calls placed, %d refused, peak %d in progress, %d concurrent violations", st.Placed, st.Refused, st.PeakInProgress, st.ConcurrentViolations)
	if st.Refused != 0 {
		t.Errorf("the platform refused %d calls: the port budget was exceeded", st.Refused)
	}
	if st.PeakInProgress > 40 {
		t.Errorf("peak %d calls in progress on 40 ports", st.PeakInProgress)
	}
	if st.ConcurrentViolations != 0 {
		t.Errorf("%d calls were placed while another attempt of the same request was in progress", st.ConcurrentViolations)
	}
	leader := tc.Node(tc.leader())
	for _, id := range ids {
		r, _ := leader.FSM().Get(id)
		if r.AttemptsMade > r.MaxAttempts {
			t.Errorf("%s: %d attempts made, MaxAttempts %d", id, r.AttemptsMade, r.MaxAttempts)
		}
		if r.Result != fsmpb.Result_SUCCESS && r.Result != fsmpb.Result_FAILURE {
			t.Errorf("%s ended %s", id, r.Result)
		}
		q := recv.of(id)[0]
		if q.Get("Result") != r.Result.String() || q.Get("AttemptsMade") != fmt.Sprint(r.AttemptsMade) {
			t.Errorf("%s: notified Result=%s AttemptsMade=%s, record %s/%d", id, q.Get("Result"), q.Get("AttemptsMade"), r.Result, r.AttemptsMade)
		}
	}
	// How long dialling stopped at each failover: the largest gap between
	// call starts from the kill to the next kill (or 10 s).
	starts := make([]time.Time, 0, len(calls))
	for _, c := range calls {
		starts = append(starts, c.Start)
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	for i, k := range kills {
		end := k.Add(10 * time.Second)
		if i+1 < len(kills) {
			end = kills[i+1]
		}
		prev, gap := k, time.Duration(0)
		for _, s := range starts {
			if s.Before(k) {
				continue
			}
			if s.After(end) {
				break
			}
			gap = max(gap, s.Sub(prev))
			prev = s
		}
		t.Logf("failover %d: dialling stopped for %s", i+1, gap.Round(time.Millisecond))
		if gap > 5*time.Second {
			t.Errorf("failover %d: dialling stopped for %s", i+1, gap)
		}
	}
}

// A paused leader (cut off from its peers) must not place calls once a new
// leader has taken over: this is what the stopped engine and the
// leader-only applies guarantee. Here leadership moves by transfer while
// calls are in progress; the old leader hangs up its calls, and the new
// one re-attempts them without counting the interrupted attempts.
func TestDialerLeadershipTransferHandsOver(t *testing.T) {
	tc, plat := dialerCluster(t, 1, 10, nil, mediasim.Range{}, mediasim.Range{Min: 30 * time.Second, Max: 30 * time.Second})
	recv := &notifications{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	ids := submitMany(t, tc, 5, srv.URL+"/r", 1, "600s")
	eventually(t, 10*time.Second, "five calls up", func() error {
		if n := plat.Stats().InProgress; n != 5 {
			return fmt.Errorf("%d calls up", n)
		}
		return nil
	})
	old := tc.leader()
	if _, err := tc.clusterClient(old).TransferLeadership(ctxT(t, 10*time.Second), &pb.TransferLeadershipRequest{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "new leader re-attempts every call", func() error {
		n := 0
		for _, c := range plat.Calls() {
			if c.State == mediasim.StateInProgress {
				n++
			}
		}
		if n != 5 || tc.leader() == old {
			return fmt.Errorf("%d calls in progress, leader %s", n, tc.leader())
		}
		return nil
	})
	if st := plat.Stats(); st.ConcurrentViolations != 0 || st.Cancelled != 5 {
		t.Fatalf("platform %+v: want the 5 old calls hung up before the new ones", st)
	}
	leader := tc.Node(tc.leader())
	for _, id := range ids {
		r, _ := leader.FSM().Get(id)
		if r.State != fsmpb.State_IN_PROGRESS || r.AttemptsMade != 1 || len(r.Attempts) != 2 || r.Attempts[0].Outcome != fsmpb.OutcomeClass_OUTCOME_INTERRUPTED {
			t.Fatalf("%s: %s, %d attempts made, history %v", id, r.State, r.AttemptsMade, r.Attempts)
		}
	}
}
