package server

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/auth"
	"github.com/seed-7bfc04c2/dialtone/internal/dialer/window"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Calling windows (docs/compliance.md): one per tenant, optionally one per
// IVR profile that replaces the tenant's for that profile, replicated
// through Raft like the pacing entries.

const (
	maxWindowSpans      = 100
	maxWindowExceptions = 1000
)

// GetCallingWindow answers the stored window of the tenant (or profile)
// and the window in force for it.
func (s *Dialer) GetCallingWindow(ctx context.Context, req *pb.GetCallingWindowRequest) (*pb.GetCallingWindowResponse, error) {
	if err := windowTarget(ctx, req.GetTenant(), req.GetIvrProfile(), auth.RoleRead); err != nil {
		return nil, err
	}
	out := &pb.GetCallingWindowResponse{NodeId: s.repl.NodeID()}
	if w, ok := s.store.CallingWindow(req.GetTenant(), req.GetIvrProfile()); ok {
		out.Stored, out.Window = true, CallingWindowToPublic(w)
	}
	if w, ok := s.store.CallingWindow(req.GetTenant(), req.GetIvrProfile()); ok && req.GetIvrProfile() != "" {
		out.EffectiveFrom, out.Effective = "profile", CallingWindowToPublic(w)
	} else if w, ok := s.store.CallingWindow(req.GetTenant(), ""); ok {
		out.EffectiveFrom, out.Effective = "tenant", CallingWindowToPublic(w)
	}
	return out, nil
}

// SetCallingWindow validates and replaces the tenant's (or profile's)
// window through Raft.
func (s *Dialer) SetCallingWindow(ctx context.Context, req *pb.SetCallingWindowRequest) (*pb.SetCallingWindowResponse, error) {
	if err := windowTarget(ctx, req.GetTenant(), req.GetIvrProfile(), auth.RoleAdmin); err != nil {
		return nil, err
	}
	w, fe := CallingWindowFromPublic(req.GetTenant(), req.GetIvrProfile(), req.GetWindow())
	if len(fe) > 0 {
		return nil, fe.status()
	}
	idx, err := applySetting(ctx, s.repl, s.opts.WriteTimeout, fsm.SetCallingWindowCommand(w), false)
	if err != nil {
		return nil, err
	}
	_ = s.waitApplied(ctx, idx)
	return &pb.SetCallingWindowResponse{NodeId: s.repl.NodeID(), Index: idx, Window: CallingWindowToPublic(w)}, nil
}

// DeleteCallingWindow removes the tenant's (or profile's) window
// (NotFound if none).
func (s *Dialer) DeleteCallingWindow(ctx context.Context, req *pb.DeleteCallingWindowRequest) (*pb.DeleteCallingWindowResponse, error) {
	if err := windowTarget(ctx, req.GetTenant(), req.GetIvrProfile(), auth.RoleAdmin); err != nil {
		return nil, err
	}
	idx, err := applySetting(ctx, s.repl, s.opts.WriteTimeout, fsm.DeleteCallingWindowCommand(req.GetTenant(), req.GetIvrProfile()), true)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, status.Errorf(codes.NotFound, "no calling window for %s", windowName(req.GetTenant(), req.GetIvrProfile()))
		}
		return nil, err
	}
	_ = s.waitApplied(ctx, idx)
	return &pb.DeleteCallingWindowResponse{NodeId: s.repl.NodeID(), Index: idx}, nil
}

func windowName(tenant, profile string) string {
	if profile == "" {
		return "tenant " + quote(tenant)
	}
	return "tenant " + quote(tenant) + " profile " + quote(profile)
}

// windowTarget validates the tenant and profile a call names and checks
// the caller's role for the tenant.
func windowTarget(ctx context.Context, tenant, profile string, role auth.Role) error {
	if err := ValidateTenant(tenant); err != nil {
		return FieldErrorStatus("tenant", err.(FieldError).Reason)
	}
	if len(profile) > 128 || !printable(profile) {
		return FieldErrorStatus("ivr_profile", "must be at most 128 printable characters")
	}
	return pacingAccess(ctx, tenant, role)
}

