package dialer

import (
	"context"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// revokingPlatform is the fake platform with a Revoke that always
// confirms the call ended.
type revokingPlatform struct{ *platform }

func (revokingPlatform) Revoke(context.Context, string, string) error { return nil }

// TestEngineHalfOpenHold: an attempt a previous leader left in progress,
// which the platform could not confirm ended, is re-dialled no sooner than
// its start + sendDeadline + HalfOpenHold and holds a port of the budget
// until then; one the platform confirmed ended (revoked) is re-dialled
// after InterruptedRetryDelay.
func TestEngineHalfOpenHold(t *testing.T) {
	const hold = time.Second
	for _, revokes := range []bool{false, true} {
		h := newHarness(t, 300*time.Millisecond)
		h.setPorts("acme", 2)
		if revokes {
			h.backend = revokingPlatform{h.plat}
		}
		h.opts = func(o *Options) { o.HalfOpenHold = hold }
		ids := h.submit("acme", "P", 6, 1, time.Hour, digits)
		ctx := context.Background()
		if _, _, err := h.app.ApplyLeader(ctx, fsm.ClaimCommand(ids[:1])); err != nil {
			t.Fatal(err)
		}
		if _, _, err := h.app.ApplyLeader(ctx, fsm.StartAttemptsCommand([]*fsmpb.AttemptStart{{Id: ids[0], CallUuid: "old-0"}})); err != nil {
			t.Fatal(err)
		}
		r, _ := h.st.Get(ids[0])
		started := time.UnixMilli(r.Attempts[0].StartedUnixMs)
		until := started.Add(sendDeadline + hold)
		h.start()
		h.allNotified(ids, 30*time.Second)

		var redial time.Time
		var before []placed // calls that started while the hold ran
		for _, c := range h.plat.snapshot() {
			if c.call.RequestID == ids[0] {
				redial = c.start
			}
			if c.start.Before(until) {
				before = append(before, c)
			}
		}
		if !revokes {
			if redial.Before(until) {
				t.Errorf("re-dialled %s after its start, before the hold ended (%s)", redial.Sub(started), sendDeadline+hold)
			}
			// The half-open attempt holds one of the two ports: the
			// engine's own calls never overlapped while it did.
			for i, a := range before {
				for _, b := range before[i+1:] {
					if a.start.Before(b.end) && b.start.Before(a.end) {
						t.Fatalf("two calls up at once (%s, %s) while the half-open attempt held a port", a.call.RequestID, b.call.RequestID)
					}
				}
			}
		} else if redial.Sub(started) > sendDeadline {
			t.Errorf("revoked attempt re-dialled %s after its start, want about InterruptedRetryDelay", redial.Sub(started))
		}
	}
}
