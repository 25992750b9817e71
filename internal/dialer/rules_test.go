package dialer

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/seed-7bfc04c2/dialtone/internal/dialer/window"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// create stores one request with an explicit time zone (may be empty).
func (h *harness) create(tenant, profile, telnum, zone string, ttl time.Duration) string {
	h.t.Helper()
	r := &fsmpb.Request{
		Id: uuid.Must(uuid.NewV7()).String(), Tenant: tenant, Token: "T", IvrProfile: profile,
		Telnum: telnum, TimeZone: zone, NotificationUrl: h.srv.URL + "/result", MaxAttempts: 1, TtlMs: ttl.Milliseconds(),
	}
	r.Fingerprint = fsm.Fingerprint(r)
	res, _, err := h.app.ApplyLeader(context.Background(), fsm.CreateCommand([]*fsmpb.Request{r}, 0))
	if err != nil || res.Items[0].Code != fsmpb.Code_CODE_OK {
		h.t.Fatalf("create: %v %v", res, err)
	}
	return r.Id
}

func (h *harness) mustApply(cmd *fsmpb.Command) {
	h.t.Helper()
	res, _, err := h.app.ApplyLeader(context.Background(), cmd)
	if err != nil || res.Items[0].Code != fsmpb.Code_CODE_OK {
		h.t.Fatalf("apply: %v %v", res, err)
	}
}

func (h *harness) waitingOf(tenant string) map[string]int {
	for _, ts := range h.engine.Stats().Tenants {
		if ts.Tenant == tenant {
			return ts.Waiting
		}
	}
	return nil
}

// Every PENDING request not being dialled has a reason: a tenant without
// ports says no_ports (in Stats and the metric) until it gets ports.
func TestEngineWaitingReasons(t *testing.T) {
	h := newHarness(t, 20*time.Millisecond)
	h.setPorts("acme", 5)
	ghost := h.submit("ghost", "p", 7, 1, time.Hour, digits)
	acme := h.submit("acme", "p", 3, 1, time.Hour, digits)
	h.start()
	h.allNotified(acme, 10*time.Second)
	eventually(t, 5*time.Second, "ghost's requests counted as no_ports", func() error {
		if w := h.waitingOf("ghost"); !maps.Equal(w, map[string]int{WaitNoPorts: 7}) {
			return fmt.Errorf("waiting %v", w)
		}
		if n := testutil.ToFloat64(h.engine.m.Waiting.WithLabelValues("ghost", WaitNoPorts)); n != 7 {
			return fmt.Errorf("metric %v", n)
		}
		return nil
	})
	if w := h.waitingOf("acme"); len(w) != 0 {
		t.Errorf("acme has nothing waiting, got %v", w)
	}
	h.setPorts("ghost", 3)
	h.allNotified(ghost, 10*time.Second)
	eventually(t, 5*time.Second, "the no_ports gauge cleared", func() error {
		if n := testutil.CollectAndCount(h.engine.m.Waiting); n != 0 {
			return fmt.Errorf("%d waiting series left", n)
		}
		return nil
	})
}

// Calling windows at fetch time: a request outside its window waits
// (deferred to the opening, wait reason outside_window, counted as such);
// a profile's window replaces the tenant's; an unknown zone under the skip
// policy and a window opening after the TTL end the request FAILURE
// without an attempt, notified.
func TestEngineCallingWindow(t *testing.T) {
	h := newHarness(t, 20*time.Millisecond)
	h.setPorts("acme", 5)
	now := time.Now().UTC()
	// Opens at the next full hour but one, in UTC: 1-2 hours from now.
	opening := now.Truncate(time.Hour).Add(2 * time.Hour)
	hour := uint32(opening.Hour())
	h.mustApply(fsm.SetCallingWindowCommand(&fsmpb.CallingWindow{Tenant: "acme", Weekly: window.Daily(hour*60, hour*60+60), UnknownZone: window.UnknownSkip}))
	h.mustApply(fsm.SetCallingWindowCommand(&fsmpb.CallingWindow{Tenant: "acme", IvrProfile: "always", Weekly: window.Daily(0, 1440)}))

	later := h.create("acme", "p", "+12125550100", "UTC", 24*time.Hour)
	open := h.create("acme", "always", "+12125550100", "", 24*time.Hour)
	unknown := h.create("acme", "p", "+15550100", "", 24*time.Hour)
	short := h.create("acme", "p", "+12125550100", "UTC", 30*time.Minute)
	h.start()

	h.allNotified([]string{open, unknown, short}, 10*time.Second)
	for id, want := range map[string]string{unknown: window.ReasonUnknownZone, short: window.ReasonTTLInWindow} {
		r, _ := h.st.Get(id)
		if r.Result != fsmpb.Result_FAILURE || r.ResultReason != want || r.AttemptsMade != 0 {
			t.Errorf("%s: %s %q after %d attempts, want FAILURE %q", id, r.Result, r.ResultReason, r.AttemptsMade, want)
		}
	}
	if r, _ := h.st.Get(open); r.Result != fsmpb.Result_SUCCESS || r.AttemptsMade != 1 {
		t.Errorf("request in its profile's window: %s after %d attempts", r.Result, r.AttemptsMade)
	}
	eventually(t, 5*time.Second, "the request outside its window waits for the opening", func() error {
		r, _ := h.st.Get(later)
		if r.State != fsmpb.State_PENDING || r.NextRetryUnixMs != opening.UnixMilli() || r.WaitReason != window.WaitOutside || r.AttemptsMade != 0 {
			return fmt.Errorf("%s next %v reason %q attempts %d", r.State, time.UnixMilli(r.NextRetryUnixMs).UTC(), r.WaitReason, r.AttemptsMade)
		}
		if w := h.waitingOf("acme"); !maps.Equal(w, map[string]int{window.WaitOutside: 1}) {
			return fmt.Errorf("waiting %v", w)
		}
		return nil
	})
	for _, c := range h.plat.snapshot() {
		if c.call.RequestID == later {
			t.Fatalf("dialled outside its window")
		}
	}
	// Removing the window lets it be dialled at once.
	h.mustApply(fsm.DeleteCallingWindowCommand("acme", ""))
	h.mustApply(fsm.DeferCommand([]*fsmpb.DeferItem{{Id: later, UntilUnixMs: time.Now().UnixMilli()}}))
	h.allNotified([]string{later}, 10*time.Second)
}