// CallingWindowFromPublic validates a public window for tenant and profile
// and returns the record to store. Field errors name the public fields
// ("window.weekly[0].open", ...). A preset fills weekly when weekly is
// empty.
func CallingWindowFromPublic(tenant, profile string, w *pb.CallingWindow) (*fsmpb.CallingWindow, fieldErrors) {
	var fe fieldErrors
	out := &fsmpb.CallingWindow{Tenant: tenant, IvrProfile: profile, UnknownZone: w.GetUnknownZone(), DefaultZone: w.GetDefaultZone(), Preset: w.GetPreset()}
	if p := w.GetPreset(); p != "" {
		preset, ok := window.Presets[p]
		switch {
		case !ok:
			fe.add("window.preset", "%q is not a preset (%s)", truncate(p, 40), strings.Join(presetNames(), ", "))
		case len(w.GetWeekly()) == 0:
			out.Weekly = preset()
		}
	} else if len(w.GetWeekly()) == 0 {
		fe.add("window.weekly", "is required without a preset (an always-closed window never dials: delete the window instead)")
	}
	if len(w.GetWeekly()) > maxWindowSpans {
		fe.add("window.weekly", "has %d spans; at most %d", len(w.GetWeekly()), maxWindowSpans)
	}
	if len(w.GetExceptions()) > maxWindowExceptions {
		fe.add("window.exceptions", "has %d dates; at most %d", len(w.GetExceptions()), maxWindowExceptions)
	}
	span := func(path, open, close string, closedAllowed bool) (uint32, uint32, bool) {
		if closedAllowed && open == "" && close == "" {
			return 0, 0, true
		}
		o, err := window.ParseMinute(open)
		if err != nil {
			fe.add(path+".open", "%v", err)
			return 0, 0, false
		}
		c, err := window.ParseMinute(close)
		if err != nil {
			fe.add(path+".close", "%v", err)
			return 0, 0, false
		}
		if c <= o {
			fe.add(path+".close", "%s is not after open %s", close, open)
			return 0, 0, false
		}
		return o, c, true
	}
	for i, sp := range w.GetWeekly() {
		path := fmt.Sprintf("window.weekly[%d]", i)
		days, err := window.ParseDays(sp.GetDays())
		if err != nil {
			fe.add(path+".days", "%v", err)
			continue
		}
		o, c, ok := span(path, sp.GetOpen(), sp.GetClose(), false)
		if !ok {
			continue
		}
		for _, d := range days {
			out.Weekly = append(out.Weekly, &fsmpb.DaySpan{Weekday: d, OpenMinute: o, CloseMinute: c})
		}
	}
	for i, ex := range w.GetExceptions() {
		path := fmt.Sprintf("window.exceptions[%d]", i)
		o, c, ok := span(path, ex.GetOpen(), ex.GetClose(), true)
		if ok {
			out.Exceptions = append(out.Exceptions, &fsmpb.DateSpan{Date: ex.GetDate(), OpenMinute: o, CloseMinute: c})
		}
	}
	if len(fe) == 0 {
		if _, err := window.Compile(out); err != nil {
			fe.add("window", "%v", err)
		}
	}
	if len(fe) > 0 {
		return nil, fe
	}
	slices.SortStableFunc(out.Weekly, func(a, b *fsmpb.DaySpan) int { return int(a.Weekday) - int(b.Weekday) })
	return out, nil
}

func presetNames() []string {
	var out []string
	for k := range window.Presets {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// CallingWindowToPublic renders a stored window: one span per weekday
// span, exceptions as stored (closed days with empty times).
func CallingWindowToPublic(w *fsmpb.CallingWindow) *pb.CallingWindow {
	out := &pb.CallingWindow{Preset: w.GetPreset(), UnknownZone: w.GetUnknownZone(), DefaultZone: w.GetDefaultZone()}
	if out.UnknownZone == "" {
		out.UnknownZone = window.UnknownSkip
	}
	for _, d := range w.GetWeekly() {
		out.Weekly = append(out.Weekly, &pb.CallingSpan{Days: window.DayName(d.Weekday), Open: window.FormatMinute(d.OpenMinute), Close: window.FormatMinute(d.CloseMinute)})
	}
	for _, d := range w.GetExceptions() {
		ex := &pb.CallingException{Date: d.Date}
		if d.OpenMinute != d.CloseMinute {
			ex.Open, ex.Close = window.FormatMinute(d.OpenMinute), window.FormatMinute(d.CloseMinute)
		}
		out.Exceptions = append(out.Exceptions, ex)
	}
	return out
}
