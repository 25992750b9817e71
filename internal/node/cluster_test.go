package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// testCluster runs nodes in this process on loopback with fixed ports, so a
// node can be restarted on its old addresses and data dir.
type testCluster struct {
	t     *testing.T
	cfg   config.Config
	mu    sync.Mutex
	nodes map[string]*Node
	conns map[string]*grpc.ClientConn
	// backend, when set, is every node's call backend.
	backend telephony.Backend
}

// handedOut remembers ports given to earlier nodes of this test binary: the
// kernel may offer a port again once its probe listener is closed.
var handedOut sync.Map

func freeAddr(t *testing.T) string {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := l.Addr().String()
		l.Close()
		if _, dup := handedOut.LoadOrStore(a, true); !dup {
			return a
		}
	}
	t.Fatal("no free port")
	return ""
}

func freeUDPTCPAddr(t *testing.T) string {
	t.Helper()
	// memberlist needs the same port free for TCP and UDP.
	for range 50 {
		a := freeAddr(t)
		u, err := net.ListenPacket("udp", a)
		if err == nil {
			u.Close()
			return a
		}
	}
	t.Fatal("no free gossip port")
	return ""
}

func nodeBlock(t *testing.T, id string) config.Node {
	return config.Node{ID: id, HTTP: freeAddr(t), GRPC: freeAddr(t), Raft: freeAddr(t), Gossip: freeUDPTCPAddr(t)}
}

func newTestCluster(t *testing.T, n int, edit func(*config.Config)) *testCluster {
	t.Helper()
	return newTestClusterWith(t, n, edit, nil)
}

// newTestClusterWith is newTestCluster with a call backend built from the
// final configuration (every node shares it, as nodes share one media
// platform).
func newTestClusterWith(t *testing.T, n int, edit func(*config.Config), backend func(config.Config) telephony.Backend) *testCluster {
	t.Helper()
	cfg := config.Default()
	cfg.Cluster.DataDir = t.TempDir()
	cfg.Cluster.HeartbeatTimeout = config.Duration{Duration: 200 * time.Millisecond}
	cfg.Cluster.ElectionTimeout = config.Duration{Duration: 200 * time.Millisecond}
	cfg.Cluster.LeaderLeaseTimeout = config.Duration{Duration: 100 * time.Millisecond}
	cfg.Cluster.ApplyTimeout = config.Duration{Duration: 10 * time.Second}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("n%d", i)
		cfg.Nodes = append(cfg.Nodes, nodeBlock(t, id))
		cfg.Cluster.InitialVoters = append(cfg.Cluster.InitialVoters, id)
	}
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{t: t, cfg: cfg, nodes: map[string]*Node{}, conns: map[string]*grpc.ClientConn{}}
	if backend != nil {
		tc.backend = backend(cfg)
	}
	t.Cleanup(tc.stopAll)
	for _, nb := range cfg.Nodes {
		tc.start(nb.ID)
	}
	tc.waitVoters(n)
	return tc
}

func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("DIALTONE_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func (tc *testCluster) start(id string) *Node {
	tc.t.Helper()
	n, err := Start(Options{Config: tc.cfg, NodeID: id, Logger: testLogger(), Backend: tc.backend})
	if err != nil {
		tc.t.Fatalf("start %s: %v", id, err)
	}
	tc.mu.Lock()
	tc.nodes[id] = n
	tc.mu.Unlock()
	return n
}

// kill stops a node as a crash would.
func (tc *testCluster) kill(id string) {
	tc.mu.Lock()
	n := tc.nodes[id]
	delete(tc.nodes, id)
	tc.mu.Unlock()
	n.Close()
}

func (tc *testCluster) stopAll() {
	tc.mu.Lock()
	nodes := tc.nodes
	tc.nodes = map[string]*Node{}
	conns := tc.conns
	tc.conns = map[string]*grpc.ClientConn{}
	tc.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = n.Shutdown(ctx)
		}()
	}
	wg.Wait()
}

