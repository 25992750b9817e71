package node_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/portpub"
)

// lastReportRecorder polls GetServer on some nodes and keeps, per node, every
// distinct last_report_unix_ms it sees: the times the node (directly or by
// relay) received the server's reports.
type lastReportRecorder struct {
	mu   sync.Mutex
	seen map[string][]int64
	stop chan struct{}
	done chan struct{}
}

func recordLastReports(tc *testCluster, serverID string, nodes ...string) *lastReportRecorder {
	r := &lastReportRecorder{seen: map[string][]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	clients := map[string]pb.PortUsageServiceClient{}
	for _, id := range nodes {
		clients[id] = pb.NewPortUsageServiceClient(tc.conn(id))
	}
	go func() {
		defer close(r.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
			}
			for id, c := range clients {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				s, err := c.GetServer(ctx, &pb.GetServerRequest{Id: serverID})
				cancel()
				if err != nil {
					continue
				}
				r.mu.Lock()
				if v := r.seen[id]; len(v) == 0 || v[len(v)-1] != s.GetLastReportUnixMs() {
					r.seen[id] = append(v, s.GetLastReportUnixMs())
				}
				r.mu.Unlock()
			}
		}
	}()
	return r
}

func (r *lastReportRecorder) finish() map[string][]int64 {
	close(r.stop)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen
}

func (r *lastReportRecorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen[id])
}

// TestPublisherFailoverAcrossNodes attaches a portpub.Publisher to n1, kills
// n1, and checks that the publisher moves to n2 within 2s with no gap longer
// than 2s in what the survivors receive, then restarts n1 and checks that
// the publisher returns to it after ReturnAfter.
func TestPublisherFailoverAcrossNodes(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	var eps []string
	for _, id := range []string{"n1", "n2", "n3"} {
		nb, err := tc.nodeConfig(id)
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, nb.GRPC)
	}
	const (
		serverID    = "vxml-failover"
		returnAfter = 2 * time.Second
	)
	pub := portpub.New(portpub.Options{
		Endpoints: eps, ServerID: serverID, Address: "192.0.2.10", Tenant: "acme",
		ReturnAfter: returnAfter, Logger: testLogger(),
	})
	pub.Set(120, 30)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- pub.Run(ctx) }()
	t.Cleanup(func() { // runs before the cluster's cleanup
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	current := func(want string) func() error {
		return func() error {
			if c := pub.Current(); c != want {
				return fmt.Errorf("publisher on %q, want %q", c, want)
			}
			return nil
		}
	}
	eventually(t, 10*time.Second, "publisher on n1", current(eps[0]))

	rec := recordLastReports(tc, serverID, "n2", "n3")
	eventually(t, 10*time.Second, "survivors receive relayed reports", func() error {
		for _, id := range []string{"n2", "n3"} {
			if n := rec.count(id); n < 3 {
				return fmt.Errorf("%s saw %d reports", id, n)
			}
		}
		return nil
	})

	killed := time.Now()
	tc.kill("n1")
	moved := eventuallyAt(t, 2*time.Second, "publisher on n2", current(eps[1]))
	t.Logf("failover %s after the kill", moved.Sub(killed))
	pub.Set(120, 55)
	// Let the survivors receive for a while on the new endpoint.
	eventually(t, 10*time.Second, "n3 has the new figures", func() error {
		s, err := pb.NewPortUsageServiceClient(tc.conn("n3")).GetServer(context.Background(), &pb.GetServerRequest{Id: serverID})
		if err != nil {
			return err
		}
		if s.GetPortsInUse() != 55 || s.GetReceivedBy() != "n2" || time.Since(moved) < 2*time.Second {
			return fmt.Errorf("n3: %d in use, received by %s", s.GetPortsInUse(), s.GetReceivedBy())
		}
		return nil
	})
	seen := rec.finish()
	for _, id := range []string{"n2", "n3"} {
		ms := seen[id]
		if !slices.IsSorted(ms) {
			t.Errorf("%s: last_report_unix_ms went backwards: %v", id, ms)
		}
		var gap int64
		for i := 1; i < len(ms); i++ {
			gap = max(gap, ms[i]-ms[i-1])
		}
		t.Logf("%s: %d reports seen, longest gap %d ms", id, len(ms), gap)
		if gap > 2000 {
			t.Errorf("%s: gap of %d ms in the reports it received", id, gap)
		}
	}
	if pub.Failovers() != 1 {
		t.Fatalf("failovers %d, want 1", pub.Failovers())
	}

	restarted := time.Now()
	tc.start("n1")
	back := eventuallyAt(t, returnAfter+15*time.Second, "publisher back on n1", current(eps[0]))
	if d := back.Sub(restarted); d < returnAfter {
		t.Fatalf("returned %s after the restart began, before ReturnAfter %s", d, returnAfter)
	}
	t.Logf("returned %s after the restart began", back.Sub(restarted))
	if pub.Returns() != 1 {
		t.Fatalf("returns %d, want 1", pub.Returns())
	}
	eventually(t, 10*time.Second, "n2 sees reports received by n1 again", func() error {
		s, err := pb.NewPortUsageServiceClient(tc.conn("n2")).GetServer(context.Background(), &pb.GetServerRequest{Id: serverID})
		if err != nil {
			return err
		}
		if s.GetReceivedBy() != "n1" || s.GetPortsInUse() != 55 {
			return fmt.Errorf("n2: received by %s, %d in use", s.GetReceivedBy(), s.GetPortsInUse())
		}
		return nil
	})
}

// eventuallyAt is eventually, returning when the condition first held.
func eventuallyAt(t *testing.T, timeout time.Duration, what string, cond func() error) time.Time {
	t.Helper()
	eventually(t, timeout, what, cond)
	return time.Now()
}
