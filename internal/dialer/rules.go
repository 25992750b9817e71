package dialer

import (
	"context"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/dialer/window"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Contact rules at fetch time. Before due requests are claimed, each is
// checked against its tenant's suppression list (a hit ends it FAILURE
// Suppressed without an attempt; the state machine also refuses the start
// of an attempt to a number listed after the fetch), its tenant's
// frequency cap (held back: deferred until the cap allows the number,
// wait reason frequency_cap, or ended past the TTL; the state machine
// enforces the cap again at the start, where it is exact across
// requests) and its calling window (the IVR profile's, else the
// tenant's; none: any time) in the callee's local time. A request outside
// its window is not claimed: the leader proposes moving its next eligible
// time to the next opening (DeferRequests, wait reason outside_window). A
// request whose window opens only after its TTL ends, or never, or whose
// zone is unknown under the skip policy, ends FAILURE without an attempt
// (EndRequests). Apply stores the times; it never reads a clock or a zone.

// windows caches compiled calling windows by their stored record, which
// the state machine replaces (never modifies) on a change. Owned by the
// housekeeping goroutine (fetch), so it has no lock.
type windows struct {
	compiled map[*fsmpb.CallingWindow]*window.Window
}

// of returns the compiled window in force for a request of tenant and
// profile, or nil when none is set (or the stored one does not compile,
// which the API prevents; it is then ignored with a warning).
func (e *Engine) windowOf(tenant, profile string) *window.Window {
	w, ok := e.opts.Store.CallingWindow(tenant, profile)
	if !ok && profile != "" {
		w, ok = e.opts.Store.CallingWindow(tenant, "")
	}
	if !ok {
		return nil
	}
	if c, ok := e.wins.compiled[w]; ok {
		return c
	}
	if len(e.wins.compiled) > 10_000 {
		clear(e.wins.compiled) // replaced records pile up otherwise
	}
	c, err := window.Compile(w)
	if err != nil {
		e.log.Warn("ignoring a calling window that does not compile", "tenant", tenant, "ivr_profile", w.IvrProfile, "err", err)
	}
	e.wins.compiled[w] = c
	return c
}

// ruling is what the contact rules decide for one due request.
type ruling struct {
	until  time.Time // defer until then (zero: dial now)
	reason string    // wait reason (defer) or result reason (end)
	end    bool
}

// rule decides for one due request at now.
func (e *Engine) rule(r *fsmpb.Request, now time.Time) ruling {
	if hit, _ := e.opts.Store.Suppressed(r.Tenant, r.Telnum, now.UnixMilli()); hit {
		return ruling{end: true, reason: fsm.ReasonSuppressed}
	}
	if until := e.opts.Store.FreqBlockedUntil(r.Tenant, r.Telnum, now.UnixMilli()); until > 0 {
		if until >= r.ExpiresUnixMs {
			return ruling{end: true, reason: fsm.ReasonFreqTTL}
		}
		// The window is checked again when the cap lets it through.
		return ruling{until: time.UnixMilli(until), reason: fsm.WaitFrequencyCap}
	}
	w := e.windowOf(r.Tenant, r.IvrProfile)
	if w == nil {
		return ruling{}
	}
	zones := w.ZoneFor(window.CalleeZones(r.Telnum, r.TimeZone))
	if zones == nil {
		return ruling{end: true, reason: window.ReasonUnknownZone}
	}
	open, ok := w.NextOpen(now, zones)
	switch {
	case !ok:
		return ruling{end: true, reason: window.ReasonNoOpening}
	case !open.After(now):
		return ruling{}
	case open.UnixMilli() >= r.ExpiresUnixMs:
		return ruling{end: true, reason: window.ReasonTTLInWindow}
	}
	return ruling{until: open, reason: window.WaitOutside}
}

// screen returns the requests of picked that may be dialled now and
// commits the deferrals and ends of the others. A failed commit leaves
// those requests as they were (due): the next fetch decides again.
func (e *Engine) screen(ctx context.Context, picked []*fsmpb.Request, now time.Time) []*fsmpb.Request {
	var (
		keep   = picked[:0:0]
		defers []*fsmpb.DeferItem
		ends   []*fsmpb.EndItem
	)
	for _, r := range picked {
		switch ru := e.rule(r, now); {
		case ru.end:
			ends = append(ends, &fsmpb.EndItem{Id: r.Id, Reason: ru.reason})
		case !ru.until.IsZero():
			defers = append(defers, &fsmpb.DeferItem{Id: r.Id, UntilUnixMs: ru.until.UnixMilli(), Reason: ru.reason})
		default:
			keep = append(keep, r)
		}
	}
	if len(defers) > 0 {
		err := propose(ctx, e.opts.Apply, defers, func(d []*fsmpb.DeferItem) *fsmpb.Command { return fsm.DeferCommand(d) }, func(_, done []*fsmpb.DeferItem) {
			for _, it := range done {
				e.m.Deferred.WithLabelValues(picked[0].Tenant, it.Reason).Inc()
			}
		})
		if err != nil && ctx.Err() == nil {
			e.log.Warn("deferring requests held back by contact rules failed", "err", err)
		}
	}
	if len(ends) > 0 {
		err := propose(ctx, e.opts.Apply, ends, func(d []*fsmpb.EndItem) *fsmpb.Command { return fsm.EndCommand(d) }, func(_, done []*fsmpb.EndItem) {
			for _, it := range done {
				e.m.Ended.WithLabelValues(picked[0].Tenant, it.Reason).Inc()
				e.notes.add(it.Id)
			}
		})
		if err != nil && ctx.Err() == nil {
			e.log.Warn("ending requests refused by contact rules failed", "err", err)
		}
	}
	return keep
}
