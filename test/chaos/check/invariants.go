package check

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/sim/mediasim"
	"github.com/seed-7bfc04c2/dialtone/test/chaos/history"
)

// never stands for a call still in progress when the log was read.
var never = time.Unix(1<<40, 0)

func endOf(c mediasim.CallRecord) time.Time {
	if c.End.IsZero() {
		return never
	}
	return c.End
}

// placedOnly leaves out the attempts the platform refused because their
// call UUID had been revoked (a fenced deposed leader): no call was placed.
func placedOnly(calls []mediasim.CallRecord) []mediasim.CallRecord {
	var out []mediasim.CallRecord
	for _, c := range calls {
		if c.State != mediasim.StateRevoked {
			out = append(out, c)
		}
	}
	return out
}

// NoLostCreates (invariant 1): every acknowledged create is found, with the
// token and telnum it was created with, by a linearizable read after the
// run, whatever nodes died or restarted meanwhile.
func NoLostCreates(h *history.History) Report {
	ix := newIndex(h)
	r := Report{Checker: "no-lost-creates"}
	creates := acked(h)
	for _, o := range creates {
		f, ok := ix.finals[o.ID]
		switch {
		case !ok || !f.Found:
			r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("acknowledged create %s (token %s) is lost", o.ID, o.Token), Slice: ix.requestSlice(o.ID)})
		case f.Token != o.Token || (o.Telnum != "" && f.Telnum != o.Telnum):
			r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("request %s changed: created token %s telnum %s, found token %s telnum %s", o.ID, o.Token, o.Telnum, f.Token, f.Telnum), Slice: ix.requestSlice(o.ID)})
		}
	}
	r.Checked = fmt.Sprintf("%d acknowledged creates", len(creates))
	return r
}

// NoConcurrentAttempts (invariant 2): the media platform never had two
// calls of one request in progress at once.
func NoConcurrentAttempts(h *history.History) Report {
	ix := newIndex(h)
	r := Report{Checker: "no-concurrent-attempts"}
	for id, calls := range ix.calls {
		calls = placedOnly(calls)
		slices.SortFunc(calls, func(a, b mediasim.CallRecord) int { return a.Start.Compare(b.Start) })
		var busyUntil time.Time
		for i, c := range calls {
			if c.Concurrent || (i > 0 && c.Start.Before(busyUntil)) {
				r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("request %s: call %s began while another call of the request was in progress", id, c.CallUUID), Slice: ix.requestSlice(id)})
				break
			}
			if e := endOf(c); e.After(busyUntil) {
				busyUntil = e
			}
		}
	}
	r.Checked = fmt.Sprintf("%d calls of %d requests", len(h.Calls), len(ix.calls))
	return r
}

// AttemptsWithinMax (invariant 2): no request counts more attempts than its
// MaxAttempts, no call is placed as an attempt beyond it, and the platform
// sees each committed attempt at most once.
func AttemptsWithinMax(h *history.History) Report {
	ix := newIndex(h)
	r := Report{Checker: "attempts-within-max"}
	for _, f := range h.Finals {
		if f.Found && f.MaxAttempts > 0 && f.AttemptsMade > f.MaxAttempts {
			r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("request %s made %d attempts, max %d", f.ID, f.AttemptsMade, f.MaxAttempts), Slice: ix.requestSlice(f.ID)})
		}
	}
	for id, calls := range ix.calls {
		max := h.Settings.MaxAttempts
		if f, ok := ix.finals[id]; ok && f.MaxAttempts > 0 {
			max = f.MaxAttempts
		}
		seen := map[string]bool{}
		for _, c := range placedOnly(calls) {
			if max > 0 && c.Attempt > max {
				r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("request %s: call %s placed as attempt %d, max %d", id, c.CallUUID, c.Attempt, max), Slice: ix.requestSlice(id)})
			}
			if seen[c.CallUUID] {
				r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("request %s: attempt %s dialled twice", id, c.CallUUID), Slice: ix.requestSlice(id)})
			}
			seen[c.CallUUID] = true
		}
	}
	r.Checked = fmt.Sprintf("%d requests, %d calls", len(h.Finals), len(h.Calls))
	return r
}

