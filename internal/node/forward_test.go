package node_test

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
)

// blackhole is a TCP relay in front of a node's gRPC listener; cut makes it
// drop everything, as a network partition would: calls through it hang
// rather than fail.
type blackhole struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	cutOff bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{l: l, target: target}
	b.wg.Go(b.serve)
	t.Cleanup(b.close)
	return b
}

func (b *blackhole) addr() string { return b.l.Addr().String() }

func (b *blackhole) cut() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cutOff = true
}

func (b *blackhole) isCut() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cutOff
}

func (b *blackhole) track(c net.Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conns = append(b.conns, c)
}

func (b *blackhole) serve() {
	for {
		c, err := b.l.Accept()
		if err != nil {
			return
		}
		b.track(c)
		up, err := net.Dial("tcp", b.target)
		if err != nil {
			c.Close()
			continue
		}
		b.track(up)
		b.wg.Go(func() { b.relay(up, c) })
		b.wg.Go(func() { b.relay(c, up) })
	}
}

// relay copies src to dst until cut, then swallows what arrives.
func (b *blackhole) relay(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !b.isCut() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or closed
		}
	}
}

func (b *blackhole) close() {
	b.l.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// TestForwardLeavesReplacedLeader: a follower forwards a write to a leader
// that stops answering (cut off) and is replaced; the follower gives up on
// it when it learns of the new leader and the write succeeds there, instead
// of hanging until apply_timeout. Found by the chaos suite's partition.
func TestForwardLeavesReplacedLeader(t *testing.T) {
	holes := map[string]*blackhole{}
	tc := newTestCluster(t, 3, func(c *config.Config) {
		// Each node advertises its gRPC address through a relay the test
		// can cut (grpc_bind is the real listener).
		for i := range c.Nodes {
			n := &c.Nodes[i]
			n.GRPCBind = freeAddr(t)
			holes[n.ID] = newBlackhole(t, n.GRPCBind)
			n.GRPC = holes[n.ID].addr()
		}
	})
	l := tc.leader()
	var f, other string
	for _, id := range []string{"n1", "n2", "n3"} {
		switch {
		case id == l:
		case f == "":
			f = id
		default:
			other = id
		}
	}
	// Warm the follower's forwarding connection, then cut the leader's
	// gRPC off (Raft still works, so it stays leader until the transfer).
	if _, err := tc.requests(f).CreateRequests(ctxT(t, 10*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{spec("warm")}}); err != nil {
		t.Fatal(err)
	}
	holes[l].cut()

	type result struct {
		resp *pb.CreateRequestsResponse
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		resp, err := tc.requests(f).CreateRequests(ctxT(t, 30*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{spec("T1")}})
		done <- result{resp, err, time.Since(start)}
	}()
	select {
	case r := <-done:
		t.Fatalf("the write returned while its leader was cut off: %+v %v", r.resp, r.err)
	case <-time.After(500 * time.Millisecond):
	}
	old := tc.Node(l)
	nb, _ := tc.nodeConfig(other)
	if err := old.Cluster().Raft().LeadershipTransferToServer(raft.ServerID(other), raft.ServerAddress(nb.Raft)).Error(); err != nil {
		t.Fatalf("leadership transfer: %v", err)
	}
	moved := time.Now()
	r := <-done
	if r.err != nil || len(r.resp.GetResults()) != 1 || !r.resp.Results[0].GetOk() {
		t.Fatalf("write after the leader moved: %+v %v", r.resp, r.err)
	}
	// apply_timeout is 10 s: without giving up on the old leader the
	// write would wait for it.
	if wait := time.Since(moved); wait > 3*time.Second {
		t.Fatalf("the write took %v after the leader moved (%v in all)", wait, r.took)
	}
}
