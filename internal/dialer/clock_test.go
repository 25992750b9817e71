package dialer

import (
	"fmt"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/dialer/window"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// The engine runs on its injected clock: with "now" put a second and a
// half before a window opens (an offset of years), a request waits for
// the opening and is dialled at it, by the engine's and the entries'
// clock, not the real one.
func TestEngineInjectedClock(t *testing.T) {
	h := newHarness(t, 20*time.Millisecond)
	h.setPorts("acme", 5)
	opening := time.Date(2031, time.March, 4, 10, 0, 0, 0, time.UTC)
	clock := OffsetClock(time.Until(opening.Add(-1500 * time.Millisecond)))
	h.app.clock = clock
	h.opts = func(o *Options) { o.Clock = clock }
	h.mustApply(fsm.SetCallingWindowCommand(&fsmpb.CallingWindow{Tenant: "acme", Weekly: window.Daily(600, 660)}))
	id := h.create("acme", "p", "+12125550100", "UTC", time.Hour)
	h.start()
	eventually(t, 5*time.Second, "deferred to the opening", func() error {
		r, _ := h.st.Get(id)
		if r.NextRetryUnixMs != opening.UnixMilli() && r.AttemptsMade == 0 {
			return fmt.Errorf("next %v reason %q", time.UnixMilli(r.NextRetryUnixMs).UTC(), r.WaitReason)
		}
		return nil
	})
	h.allNotified([]string{id}, 10*time.Second)
	r, _ := h.st.Get(id)
	if r.AttemptsMade != 1 || r.Attempts[0].StartedUnixMs < opening.UnixMilli() || r.Attempts[0].StartedUnixMs > opening.Add(time.Minute).UnixMilli() {
		t.Fatalf("attempts %d, first started %v (opening %v)", r.AttemptsMade, time.UnixMilli(r.Attempts[0].StartedUnixMs).UTC(), opening)
	}
}