// DialOnlyCommitted (commit, then dial; a deposed leader must not dial):
// every call the platform saw is an attempt whose start the replicated
// state recorded, and began before that attempt was closed. A leader that
// lost its leadership (paused, partitioned) finds its attempts closed as
// Interrupted by its successor: a call of such an attempt that begins
// after the close was placed by a deposed leader.
func DialOnlyCommitted(h *history.History) Report {
	ix := newIndex(h)
	r := Report{Checker: "dial-only-committed"}
	skew := h.Settings.Skew
	fenced := 0
	for id, calls := range ix.calls {
		f, ok := ix.finals[id]
		if !ok || !f.Found {
			continue // reported by no-lost-creates, or a create of unknown outcome
		}
		for _, c := range calls {
			if c.State == mediasim.StateRevoked {
				fenced++ // a late dial the platform refused: the fence worked
				continue
			}
			i := slices.IndexFunc(f.Attempts, func(a history.Attempt) bool { return a.CallUUID == c.CallUUID })
			if i < 0 {
				r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("request %s: call %s by %s has no committed attempt", id, c.CallUUID, orDash(c.Caller)), Slice: ix.requestSlice(id)})
				continue
			}
			if a := f.Attempts[i]; !a.Ended.IsZero() && c.Start.After(a.Ended.Add(skew)) {
				r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("request %s: call %s by %s began at %s, after its attempt was closed (%s) at %s: a deposed leader dialled",
					id, c.CallUUID, orDash(c.Caller), ts(c.Start), a.Reason, ts(a.Ended)), Slice: ix.requestSlice(id)})
			}
		}
	}
	r.Notes = append(r.Notes, fmt.Sprintf("%d late attempts of deposed leaders refused by the platform (revoked call UUIDs)", fenced))
	r.Checked = fmt.Sprintf("%d calls", len(h.Calls))
	return r
}

// NothingAfterCancelOrTTL (invariant 2): no call begins after a cancel of
// its request was acknowledged, none is in progress when the cancel is
// acknowledged, and none begins after the request's TTL ended.
func NothingAfterCancelOrTTL(h *history.History) Report {
	ix := newIndex(h)
	r := Report{Checker: "nothing-after-cancel-or-ttl"}
	skew := h.Settings.Skew
	cancels := 0
	for id, ops := range ix.ops {
		for _, o := range ops {
			if o.Kind != history.Cancel || o.Outcome != history.OK {
				continue
			}
			cancels++
			for _, c := range placedOnly(ix.calls[id]) {
				switch {
				case c.Start.After(o.Return):
					r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("request %s: call %s began at %s, after the cancel was acknowledged at %s", id, c.CallUUID, ts(c.Start), ts(o.Return)), Slice: ix.requestSlice(id)})
				case c.State != mediasim.StateRefused && endOf(c).After(o.Return.Add(skew)):
					r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("request %s: call %s was in progress when the cancel was acknowledged at %s", id, c.CallUUID, ts(o.Return)), Slice: ix.requestSlice(id)})
				}
			}
		}
	}
	for _, f := range h.Finals {
		if !f.Found || f.Expires.IsZero() {
			continue
		}
		for _, c := range placedOnly(ix.calls[f.ID]) {
			if c.Start.After(f.Expires.Add(skew)) {
				r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("request %s: call %s began at %s, after its TTL ended at %s", f.ID, c.CallUUID, ts(c.Start), ts(f.Expires)), Slice: ix.requestSlice(f.ID)})
			}
		}
	}
	r.Checked = fmt.Sprintf("%d acknowledged cancels, %d requests' TTLs", cancels, len(h.Finals))
	return r
}

