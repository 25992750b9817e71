package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/node"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
	"github.com/seed-7bfc04c2/dialtone/test/cluster"
)

// testCluster is test/cluster's in-process cluster with the calls these
// tests make, failing the test instead of returning errors.
type testCluster struct {
	*cluster.InProcess
	t *testing.T
}

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := cluster.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func nodeBlock(t *testing.T, id string) config.Node {
	t.Helper()
	nb, err := cluster.NodeBlock(id)
	if err != nil {
		t.Fatal(err)
	}
	return nb
}

// fastRaft are Raft timeouts that fail over quickly on loopback.
func fastRaft(c *config.Config) {
	c.Cluster.HeartbeatTimeout = config.Duration{Duration: 200 * time.Millisecond}
	c.Cluster.ElectionTimeout = config.Duration{Duration: 200 * time.Millisecond}
	c.Cluster.LeaderLeaseTimeout = config.Duration{Duration: 100 * time.Millisecond}
	c.Cluster.ApplyTimeout = config.Duration{Duration: 10 * time.Second}
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
	c, err := cluster.StartInProcess(ctxT(t, 30*time.Second), cluster.InProcessOptions{
		Options: cluster.Options{Nodes: n, Dir: t.TempDir(), Edit: func(c *config.Config) {
			fastRaft(c)
			if edit != nil {
				edit(c)
			}
		}},
		Logger:  testLogger(),
		Backend: backend,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &testCluster{InProcess: c, t: t}
}

func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("DIALTONE_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// start starts node id (again) and returns it.
func (tc *testCluster) start(id string) *node.Node {
	tc.t.Helper()
	if err := tc.Restart(ctxT(tc.t, 30*time.Second), id); err != nil {
		tc.t.Fatal(err)
	}
	return tc.Node(id)
}

// kill stops a node as a crash would.
func (tc *testCluster) kill(id string) {
	tc.t.Helper()
	if err := tc.Kill(id); err != nil {
		tc.t.Fatal(err)
	}
}

func (tc *testCluster) conn(id string) *grpc.ClientConn {
	tc.t.Helper()
	c, err := tc.Conn(id)
	if err != nil {
		tc.t.Fatal(err)
	}
	return c
}

func (tc *testCluster) requests(id string) pb.RequestServiceClient {
	return pb.NewRequestServiceClient(tc.conn(id))
}

func (tc *testCluster) clusterClient(id string) pb.ClusterServiceClient {
	return pb.NewClusterServiceClient(tc.conn(id))
}

func (tc *testCluster) waitVoters(n int) {
	tc.t.Helper()
	if err := tc.WaitServers(ctxT(tc.t, 20*time.Second), n); err != nil {
		tc.t.Fatal(err)
	}
}

func (tc *testCluster) leader() string {
	tc.t.Helper()
	l, err := tc.WaitLeader(ctxT(tc.t, 20*time.Second))
	if err != nil {
		tc.t.Fatal(err)
	}
	return l
}

func (tc *testCluster) follower() string {
	tc.t.Helper()
	l := tc.leader()
	for _, id := range tc.Running() {
		if id != l {
			return id
		}
	}
	tc.t.Fatal("no follower")
	return ""
}

func (tc *testCluster) ids() []string { return tc.Running() }

func (tc *testCluster) nodeConfig(id string) (config.Node, error) {
	cfg := tc.Config()
	return cfg.Node(id)
}

// addNode starts a node on free ports that joins by gossip through join.
func (tc *testCluster) addNode(id, join string) *node.Node {
	tc.t.Helper()
	n, err := tc.AddNode(id, func(nb *config.Node) { nb.Join = []string{join} })
	if err != nil {
		tc.t.Fatal(err)
	}
	return n
}

// stopAll shuts every node down; Restart starts them again on their data.
func (tc *testCluster) stopAll() {
	if err := tc.StopAll(); err != nil {
		tc.t.Logf("stop all: %v", err)
	}
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
	if err := tc.Node(l).Cluster().Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	n := tc.start(f)
	eventually(t, 30*time.Second, "follower caught up", func() error {
		if got := n.FSM().AppliedIndex(); got < last {
			return fmt.Errorf("applied %d < %d", got, last)
		}
		return nil
	})
	if got, want := n.FSM().Count(), tc.Node(l).FSM().Count(); got != want || got != 200 {
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
	for _, nb := range tc.Config().Nodes {
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
	node4 := tc.addNode("n4", tc.Config().Nodes[1].Gossip)
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
		st := tc.Node(id).Cluster().Status()
		if st.LeaderID != l || len(st.Servers) != 3 {
			t.Fatalf("%s: %+v", id, st)
		}
	}
}
