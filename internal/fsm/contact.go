package fsm

import (
	"sort"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Contact rules: calling windows (settings) and the commands the leader
// proposes when a rule holds a request back (DeferRequests) or ends it
// (EndRequests). The leader computes every time and zone; Apply only
// stores what it is given.

// windowKey orders calling windows: by tenant, the tenant's own window
// (profile "") before its profiles'.
func windowKey(tenant, profile string) string { return tenant + "\x00" + profile }

func windowKeyOf(w *fsmpb.CallingWindow) string { return windowKey(w.GetTenant(), w.GetIvrProfile()) }

func (s *settings) windowIndex(tenant, profile string) (int, bool) {
	k := windowKey(tenant, profile)
	i := sort.Search(len(s.windows), func(i int) bool { return windowKeyOf(s.windows[i]) >= k })
	return i, i < len(s.windows) && windowKeyOf(s.windows[i]) == k
}

func (s *settings) withWindow(w *fsmpb.CallingWindow) *settings {
	i, found := s.windowIndex(w.Tenant, w.IvrProfile)
	n := s.shallow()
	if found {
		n.windows = append([]*fsmpb.CallingWindow(nil), s.windows...)
		n.windows[i] = w
		return n
	}
	n.windows = make([]*fsmpb.CallingWindow, 0, len(s.windows)+1)
	n.windows = append(n.windows, s.windows[:i]...)
	n.windows = append(n.windows, w)
	n.windows = append(n.windows, s.windows[i:]...)
	return n
}

func (s *settings) withoutWindow(i int) *settings {
	n := s.shallow()
	n.windows = make([]*fsmpb.CallingWindow, 0, len(s.windows)-1)
	n.windows = append(n.windows, s.windows[:i]...)
	n.windows = append(n.windows, s.windows[i+1:]...)
	return n
}

// CallingWindow returns the stored calling window of tenant's profile
// (profile "" for the tenant's own), if any. It is shared and must not be
// modified.
func (f *FSM) CallingWindow(tenant, profile string) (*fsmpb.CallingWindow, bool) {
	s := f.view().settings
	i, ok := s.windowIndex(tenant, profile)
	if !ok {
		return nil, false
	}
	return s.windows[i], true
}

// CallingWindows returns every stored calling window, by tenant then
// profile. The slice is the caller's; the entries are shared.
func (f *FSM) CallingWindows() []*fsmpb.CallingWindow {
	return append([]*fsmpb.CallingWindow(nil), f.view().settings.windows...)
}

// Apply side.

func (a *applier) setCallingWindow(c *fsmpb.SetCallingWindow) *fsmpb.ApplyResult {
	w := c.GetWindow()
	if w.GetTenant() == "" {
		return settingFail(fail("", fsmpb.Code_CODE_INVALID_STATE, "tenant is required"))
	}
	// A fresh record: unknown fields of the proposer are not stored.
	n := &fsmpb.CallingWindow{
		Tenant:      w.GetTenant(),
		IvrProfile:  w.GetIvrProfile(),
		UnknownZone: w.GetUnknownZone(),
		DefaultZone: w.GetDefaultZone(),
		Preset:      w.GetPreset(),
	}
	for _, d := range w.GetWeekly() {
		n.Weekly = append(n.Weekly, &fsmpb.DaySpan{Weekday: d.GetWeekday(), OpenMinute: d.GetOpenMinute(), CloseMinute: d.GetCloseMinute()})
	}
	for _, d := range w.GetExceptions() {
		n.Exceptions = append(n.Exceptions, &fsmpb.DateSpan{Date: d.GetDate(), OpenMinute: d.GetOpenMinute(), CloseMinute: d.GetCloseMinute()})
	}
	a.st.settings = a.st.settings.withWindow(n)
	return settingResult(n.Tenant)
}

func (a *applier) deleteCallingWindow(c *fsmpb.DeleteCallingWindow) *fsmpb.ApplyResult {
	s := a.st.settings
	i, found := s.windowIndex(c.GetTenant(), c.GetIvrProfile())
	if !found {
		return settingFail(&fsmpb.ItemResult{Id: c.GetTenant(), Code: fsmpb.Code_CODE_NOT_FOUND, Reason: "calling window not found"})
	}
	a.st.settings = s.withoutWindow(i)
	return settingResult(c.GetTenant())
}

// deferRequests moves waiting requests' next eligible time. An INITIATED
// request (fetched, not yet started) goes back to PENDING. A request whose
// TTL has ended is left for expiry.
func (a *applier) deferRequests(c *fsmpb.DeferRequests) *fsmpb.ApplyResult {
	items := c.GetItems()
	res := &fsmpb.ApplyResult{Items: make([]*fsmpb.ItemResult, 0, len(items))}
	for _, d := range items {
		res.Items = append(res.Items, a.deferOne(d))
	}
	return res
}

func (a *applier) deferOne(d *fsmpb.DeferItem) *fsmpb.ItemResult {
	r, found := a.get(d.GetId())
	switch {
	case !found:
		return notFound(d.GetId())
	case r.State != fsmpb.State_PENDING && r.State != fsmpb.State_INITIATED:
		return invalidState(r, "PENDING or INITIATED")
	case a.now >= r.ExpiresUnixMs:
		return fail(r.Id, fsmpb.Code_CODE_INVALID_STATE, "TTL expired")
	}
	a.update(r, func(n *fsmpb.Request) {
		setPending(n, d.GetUntilUnixMs())
		n.WaitReason = d.GetReason()
	})
	return ok(r.Id)
}

// endRequests ends waiting requests FAILURE without an attempt.
func (a *applier) endRequests(c *fsmpb.EndRequests) *fsmpb.ApplyResult {
	items := c.GetItems()
	res := &fsmpb.ApplyResult{Items: make([]*fsmpb.ItemResult, 0, len(items))}
	for _, e := range items {
		r, found := a.get(e.GetId())
		switch {
		case !found:
			res.Items = append(res.Items, notFound(e.GetId()))
		case r.State != fsmpb.State_PENDING && r.State != fsmpb.State_INITIATED:
			res.Items = append(res.Items, invalidState(r, "PENDING or INITIATED"))
		default:
			a.update(r, func(n *fsmpb.Request) {
				setProcessed(n, fsmpb.Result_FAILURE, e.GetReason())
				n.WaitReason = ""
			})
			res.Items = append(res.Items, ok(r.Id))
		}
	}
	return res
}
