package portpub

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestRotate(t *testing.T) {
	eps := []string{"a", "b", "c"}
	for i, want := range [][]string{{"a", "b", "c"}, {"b", "c", "a"}, {"c", "a", "b"}, {"a", "b", "c"}} {
		if got := Rotate(eps, i); !slices.Equal(got, want) {
			t.Fatalf("Rotate(%d) = %v, want %v", i, got, want)
		}
	}
}

func TestWalkStaysInBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, total := range []uint32{0, 1, 5, 50, 1000} {
		cur := total / 2
		for range 10000 {
			next := walk(cur, total, rng)
			if next > total {
				t.Fatalf("total %d: walked to %d", total, next)
			}
			if d := int(next) - int(cur); d > max(int(total/10), 1) || -d > max(int(total/10), 1) {
				t.Fatalf("total %d: step %d", total, d)
			}
			cur = next
		}
	}
}

func TestSimAcquireRelease(t *testing.T) {
	s := NewSim(SimOptions{Servers: 3, Ports: 2, Tenant: "acme", Endpoints: []string{"x:1"}})
	seen := map[string]int{}
	for range 6 {
		srv, ok := s.Acquire()
		if !ok {
			t.Fatal("no free port with capacity left")
		}
		seen[srv.ID]++
	}
	if _, ok := s.Acquire(); ok {
		t.Fatal("acquired beyond capacity")
	}
	for _, id := range []string{"sim-1", "sim-2", "sim-3"} {
		if seen[id] != 2 {
			t.Fatalf("load not spread: %v", seen)
		}
	}
	v := s.Servers()[0]
	v.Release()
	v.Release()
	v.Release() // extra release is a no-op
	if v.InUse() != 0 || v.Free() != 2 {
		t.Fatalf("in use %d free %d", v.InUse(), v.Free())
	}
	if tot, in := v.Publisher.figures(); tot != 2 || in != 0 {
		t.Fatalf("publisher figures %d/%d", in, tot)
	}
}

// TestSimPublishes runs a small platform against two fake nodes: each server
// has its own primary, and the random walk reaches the servers.
func TestSimPublishes(t *testing.T) {
	a, b := newFake(t, "a"), newFake(t, "b")
	var mu sync.Mutex
	switches := map[string]string{}
	s := NewSim(SimOptions{
		Servers: 2, Ports: 50, Tenant: "acme", Endpoints: []string{a.addr, b.addr},
		Interval: 100 * time.Millisecond, Logger: testLogger(),
		OnSwitch: func(server string, sw Switch) {
			mu.Lock()
			switches[server] = sw.To
			mu.Unlock()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	walkDone := make(chan struct{})
	go func() {
		defer close(walkDone)
		s.RandomWalk(ctx, 50*time.Millisecond, rand.New(rand.NewPCG(3, 4)))
	}()
	defer func() {
		cancel()
		<-walkDone
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	eventually(t, 5*time.Second, "each server on its own primary", func() error {
		mu.Lock()
		defer mu.Unlock()
		if switches["sim-1"] != a.addr || switches["sim-2"] != b.addr {
			return fmt.Errorf("switches %v", switches)
		}
		return nil
	})
	eventually(t, 5*time.Second, "varying load", func() error {
		vals := map[uint32]bool{}
		for _, r := range a.reports() {
			if r.total != 50 || r.inUse > 50 {
				return fmt.Errorf("bad report %+v", r)
			}
			vals[r.inUse] = true
		}
		if len(vals) < 3 {
			return fmt.Errorf("%d distinct values", len(vals))
		}
		return nil
	})
}
