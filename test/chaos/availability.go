package chaos

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/seed-7bfc04c2/dialtone/test/chaos/history"
)

// Availability is what one fault cost, measured from the history: the
// longest gap between acknowledged writes (creates and cancels answered
// ok) and between calls the media platform saw, from the fault's start
// until the next fault (or the end of the load). Time the calling window
// was closed is not counted in a gap between calls: no call is due then.
type Availability struct {
	Fault    history.Fault
	WriteGap time.Duration
	DialGap  time.Duration
	// DialOpen is how long the calling window was open in the measured
	// span: 0 when it was closed throughout (no call due, no gap).
	DialOpen time.Duration
}

// Baseline is the same measure over the warm-up, before any fault.
func baselineOf(h *history.History, firstFault time.Time) Availability {
	w, d, open := gaps(h, h.Start, firstFault)
	return Availability{Fault: history.Fault{Name: "baseline (no fault)", Start: h.Start}, WriteGap: w, DialGap: d, DialOpen: open}
}

// Measure computes the availability of every fault in h; the first entry
// is the baseline.
func Measure(h *history.History, loadEnd time.Time) []Availability {
	if len(h.Faults) == 0 {
		return nil
	}
	out := []Availability{baselineOf(h, h.Faults[0].Start)}
	for i, f := range h.Faults {
		end := loadEnd
		if i+1 < len(h.Faults) {
			end = h.Faults[i+1].Start
		}
		w, d, open := gaps(h, f.Start, end)
		out = append(out, Availability{Fault: f, WriteGap: w, DialGap: d, DialOpen: open})
	}
	return out
}

// gaps are the longest gaps between write acknowledgements and between
// call starts within [from, to], counting from from, and how long the
// calling window was open in it.
func gaps(h *history.History, from, to time.Time) (write, dial, open time.Duration) {
	var ws, ds []time.Time
	for _, o := range h.Ops {
		if (o.Kind == history.Create || o.Kind == history.Cancel) && o.Outcome == history.OK && !o.Return.Before(from) && !o.Return.After(to) {
			ws = append(ws, o.Return)
		}
	}
	for _, c := range h.Calls {
		if !c.Start.Before(from) && !c.Start.After(to) {
			ds = append(ds, c.Start)
		}
	}
	var closed []history.Span
	if c := h.Settings.Contact; c != nil {
		closed = c.Closed
	}
	return longest(ws, from, to, nil), longest(ds, from, to, closed), openTime(from, to, closed)
}

// longest is the longest gap between the sorted times ts within [from,
// to], not counting the time inside closed.
func longest(ts []time.Time, from, to time.Time, closed []history.Span) time.Duration {
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	prev, worst := from, time.Duration(0)
	for _, t := range ts {
		worst = max(worst, openTime(prev, t, closed))
		prev = t
	}
	// A silence that lasts to the window's end counts too.
	return max(worst, openTime(prev, to, closed))
}

// openTime is how much of [a, b] lies outside every span of closed (the
// spans do not overlap).
func openTime(a, b time.Time, closed []history.Span) time.Duration {
	d := b.Sub(a)
	for _, sp := range closed {
		lo, hi := sp.From, sp.To
		if a.After(lo) {
			lo = a
		}
		if b.Before(hi) {
			hi = b
		}
		if hi.After(lo) {
			d -= hi.Sub(lo)
		}
	}
	return max(d, 0)
}

// AvailabilityTable renders the measures as a Markdown table.
func AvailabilityTable(av []Availability) string {
	var b strings.Builder
	b.WriteString("| fault | target | new leader seen after | healed after | longest gap in acknowledged writes | longest gap in calls placed (calling window open) |\n|---|---|---|---|---|---|\n")
	for _, a := range av {
		settled, healed := "-", "-"
		if !a.Fault.Settled.IsZero() {
			settled = a.Fault.Settled.Sub(a.Fault.Start).Round(10 * time.Millisecond).String()
		}
		if !a.Fault.Healed.IsZero() {
			healed = a.Fault.Healed.Sub(a.Fault.Start).Round(10 * time.Millisecond).String()
		}
		target := a.Fault.Target
		if a.Fault.Note != "" {
			target += " (" + a.Fault.Note + ")"
		}
		dial := a.DialGap.Round(10 * time.Millisecond).String()
		if a.DialOpen == 0 {
			dial = "- (window closed)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", a.Fault.Name, target, settled, healed,
			a.WriteGap.Round(10*time.Millisecond), dial)
	}
	return b.String()
}

// LeaderTerms counts the terms in which a leader was observed, and how
// many of them began outside every fault (from its start until 5 s after
// it settled): elections nobody forced, e.g. a leader lease missed on a
// loaded machine.
func LeaderTerms(h *history.History) (terms, unforced int) {
	first := map[uint64]time.Time{}
	for _, o := range h.Leaders {
		if o.State != "Leader" {
			continue
		}
		if t, ok := first[o.Term]; !ok || o.Time.Before(t) {
			first[o.Term] = o.Time
		}
	}
	for term, t := range first {
		if term == minTerm(first) {
			continue // the first leader of the run
		}
		terms++
		forced := false
		for _, f := range h.Faults {
			end := f.Settled
			if end.IsZero() {
				end = f.Healed
			}
			if !t.Before(f.Start) && !t.After(end.Add(5*time.Second)) {
				forced = true
			}
		}
		if !forced {
			unforced++
		}
	}
	return terms, unforced
}

func minTerm(m map[uint64]time.Time) uint64 {
	var lo uint64
	for t := range m {
		if lo == 0 || t < lo {
			lo = t
		}
	}
	return lo
}
