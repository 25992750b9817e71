package dialer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/sim/mediasim"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// TestEngineRevokesPreviousLeadersCalls: a previous leader that was paused,
// not killed, still has its call up on the media platform. The new leader
// revokes it before retrying the request, so the platform never carries two
// calls of the request, and the paused leader cannot place that attempt
// when it wakes. Found by the chaos suite (pause-leader).
func TestEngineRevokesPreviousLeadersCalls(t *testing.T) {
	h := newHarness(t, time.Hour)
	h.setPorts("acme", 10)
	sim, err := mediasim.New(mediasim.Options{Tenant: "acme", PortsPerServer: 10,
		RingTime: mediasim.Fixed(10 * time.Millisecond), TalkTime: mediasim.Fixed(time.Hour), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h.backend = sim
	ids := h.submit("acme", "P", 1, 3, time.Hour, digits)
	ctx := context.Background()
	if _, _, err := h.app.ApplyLeader(ctx, fsm.ClaimCommand(ids)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.app.ApplyLeader(ctx, fsm.StartAttemptsCommand([]*fsmpb.AttemptStart{
		{Id: ids[0], CallUuid: "old-0"},
	})); err != nil {
		t.Fatal(err)
	}
	// The paused leader's call: up until someone hangs it up.
	old := telephony.Call{RequestID: ids[0], CallUUID: "old-0", Tenant: "acme", Telnum: digits(0), Attempt: 1}
	oldDone := make(chan error, 1)
	go func() {
		_, err := sim.Place(context.Background(), old)
		oldDone <- err
	}()
	eventually(t, 5*time.Second, "the old call up", func() error {
		if n := sim.Stats().InProgress; n != 1 {
			return fmt.Errorf("%d calls in progress", n)
		}
		return nil
	})

	h.start()
	select {
	case err := <-oldDone:
		if err == nil {
			t.Fatal("the old call ended normally, not hung up")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the new leader did not hang up its predecessor's call")
	}
	eventually(t, 10*time.Second, "the request retried", func() error {
		if calls := sim.CallsOf(ids[0], 0); len(calls) < 2 {
			return fmt.Errorf("%d calls", len(calls))
		}
		return nil
	})
	if v := sim.Stats().ConcurrentViolations; v != 0 {
		t.Fatalf("%d concurrent calls for one request: %+v", v, sim.CallsOf(ids[0], 0))
	}
	// The paused leader wakes up and dials the attempt it had armed: fenced.
	if _, err := sim.Place(ctx, old); !errors.Is(err, telephony.ErrRevoked) {
		t.Fatalf("placing a revoked call: %v, want ErrRevoked", err)
	}
	if n := testutil.ToFloat64(h.engine.m.Revoked); n != 1 {
		t.Errorf("dialtone_dialer_revoked_total %v, want 1", n)
	}
	r, _ := h.st.Get(ids[0])
	if len(r.Attempts) < 1 || r.Attempts[0].Outcome != fsmpb.OutcomeClass_OUTCOME_INTERRUPTED {
		t.Fatalf("attempts %v, want the old one interrupted", r.Attempts)
	}
}