// WithinPortBudget (invariant 3): calls in progress at the platform never
// exceed floor(ports × PortLoadFactor / 100), and at a PortLoadFactor of
// 100 or less no call finds every port busy.
func WithinPortBudget(h *history.History) Report {
	r := Report{Checker: "within-port-budget"}
	budget := h.Settings.TotalPorts * h.Settings.PortLoadFactor / 100
	type edge struct {
		t time.Time
		d int
	}
	var edges []edge
	var refused []mediasim.CallRecord
	for _, c := range placedOnly(h.Calls) {
		if c.State == mediasim.StateRefused {
			refused = append(refused, c)
			continue
		}
		edges = append(edges, edge{c.Start, 1}, edge{endOf(c), -1})
	}
	// Ends before starts at the same instant: a port freed and taken again.
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.t.Compare(b.t); c != 0 {
			return c
		}
		return a.d - b.d
	})
	n, peak := 0, 0
	var peakAt time.Time
	for _, e := range edges {
		if n += e.d; n > peak {
			peak, peakAt = n, e.t
		}
	}
	r.Notes = append(r.Notes, fmt.Sprintf("peak %d calls in progress at %s (budget %d)", peak, ts(peakAt), budget))
	if budget > 0 && peak > budget {
		var slice []string
		for _, c := range h.Calls {
			if c.State != mediasim.StateRefused && !c.Start.After(peakAt) && endOf(c).After(peakAt) {
				slice = append(slice, c.RequestID+": "+callLine(c))
			}
		}
		r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("%d calls in progress at %s, budget %d", peak, ts(peakAt), budget), Slice: slice})
	}
	if h.Settings.PortLoadFactor <= 100 && len(refused) > 0 {
		var slice []string
		for _, c := range refused {
			slice = append(slice, c.RequestID+": "+callLine(c))
		}
		r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("%d calls refused because every port was busy", len(refused)), Slice: slice})
	}
	r.Checked = fmt.Sprintf("%d calls against %d ports at PortLoadFactor %d", len(h.Calls), h.Settings.TotalPorts, h.Settings.PortLoadFactor)
	return r
}

// WithinCAPS (invariant 4): no one-second window of dial times holds more
// than CAPS + 1 attempts. The platform records a call up to Skew after it
// was dialled, so windows of 1 s − Skew of recorded starts are checked: each
// holds only calls dialled within one second.
func WithinCAPS(h *history.History) Report {
	r := Report{Checker: "within-caps"}
	if h.Settings.CAPS <= 0 {
		r.Checked = "no CAPS set"
		return r
	}
	limit := int(math.Floor(h.Settings.CAPS)) + 1
	win := time.Second - h.Settings.Skew
	starts := placedOnly(h.Calls)
	slices.SortFunc(starts, func(a, b mediasim.CallRecord) int { return a.Start.Compare(b.Start) })
	lo, worst, worstAt := 0, 0, 0
	for hi := range starts {
		for starts[hi].Start.Sub(starts[lo].Start) >= win {
			lo++
		}
		if n := hi - lo + 1; n > worst {
			worst, worstAt = n, lo
		}
	}
	r.Notes = append(r.Notes, fmt.Sprintf("busiest %v window: %d attempts (limit %d)", win, worst, limit))
	if worst > limit {
		var slice []string
		for _, c := range starts[worstAt : worstAt+worst] {
			slice = append(slice, c.RequestID+": "+callLine(c))
		}
		r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("%d attempts within %v from %s, CAPS %.1f", worst, win, ts(starts[worstAt].Start), h.Settings.CAPS), Slice: slice})
	}
	r.Checked = fmt.Sprintf("%d attempts at CAPS %.1f", len(starts), h.Settings.CAPS)
	return r
}

