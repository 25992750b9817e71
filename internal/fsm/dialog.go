package fsm

import (
	"slices"

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
	a.update(r, func(n *fsmpb.Request) {
		k := len(n.Attempts) - 1
		last := copyAttempt(n.Attempts[k])
		n.Attempts[k] = last
		ds := slices.Clone(last.Dialogs)
		i := slices.IndexFunc(ds, func(d *fsmpb.DialogState) bool { return d.GetLeg() == u.GetDialog().GetLeg() })
		if i < 0 {
			ds = append(ds, u.GetDialog())
		} else {
			ds[i] = u.GetDialog()
		}
		last.Dialogs = ds
	})
	return ok(r.Id)
}
