package portusage

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRunSweeper: the sweeper forgets expired servers on its own, and
// returns when its context ends.
func TestRunSweeper(t *testing.T) {
	c, clk := newTestCache(Options{})
	c.Ingest(rep("s1", "acme", 10, 1, 1, clk.Now()))
	c.Ingest(rep("s2", "acme", 10, 1, 1, clk.Now()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.RunSweeper(ctx, time.Millisecond)
	}()
	clk.Add(time.Hour)
	c.Ingest(rep("s2", "acme", 10, 1, 1, clk.Now()))
	for deadline := time.Now().Add(5 * time.Second); c.Len() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("expired server not swept")
		}
	}
	if _, ok := c.Server("s2"); !ok {
		t.Fatal("the fresh server was swept, not the expired one")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunSweeper did not return after cancel")
	}
}

// TestRelayCountsAndFlushesOnStop: every queued report is counted, and Run
// flushes the pending batch when it stops.
func TestRelayCountsAndFlushesOnStop(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, New(Options{}))
	var mu sync.Mutex
	var got []Report
	r := NewRelay(func(p []byte) {
		reps, err := DecodeReports(p)
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, reps...)
		mu.Unlock()
	}, RelayOptions{FlushEvery: time.Hour, Metrics: m})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	for i := range 3 {
		r.Add(rep("s1", "acme", 10, 1, uint64(i+1), t0))
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("%d reports sent at stop, want 3", len(got))
	}
	if n := testutil.ToFloat64(m.reports.WithLabelValues(EventRelayedOut)); n != 3 {
		t.Fatalf("relayed_out = %v, want 3", n)
	}
}
