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
	h.mustOK(t0+5, record("r", "c1", fsmpb.OutcomeClass_OUTCOME_BUSY, "DestinationBusy", t0+10))
	if ds := h.get("r").Attempts[0].Dialogs; len(ds) != 0 {
		t.Fatalf("dialogs kept after the attempt ended: %v", ds)
	}
	if got := h.one(t0+6, dialogUpdate("r", "c1", "callee", 4)); got.Code != fsmpb.Code_CODE_INVALID_STATE {
		t.Fatalf("update after the end: %v", got)
	}
}
