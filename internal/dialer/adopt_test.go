package dialer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// adopter is the test platform that also adopts calls: Adopt records the
// call and its dialogs, holds it briefly and reports a success; Place
// reports the dialog state of its calls.
type adopter struct {
	*platform
	mu      sync.Mutex
	adopted map[string][]*fsmpb.DialogState // by call UUID
}

func (a *adopter) Adopt(ctx context.Context, c telephony.Call, d []*fsmpb.DialogState) (telephony.Outcome, error) {
	a.mu.Lock()
	a.adopted[c.CallUUID] = d
	a.mu.Unlock()
	select {
	case <-ctx.Done():
		return telephony.Outcome{}, ctx.Err()
	case <-time.After(20 * time.Millisecond):
	}
	return telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_SUCCESS, Reason: "TreatmentApplied (SIP 200)"}, nil
}

func (a *adopter) Place(ctx context.Context, c telephony.Call) (telephony.Outcome, error) {
	if c.Dialog != nil {
		c.Dialog(&fsmpb.DialogState{Leg: "callee", CallId: "cid-" + c.CallUUID, Confirmed: true})
	}
	return a.platform.Place(ctx, c)
}

// TestEngineAdoptsPreviousLeadersCalls: attempts a previous leader left in
// progress with dialog state are adopted (the backend continues them and
// their real outcome is recorded on the same attempt: one attempt, no
// interruption); those without dialog state are interrupted and retried
// as before; with Takeover off, every one is interrupted. Dialog states a
// backend reports for new calls are committed on their attempts.
func TestEngineAdoptsPreviousLeadersCalls(t *testing.T) {
	for _, takeover := range []bool{true, false} {
		h := newHarness(t, 200*time.Millisecond)
		h.setPorts("acme", 5)
		a := &adopter{platform: h.plat, adopted: map[string][]*fsmpb.DialogState{}}
		h.backend = a
		h.opts = func(o *Options) { o.Takeover = takeover }
		ids := h.submit("acme", "P", 3, 2, time.Hour, digits)
		ctx := context.Background()
		if _, _, err := h.app.ApplyLeader(ctx, fsm.ClaimCommand(ids)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := h.app.ApplyLeader(ctx, fsm.StartAttemptsCommand([]*fsmpb.AttemptStart{
			{Id: ids[0], CallUuid: "old-0"}, {Id: ids[1], CallUuid: "old-1"},
		})); err != nil {
			t.Fatal(err)
		}
		st := &fsmpb.DialogState{Leg: "callee", CallId: "cid-0", Established: true, Confirmed: true}
		if _, _, err := h.app.ApplyLeader(ctx, fsm.DialogUpdatesCommand([]*fsmpb.DialogUpdate{{Id: ids[0], CallUuid: "old-0", Dialog: st}})); err != nil {
			t.Fatal(err)
		}
		h.start()
		h.allNotified(ids, 10*time.Second)
		r0, _ := h.st.Get(ids[0])
		r1, _ := h.st.Get(ids[1])
		a.mu.Lock()
		got := a.adopted["old-0"]
		_, adopted1 := a.adopted["old-1"]
		a.mu.Unlock()
		if takeover {
			if len(got) != 1 || got[0].CallId != "cid-0" || adopted1 {
				t.Fatalf("adopted %v (old-1 adopted: %v), want old-0's dialog only", got, adopted1)
			}
			if len(r0.Attempts) != 1 || r0.Attempts[0].Outcome != fsmpb.OutcomeClass_OUTCOME_SUCCESS || r0.AttemptsMade != 1 || len(r0.Attempts[0].Dialogs) != 0 {
				t.Errorf("adopted request: %v, want one successful attempt, dialogs cleared", r0.Attempts)
			}
			if h.recv.count() < 3 || h.recv.last(ids[0]).Get("Result") != "SUCCESS" {
				t.Errorf("notification of the adopted call: %v", h.recv.last(ids[0]))
			}
			if n := len(h.plat.snapshot()); n != 2 { // old-1 re-dialled and the fresh request; old-0 not
				t.Errorf("%d calls placed, want 2", n)
			}
		} else {
			if got != nil {
				t.Fatal("adopted with takeover off")
			}
			if len(r0.Attempts) != 2 || r0.Attempts[0].Outcome != fsmpb.OutcomeClass_OUTCOME_INTERRUPTED {
				t.Errorf("takeover off: %v, want interrupted then retried", r0.Attempts)
			}
		}
		if len(r1.Attempts) != 2 || r1.Attempts[0].Outcome != fsmpb.OutcomeClass_OUTCOME_INTERRUPTED {
			t.Errorf("no dialog state: %v, want interrupted then retried", r1.Attempts)
		}
		h.stop()
	}
}
