package fsm

import (
	"testing"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

func dialogUpdate(id, callUUID, leg string, cseq uint32) *fsmpb.Command {
	return DialogUpdatesCommand([]*fsmpb.DialogUpdate{{Id: id, CallUuid: callUUID, Dialog: &fsmpb.DialogState{Leg: leg, CallId: id + "-" + leg, LocalCseq: cseq}}})
}

// TestDialogUpdates: dialog state is stored per leg on the current
// attempt, replaced by later updates, refused for a stale or ended
// attempt, and cleared when the attempt's result is recorded.
func TestDialogUpdates(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, create(newReq("r", "t1", "p1", 3, 60_000)))
	h.mustOK(t0, claim("r"))
	if got := h.one(t0, dialogUpdate("r", "c1", "callee", 1)); got.Code != fsmpb.Code_CODE_INVALID_STATE {
		t.Fatalf("update before start: %v", got)
	}
	h.mustOK(t0, start("r", "c1"))
	h.mustOK(t0, dialogUpdate("r", "c1", "callee", 1))
	h.mustOK(t0, dialogUpdate("r", "c1", "ivr", 1))
	h.mustOK(t0, dialogUpdate("r", "c1", "callee", 3))
	if got := h.one(t0, dialogUpdate("r", "c0", "callee", 9)); got.Code != fsmpb.Code_CODE_INVALID_STATE {
		t.Fatalf("stale call: %v", got)
	}
	ds := h.get("r").Attempts[0].Dialogs
	if len(ds) != 2 || ds[0].Leg != "callee" || ds[0].LocalCseq != 3 || ds[1].Leg != "ivr" {
		t.Fatalf("dialogs: %v", ds)
	}
	// An end mark (the far end's BYE) merges into the stored leg; a mark
	// for a leg with no state is refused.
	endMark := func(leg string) *fsmpb.Command {
		return DialogUpdatesCommand([]*fsmpb.DialogUpdate{{Id: "r", CallUuid: "c1", Dialog: &fsmpb.DialogState{Leg: leg, RemoteEndedUnixMs: t0 + 4, ByeDetection: "machine"}}})
	}
	h.mustOK(t0+4, endMark("callee"))
	if got := h.one(t0+4, endMark("other")); got.Code != fsmpb.Code_CODE_INVALID_STATE {
		t.Fatalf("end mark of a leg without state: %v", got)
	}
	ds = h.get("r").Attempts[0].Dialogs
	if c := ds[0]; len(ds) != 2 || c.CallId != "r-callee" || c.LocalCseq != 3 || c.RemoteEndedUnixMs != t0+4 || c.ByeDetection != "machine" {
		t.Fatalf("dialogs after the end mark: %v", ds)
	}
	h.mustOK(t0+5, record("r", "c1", fsmpb.OutcomeClass_OUTCOME_BUSY, "DestinationBusy", t0+10))
	if ds := h.get("r").Attempts[0].Dialogs; len(ds) != 0 {
		t.Fatalf("dialogs kept after the attempt ended: %v", ds)
	}
	if got := h.one(t0+6, dialogUpdate("r", "c1", "callee", 4)); got.Code != fsmpb.Code_CODE_INVALID_STATE {
		t.Fatalf("update after the end: %v", got)
	}
}
