package fsm

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// dialogUpdates stores the dialog state of current attempts: each update
// replaces its leg's entry on the request's last attempt, if that attempt
// is still the one in progress (a late update of an ended or superseded
// attempt is refused, so an ended call is never adopted).
func (a *applier) dialogUpdates(c *fsmpb.DialogUpdates) *fsmpb.ApplyResult {
	ups := c.GetUpdates()
	res := &fsmpb.ApplyResult{Items: make([]*fsmpb.ItemResult, 0, len(ups))}
	for _, u := range ups {
		res.Items = append(res.Items, a.dialogOne(u))
	}
	return res
}

func (a *applier) dialogOne(u *fsmpb.DialogUpdate) *fsmpb.ItemResult {
	r, found := a.get(u.GetId())
	switch {
	case !found:
		return notFound(u.GetId())
	case r.State != fsmpb.State_IN_PROGRESS:
		return invalidState(r, "IN_PROGRESS")
	case r.LastCallUuid != u.GetCallUuid() || len(r.Attempts) == 0:
		return fail(r.Id, fsmpb.Code_CODE_INVALID_STATE, "stale dialog: call %q is not the current attempt", u.GetCallUuid())
	case u.GetDialog() == nil:
		return fail(r.Id, fsmpb.Code_CODE_INVALID_STATE, "no dialog state")
	}
	leg := u.GetDialog().GetLeg()
	cur := r.Attempts[len(r.Attempts)-1].GetDialogs()
	i := slices.IndexFunc(cur, func(d *fsmpb.DialogState) bool { return d.GetLeg() == leg })
	st := u.GetDialog()
	if isEndMark(st) {
		// The far end's BYE, as a mark on the leg's stored state (a few
		// bytes instead of the whole state again).
		if i < 0 {
			return fail(r.Id, fsmpb.Code_CODE_INVALID_STATE, "dialog end for leg %q, which has no state", leg)
		}
		merged := proto.Clone(cur[i]).(*fsmpb.DialogState)
		merged.RemoteEndedUnixMs, merged.ByeDetection = st.GetRemoteEndedUnixMs(), st.GetByeDetection()
		st = merged
	}
	a.update(r, func(n *fsmpb.Request) {
		k := len(n.Attempts) - 1
		last := copyAttempt(n.Attempts[k])
		n.Attempts[k] = last
		ds := slices.Clone(last.Dialogs)
		if i < 0 {
			ds = append(ds, st)
		} else {
			ds[i] = st
		}
		last.Dialogs = ds
	})
	return ok(r.Id)
}

// isEndMark reports whether a dialog update is only the far end's end of
// a leg already stored: no Call-ID, an end time.
func isEndMark(st *fsmpb.DialogState) bool {
	return st.GetCallId() == "" && st.GetRemoteEndedUnixMs() != 0
}
