package fsm

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

func win(tenant, profile string, open, close uint32) *fsmpb.CallingWindow {
	w := &fsmpb.CallingWindow{Tenant: tenant, IvrProfile: profile, UnknownZone: "skip"}
	for d := range uint32(7) {
		w.Weekly = append(w.Weekly, &fsmpb.DaySpan{Weekday: d, OpenMinute: open, CloseMinute: close})
	}
	w.Exceptions = []*fsmpb.DateSpan{{Date: "2026-12-25"}}
	return w
}

func winKeys(ws []*fsmpb.CallingWindow) string {
	var ks []string
	for _, w := range ws {
		ks = append(ks, w.Tenant+"/"+w.IvrProfile)
	}
	return strings.Join(ks, ",")
}

func TestDeferRequests(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, create(newReq("a", "acme", "p", 3, 10_000), newReq("b", "acme", "p", 3, 10_000), newReq("c", "acme", "p", 3, 10_000)))
	h.mustOK(t0, claim("b"))
	h.mustOK(t0+1, DeferCommand([]*fsmpb.DeferItem{{Id: "a", UntilUnixMs: t0 + 5000, Reason: "outside_window"}, {Id: "b", UntilUnixMs: t0 + 6000, Reason: "frequency_cap"}}))
	for id, want := range map[string]struct {
		until  int64
		reason string
	}{"a": {t0 + 5000, "outside_window"}, "b": {t0 + 6000, "frequency_cap"}} {
		r := h.get(id)
		if r.State != fsmpb.State_PENDING || r.NextRetryUnixMs != want.until || r.WaitReason != want.reason || r.AttemptsMade != 0 {
			t.Errorf("%s: %s next %d reason %q attempts %d", id, r.State, r.NextRetryUnixMs, r.WaitReason, r.AttemptsMade)
		}
	}
	// Due order follows the new times.
	if due := h.f.Due("acme", "p", fsmpb.State_PENDING, 3); len(due) != 3 || due[0].Id != "c" || due[1].Id != "a" || due[2].Id != "b" {
		t.Fatalf("due order %v", due)
	}
	// Starting an attempt clears the reason.
	h.mustOK(t0+5000, claim("a"))
	h.mustOK(t0+5000, start("a", "u1"))
	if r := h.get("a"); r.WaitReason != "" {
		t.Fatalf("wait reason %q after start", r.WaitReason)
	}
	// Refused: in progress, expired, unknown.
	res := h.apply(t0+20_000, DeferCommand([]*fsmpb.DeferItem{{Id: "a", UntilUnixMs: 1}, {Id: "c", UntilUnixMs: 1}, {Id: "zz", UntilUnixMs: 1}}))
	for i, want := range []fsmpb.Code{fsmpb.Code_CODE_INVALID_STATE, fsmpb.Code_CODE_INVALID_STATE, fsmpb.Code_CODE_NOT_FOUND} {
		if res.Items[i].Code != want {
			t.Errorf("item %d: %s, want %s", i, res.Items[i].Code, want)
		}
	}
}

func TestEndRequests(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, create(newReq("a", "acme", "p", 3, 10_000), newReq("b", "acme", "p", 3, 10_000)))
	h.mustOK(t0, claim("b"))
	h.mustOK(t0+1, DeferCommand([]*fsmpb.DeferItem{{Id: "a", UntilUnixMs: t0 + 5000, Reason: "outside_window"}}))
	h.mustOK(t0+2, EndCommand([]*fsmpb.EndItem{{Id: "a", Reason: "Suppressed"}, {Id: "b", Reason: "Unknown Time Zone"}}))
	for id, reason := range map[string]string{"a": "Suppressed", "b": "Unknown Time Zone"} {
		r := h.get(id)
		if r.State != fsmpb.State_PROCESSED || r.Result != fsmpb.Result_FAILURE || r.ResultReason != reason ||
			r.AttemptsMade != 0 || r.NotifyState != fsmpb.NotifyState_NOTIFY_PENDING || r.WaitReason != "" {
			t.Errorf("%s: %v", id, r)
		}
	}
	if it := h.one(t0+3, EndCommand([]*fsmpb.EndItem{{Id: "a", Reason: "x"}})); it.Code != fsmpb.Code_CODE_INVALID_STATE {
		t.Fatalf("ending a finished request: %s", it.Code)
	}
}

func TestCallingWindowsSetDeleteSnapshot(t *testing.T) {
	h := settingsState(t)
	h.mustOK(t0, SetCallingWindowCommand(win("globex", "", 540, 1200)))
	h.mustOK(t0, SetCallingWindowCommand(win("acme", "sales", 600, 1080)))
	h.mustOK(t0, SetCallingWindowCommand(win("acme", "", 480, 1260)))
	h.mustOK(t0, SetCallingWindowCommand(win("acme", "", 480, 1200))) // replaces
	if got := winKeys(h.f.CallingWindows()); got != "acme/,acme/sales,globex/" {
		t.Fatalf("windows %s", got)
	}
	if w, ok := h.f.CallingWindow("acme", ""); !ok || w.Weekly[0].CloseMinute != 1200 || len(w.Exceptions) != 1 {
		t.Fatalf("acme window %v", w)
	}
	if it := h.one(t0, SetCallingWindowCommand(&fsmpb.CallingWindow{})); it.Code != fsmpb.Code_CODE_INVALID_STATE {
		t.Fatalf("window without tenant: %s", it.Code)
	}
	h.mustOK(t0, DeleteCallingWindowCommand("globex", ""))
	if it := h.one(t0, DeleteCallingWindowCommand("globex", "")); it.Code != fsmpb.Code_CODE_NOT_FOUND {
		t.Fatalf("second delete: %s", it.Code)
	}

	data := snapshotBytes(t, h.f)
	g := New()
	g.ApplyBatch(nil)
	if err := g.Restore(readCloser(data)); err != nil {
		t.Fatal(err)
	}
	want, got := h.f.CallingWindows(), g.CallingWindows()
	if winKeys(got) != "acme/,acme/sales" {
		t.Fatalf("restored %s", winKeys(got))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("window %d: restored %v, want %v", i, got[i], want[i])
		}
	}
	if entTenants(g.Entitlements()) != "acme,globex" || g.Count() != 1 {
		t.Fatal("other sections lost")
	}
	if !bytes.Equal(snapshotBytes(t, g), data) {
		t.Fatal("re-snapshot differs")
	}
	// Truncated in the window section: refused.
	for i := len(data) - 20; i < len(data); i++ {
		if err := New().Restore(readCloser(data[:i])); err == nil {
			t.Fatalf("truncated at %d restored", i)
		}
	}
}