// A suppressed number is never dialled: listed before the fetch, its
// request ends FAILURE Suppressed without an attempt, notified; other
// numbers of the tenant are dialled.
func TestEngineSuppression(t *testing.T) {
	h := newHarness(t, 20*time.Millisecond)
	h.setPorts("acme", 5)
	h.mustApply(fsm.AddSuppressionsCommand(&fsmpb.SuppressionChunk{Tenant: "acme", Numbers: []uint64{15550001}}))
	listed := h.create("acme", "p", "+15550001", "", time.Hour)
	other := h.create("acme", "p", "+15550002", "", time.Hour)
	h.start()
	h.allNotified([]string{listed, other}, 10*time.Second)
	if r, _ := h.st.Get(listed); r.Result != fsmpb.Result_FAILURE || r.ResultReason != fsm.ReasonSuppressed || r.AttemptsMade != 0 {
		t.Fatalf("listed: %s %q after %d attempts", r.Result, r.ResultReason, r.AttemptsMade)
	}
	if q := h.recv.last(listed); q.Get("Result") != "FAILURE" {
		t.Fatalf("notified %v", q)
	}
	for _, c := range h.plat.snapshot() {
		if c.call.RequestID == listed {
			t.Fatal("dialled a suppressed number")
		}
	}
	if r, _ := h.st.Get(other); r.Result != fsmpb.Result_SUCCESS {
		t.Fatalf("other: %s", r.Result)
	}
}

// Frequency caps at fetch time: once a number has had its attempts, other
// requests to it wait until the cap allows one (wait reason
// frequency_cap, counted as such), or end FAILURE when that is past their
// TTL; other numbers are dialled.
func TestEngineFrequencyCap(t *testing.T) {
	h := newHarness(t, 20*time.Millisecond)
	h.setPorts("acme", 5)
	h.mustApply(fsm.FreqSetCapCommand(&fsmpb.FreqCap{Tenant: "acme", MaxAttempts: 1, PeriodMs: time.Hour.Milliseconds()}))
	h.start()
	first := h.create("acme", "p", "+15550001", "", 24*time.Hour)
	h.allNotified([]string{first}, 10*time.Second)
	r0, _ := h.st.Get(first)
	endedAt := r0.Attempts[0].EndedUnixMs // the period counts an ended call from its end

	held := h.create("acme", "p", "+15550001", "", 24*time.Hour)
	short := h.create("acme", "p", "+15550001", "", 30*time.Minute)
	other := h.create("acme", "p", "+15550002", "", time.Hour)
	h.allNotified([]string{short, other}, 10*time.Second)
	if r, _ := h.st.Get(short); r.Result != fsmpb.Result_FAILURE || r.ResultReason != fsm.ReasonFreqTTL || r.AttemptsMade != 0 {
		t.Errorf("short: %s %q after %d attempts", r.Result, r.ResultReason, r.AttemptsMade)
	}
	if r, _ := h.st.Get(other); r.Result != fsmpb.Result_SUCCESS {
		t.Errorf("other number: %s", r.Result)
	}
	eventually(t, 5*time.Second, "the capped request waits for the period's end", func() error {
		r, _ := h.st.Get(held)
		if r.State != fsmpb.State_PENDING || r.NextRetryUnixMs != endedAt+time.Hour.Milliseconds() || r.WaitReason != fsm.WaitFrequencyCap || r.AttemptsMade != 0 {
			return fmt.Errorf("%s next %d reason %q attempts %d", r.State, r.NextRetryUnixMs, r.WaitReason, r.AttemptsMade)
		}
		if w := h.waitingOf("acme"); !maps.Equal(w, map[string]int{fsm.WaitFrequencyCap: 1}) {
			return fmt.Errorf("waiting %v", w)
		}
		return nil
	})
	for _, c := range h.plat.snapshot() {
		if c.call.RequestID == held || c.call.RequestID == short {
			t.Fatal("dialled a number past its frequency cap")
		}
	}
}