func (tc *testCluster) conn(id string) *grpc.ClientConn {
	tc.t.Helper()
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if c, ok := tc.conns[id]; ok {
		return c
	}
	nb, err := tc.cfg.Node(id)
	if err != nil {
		tc.t.Fatal(err)
	}
	c, err := grpc.NewClient(nb.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.conns[id] = c
	return c
}

func (tc *testCluster) requests(id string) pb.RequestServiceClient {
	return pb.NewRequestServiceClient(tc.conn(id))
}

func (tc *testCluster) clusterClient(id string) pb.ClusterServiceClient {
	return pb.NewClusterServiceClient(tc.conn(id))
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (tc *testCluster) waitVoters(n int) {
	tc.t.Helper()
	eventually(tc.t, 20*time.Second, "cluster formed", func() error {
		tc.mu.Lock()
		defer tc.mu.Unlock()
		for id, nd := range tc.nodes {
			st := nd.Cluster().Status()
			if st.LeaderID == "" || len(st.Servers) != n {
				return fmt.Errorf("%s sees leader %q and %d servers", id, st.LeaderID, len(st.Servers))
			}
		}
		return nil
	})
}

func (tc *testCluster) leader() string {
	tc.t.Helper()
	var leader string
	eventually(tc.t, 20*time.Second, "leader", func() error {
		tc.mu.Lock()
		defer tc.mu.Unlock()
		for id, nd := range tc.nodes {
			if nd.Cluster().IsLeader() {
				leader = id
				return nil
			}
		}
		return fmt.Errorf("no leader among %d nodes", len(tc.nodes))
	})
	return leader
}

func (tc *testCluster) follower() string {
	l := tc.leader()
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for id := range tc.nodes {
		if id != l {
			return id
		}
	}
	tc.t.Fatal("no follower")
	return ""
}

func (tc *testCluster) ids() []string {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	var out []string
	for id := range tc.nodes {
		out = append(out, id)
	}
	return out
}

func spec(token string) *pb.RequestSpec {
	return &pb.RequestSpec{
		Token:           token,
		IvrProfile:      "Application",
		Telnum:          "9884719189",
		Ani:             "12345",
		NotificationUrl: "http://127.0.0.1:9/result",
		MaxAttempts:     2,
		TimeToLive:      "3600s",
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestCreateOnFollowerIsReadableOnEveryNode(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	f := tc.follower()
	resp, err := tc.requests(f).CreateRequests(ctxT(t, 10*time.Second), &pb.CreateRequestsRequest{
		Tenant: "acme", Requests: []*pb.RequestSpec{spec("T1"), spec("T2")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 2 || !resp.Results[0].Ok || !resp.Results[1].Ok || resp.Index == 0 {
		t.Fatalf("create = %v", resp)
	}
	for _, id := range tc.ids() {
		for i, r := range resp.Results {
			got, err := tc.requests(id).GetRequest(ctxT(t, 10*time.Second), &pb.GetRequestRequest{Tenant: "acme", Id: r.Id, MinIndex: resp.Index})
			if err != nil {
				t.Fatalf("node %s get %s: %v", id, r.Id, err)
			}
			if got.Request.Spec.Token != fmt.Sprintf("T%d", i+1) || got.Request.State != "PENDING" || got.Request.Status != "Waiting to be processed" {
				t.Fatalf("node %s: %v", id, got.Request)
			}
			if got.Meta.AppliedIndex < resp.Index || got.Meta.NodeId != id {
				t.Fatalf("node %s meta = %v", id, got.Meta)
			}
		}
		// Another tenant sees nothing.
		_, err := tc.requests(id).GetRequest(ctxT(t, 10*time.Second), &pb.GetRequestRequest{Tenant: "other", Id: resp.Results[0].Id, MinIndex: resp.Index})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("cross-tenant get = %v", err)
		}
	}
}

func TestLinearizableReadOnFollower(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	l, f := tc.leader(), tc.follower()
	resp, err := tc.requests(l).CreateRequests(ctxT(t, 10*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{spec("T1")}})
	if err != nil {
		t.Fatal(err)
	}
	// No min_index: linearizable alone must see the acknowledged write.
	got, err := tc.requests(f).GetRequest(ctxT(t, 10*time.Second), &pb.GetRequestRequest{Tenant: "acme", Id: resp.Results[0].Id, Consistency: "linearizable"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Meta.Consistency != "linearizable" || got.Meta.AppliedIndex < resp.Index {
		t.Fatalf("meta = %v", got.Meta)
	}
	_, err = tc.requests(f).GetRequest(ctxT(t, 10*time.Second), &pb.GetRequestRequest{Tenant: "acme", Id: resp.Results[0].Id, Consistency: "strong"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad consistency = %v", err)
	}
	// An index far in the future times out with a clear error.
	_, err = tc.requests(f).GetRequest(ctxT(t, 20*time.Second), &pb.GetRequestRequest{Tenant: "acme", Id: resp.Results[0].Id, MinIndex: 1 << 40})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("future min_index = %v", err)
	}
}

// TestLeaderKillLosesNoAcknowledgedCreate writes continuously through every
// node while the leader is killed, then checks that every acknowledged
// create is readable on the survivors.
func TestLeaderKillLosesNoAcknowledgedCreate(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	leader := tc.leader()
	var (
		mu    sync.Mutex
		acked []string
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, id := range tc.ids() {
		if id == leader {
			continue
		}
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
					s := spec(fmt.Sprintf("%s-%d-%d", id, w, i))
					s.IdempotencyKey = s.Token
					resp, err := tc.requests(id).CreateRequests(cctx, &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{s}})
					ccancel()
					if err != nil {
						continue // not acknowledged: may or may not exist
					}
					mu.Lock()
					acked = append(acked, resp.Results[0].Id)
					mu.Unlock()
				}
			}()
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	eventually(t, 20*time.Second, "writes before the kill", func() error {
		if count() < 50 {
			return fmt.Errorf("%d acked", count())
		}
		return nil
	})
	tc.kill(leader)
	before := count()
	eventually(t, 30*time.Second, "writes after the kill", func() error {
		if count() < before+50 {
			return fmt.Errorf("%d acked since the kill", count()-before)
		}
		return nil
	})
	cancel()
	wg.Wait()
	newLeader := tc.leader()
	if newLeader == leader {
		t.Fatal("killed node still leader")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range tc.ids() {
		for _, rid := range acked {
			_, err := tc.requests(id).GetRequest(ctxT(t, 10*time.Second), &pb.GetRequestRequest{Tenant: "acme", Id: rid, Consistency: "linearizable"})
			if err != nil {
				t.Fatalf("node %s lost acknowledged request %s: %v", id, rid, err)
			}
		}
	}
	t.Logf("%d acknowledged creates, all present on %v", len(acked), tc.ids())
}

func TestIdempotentRetryAfterLeaderKillYieldsOneRequest(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	leader := tc.leader()
	var other []string
	for _, id := range tc.ids() {
		if id != leader {
			other = append(other, id)
		}
	}
	s := spec("T-idem")
	s.IdempotencyKey = "order-42"
	first, err := tc.requests(other[0]).CreateRequests(ctxT(t, 10*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{s}})
	if err != nil {
		t.Fatal(err)
	}
	tc.kill(leader)
	second, err := tc.requests(other[1]).CreateRequests(ctxT(t, 20*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{s}})
	if err != nil {
		t.Fatal(err)
	}
	if !second.Results[0].Ok || !second.Results[0].Duplicate || second.Results[0].Id != first.Results[0].Id {
		t.Fatalf("retry = %v, want duplicate of %s", second.Results[0], first.Results[0].Id)
	}
	list, err := tc.requests(other[1]).ListRequests(ctxT(t, 10*time.Second), &pb.ListRequestsRequest{Tenant: "acme", Consistency: "linearizable"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Requests) != 1 {
		t.Fatalf("%d requests stored, want 1", len(list.Requests))
	}
	// Same key, different body: refused.
	s2 := spec("T-other")
	s2.IdempotencyKey = "order-42"
	third, err := tc.requests(other[1]).CreateRequests(ctxT(t, 10*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{s2}})
	if err != nil {
		t.Fatal(err)
	}
	if third.Results[0].Ok || third.Results[0].Code != "IDEMPOTENCY_CONFLICT" {
		t.Fatalf("conflicting retry = %v", third.Results[0])
	}
}

func TestRestartedFollowerCatchesUpFromSnapshot(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *config.Config) {
		c.Cluster.SnapshotThreshold = 50
		c.Cluster.TrailingLogs = 10
		c.Cluster.SnapshotInterval = config.Duration{Duration: time.Second}
	})
	f := tc.follower()
	tc.kill(f)
	l := tc.leader()
	var last uint64
	for i := range 200 {
		resp, err := tc.requests(l).CreateRequests(ctxT(t, 10*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{spec(fmt.Sprint(i))}})
		if err != nil {
			t.Fatal(err)
		}
		last = resp.Index
	}
	// Make sure the log the follower missed has been compacted away.
	if err := tc.nodes[l].Cluster().Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	n := tc.start(f)
	eventually(t, 30*time.Second, "follower caught up", func() error {
		if got := n.FSM().AppliedIndex(); got < last {
			return fmt.Errorf("applied %d < %d", got, last)
		}
		return nil
	})
	if got, want := n.FSM().Count(), tc.nodes[l].FSM().Count(); got != want || got != 200 {
		t.Fatalf("restarted follower has %d records, leader %d, want 200", got, want)
	}
}

func TestWholeClusterRestartRecoversEveryRequest(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *config.Config) { c.Cluster.SnapshotThreshold = 100 })
	var ids []string
	for i := range 30 {
		var specs []*pb.RequestSpec
		for j := range 10 {
			specs = append(specs, spec(fmt.Sprintf("%d-%d", i, j)))
		}
		resp, err := tc.requests(tc.ids()[i%3]).CreateRequests(ctxT(t, 10*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: specs})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.Results {
			ids = append(ids, r.Id)
		}
	}
	tc.stopAll()
	for _, nb := range tc.cfg.Nodes {
		tc.start(nb.ID)
	}
	tc.waitVoters(3)
	for _, id := range tc.ids() {
		for _, rid := range ids {
			if _, err := tc.requests(id).GetRequest(ctxT(t, 10*time.Second), &pb.GetRequestRequest{Tenant: "acme", Id: rid, Consistency: "linearizable"}); err != nil {
				t.Fatalf("node %s after restart: %s: %v", id, rid, err)
			}
		}
	}
}

func TestLateNodeJoinsAsVoterAndLeaves(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	n4 := nodeBlock(t, "n4")
	n4.Join = []string{tc.cfg.Nodes[1].Gossip}
	tc.cfg.Nodes = append(tc.cfg.Nodes, n4)
	node4 := tc.start("n4")
	tc.waitVoters(4)
	if st := node4.Cluster().Status(); st.Servers[len(st.Servers)-1].Suffrage != "Voter" {
		t.Fatalf("n4 servers = %+v", st.Servers)
	}
	// n4 serves reads of earlier and later writes.
	resp, err := tc.requests("n1").CreateRequests(ctxT(t, 10*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{spec("late")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.requests("n4").GetRequest(ctxT(t, 10*time.Second), &pb.GetRequestRequest{Tenant: "acme", Id: resp.Results[0].Id, MinIndex: resp.Index}); err != nil {
		t.Fatal(err)
	}
	// Leave: n4 is removed from the configuration and stops.
	if _, err := tc.clusterClient("n4").Leave(ctxT(t, 20*time.Second), &pb.LeaveRequest{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-node4.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("n4 did not stop after leave")
	}
	tc.mu.Lock()
	delete(tc.nodes, "n4")
	tc.mu.Unlock()
	tc.waitVoters(3)
}

func TestTransferLeadership(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	l := tc.leader()
	var target string
	for _, id := range tc.ids() {
		if id != l {
			target = id
			break
		}
	}
	resp, err := tc.clusterClient(l).TransferLeadership(ctxT(t, 10*time.Second), &pb.TransferLeadershipRequest{TargetId: target})
	if err != nil {
		t.Fatal(err)
	}
	if resp.NewLeaderId != target {
		t.Fatalf("new leader = %s, want %s", resp.NewLeaderId, target)
	}
	if got := tc.leader(); got != target {
		t.Fatalf("leader = %s", got)
	}
	// A follower refuses with FailedPrecondition.
	_, err = tc.clusterClient(l).TransferLeadership(ctxT(t, 10*time.Second), &pb.TransferLeadershipRequest{})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("transfer on follower = %v", err)
	}
	st, err := tc.clusterClient(l).GetStatus(ctxT(t, 10*time.Second), &pb.GetStatusRequest{})
	if err != nil || st.LeaderId != target || len(st.Servers) != 3 {
		t.Fatalf("status = %v, %v", st, err)
	}
	m, err := tc.clusterClient(l).ListMembers(ctxT(t, 10*time.Second), &pb.ListMembersRequest{})
	if err != nil || len(m.Members) != 3 || m.Members[0].Status != "alive" {
		t.Fatalf("members = %v, %v", m, err)
	}
}

func TestBootstrapExpectFormsACluster(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *config.Config) {
		c.Cluster.InitialVoters = nil
		c.Cluster.BootstrapExpect = 3
	})
	l := tc.leader()
	resp, err := tc.requests(tc.follower()).CreateRequests(ctxT(t, 10*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{spec("T1")}})
	if err != nil || !resp.Results[0].Ok {
		t.Fatalf("create: %v %v", resp, err)
	}
	for _, id := range tc.ids() {
		st := tc.nodes[id].Cluster().Status()
		if st.LeaderID != l || len(st.Servers) != 3 {
			t.Fatalf("%s: %+v", id, st)
		}
	}
}