// TerminalAndNotified (invariant 5): after the drain every acknowledged
// request is PROCESSED with one result; one the dialer finished was
// notified at least once, every notification carrying that result; one
// cancelled had an acknowledged (or unanswered) cancel.
func TerminalAndNotified(h *history.History) Report {
	ix := newIndex(h)
	r := Report{Checker: "terminal-and-notified"}
	notes := map[string][]int{}
	for i, n := range h.Notifications {
		notes[n.RequestID] = append(notes[n.RequestID], i)
	}
	dups := 0
	for _, o := range acked(h) {
		f, ok := ix.finals[o.ID]
		if !ok || !f.Found {
			continue // no-lost-creates reports it
		}
		slice := func() []string {
			s := ix.requestSlice(o.ID)
			for _, i := range notes[o.ID] {
				n := h.Notifications[i]
				s = append(s, fmt.Sprintf("notification #%d at %s: %s %s (answered %d)", n.Seq, ts(n.Time), n.Result, n.Status, n.Answered))
			}
			return s
		}
		if f.State != "PROCESSED" {
			r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("request %s is %s after the drain", o.ID, f.State), Slice: slice()})
			continue
		}
		if f.Result == "CANCELLED" {
			if !slices.ContainsFunc(ix.ops[o.ID], func(c history.Op) bool {
				return c.Kind == history.Cancel && (c.Outcome == history.OK || c.Outcome == history.Unknown)
			}) {
				r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("request %s cancelled without a cancel", o.ID), Slice: slice()})
			}
			if len(notes[o.ID]) > 0 {
				r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("request %s cancelled, yet notified", o.ID), Slice: slice()})
			}
			continue
		}
		delivered := 0
		for _, i := range notes[o.ID] {
			n := h.Notifications[i]
			if n.Result != f.Result {
				r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("request %s ended %s, notified %s", o.ID, f.Result, n.Result), Slice: slice()})
				break
			}
			if n.Answered/100 == 2 {
				delivered++
			}
		}
		if delivered == 0 {
			r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("request %s ended %s, never notified", o.ID, f.Result), Slice: slice()})
		}
		if delivered > 1 {
			dups++
		}
	}
	r.Notes = append(r.Notes, fmt.Sprintf("%d requests notified more than once (at-least-once delivery)", dups))
	r.Checked = fmt.Sprintf("%d acknowledged requests, %d notifications", len(acked(h)), len(h.Notifications))
	return r
}

// DeposedLeaderSilent: no node places a call after another node was seen
// leading a later term, unless it leads again itself. Calls carry the node
// that placed them (CallRecord.Caller); the runner polled every node's view
// of the cluster (History.Leaders, every 200 ms). A call by X at t is a
// violation when X last led term T before t, some node was seen leading a
// term above T before t − Skew, and X was not seen leading that term or a
// later one up to a second after t. (Sampling can miss a short term, so
// this check can only miss violations, not invent them; DialOnlyCommitted
// is the exact check.)
func DeposedLeaderSilent(h *history.History) Report {
	r := Report{Checker: "deposed-leader-silent"}
	type lead struct {
		t    time.Time
		term uint64
	}
	byNode := map[string][]lead{}
	var all []history.LeaderObs
	for _, o := range h.Leaders {
		if o.State == "Leader" {
			byNode[o.Node] = append(byNode[o.Node], lead{o.Time, o.Term})
			all = append(all, o)
		}
	}
	for _, l := range byNode {
		slices.SortFunc(l, func(a, b lead) int { return a.t.Compare(b.t) })
	}
	checked := 0
	for _, c := range placedOnly(h.Calls) {
		if c.Caller == "" || c.State == mediasim.StateRefused {
			continue
		}
		mine := byNode[c.Caller]
		i, _ := slices.BinarySearchFunc(mine, c.Start, func(l lead, t time.Time) int { return l.t.Compare(t) })
		if i == 0 {
			continue // never seen leading before the call: cannot judge
		}
		checked++
		term := mine[i-1].term
		for _, o := range all {
			if o.Node == c.Caller || o.Term <= term || !o.Time.Before(c.Start.Add(-h.Settings.Skew)) {
				continue
			}
			again := slices.ContainsFunc(mine, func(l lead) bool {
				return l.term >= o.Term && !l.t.After(c.Start.Add(time.Second))
			})
			if !again {
				r.Findings = append(r.Findings, Finding{
					Message: fmt.Sprintf("%s placed call %s at %s, after %s was seen leading term %d at %s (%s last led term %d)",
						c.Caller, c.CallUUID, ts(c.Start), o.Node, o.Term, ts(o.Time), c.Caller, term),
					Slice: newIndex(h).requestSlice(c.RequestID),
				})
			}
			break
		}
	}
	r.Checked = fmt.Sprintf("%d calls whose caller was seen leading before them", checked)
	return r
}
