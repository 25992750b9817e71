package dialer

import (
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
)

// catchUp is how late an event may be and still keep the schedule: the
// slots it missed are made up (within the window limits below). Timer and
// scheduling delays on a loaded machine are often longer than one interval
// at high rates (1 ms at 1,000 CAPS), so without making them up the
// achieved rate fell far below the target; a stall longer than this drops
// the missed slots instead of bursting.
const catchUp = 50 * time.Millisecond

// pacer spaces events evenly at a rate of X per second: one every 1/X s,
// with no bursts at second boundaries. The dialer stamps an event at the
// moment the call leaves the process (telephony.Call.Gate), so these are
// the properties the far end sees, less the network's jitter.
//
// It keeps the slot s of the next event. An event may happen at t ≥ s;
// then s becomes max(s, t − max(1/X, catchUp)) + 1/X. So slots are 1/X
// apart, an event that came late by up to catchUp does not shift the
// schedule (the slots it missed follow, and the rate stays exact), and one
// that came later than that drops the older missed slots instead of
// bursting to catch up. A cold pacer (no event yet, or after setRate from
// 0) starts with no debt: its first slot is its first event's time.
//
// Making up slots could crowd a window, so the pacer also keeps window
// logs: for the one-second window the times of the last n = floor(X) + 1
// events, for the 100 ms window those of the last m = ceil(X/8) + 1
// (pacing.WindowLimits), and holds the next event back until the oldest
// entry of each log is one window old. Then at most n − 1 (m − 1) earlier
// events lie in the window before any event, so no one-second window ever
// holds more than n ≤ X + 1 events and no 100 ms window more than
// m = ceil(X/8) + 1. (With n = X the check would bind at every event that
// is late by a constant amount, and the lateness would add up; one event
// of slack avoids that. Each log's span is longer by half an interval, see
// setRate.) The 100 ms log bounds the catch-up itself: m is a quarter more
// than the X/10 an even pace puts in 100 ms, plus one, so after a stall
// the missed slots refill the gap it left and beyond that follow at up to
// a quarter above the rate, not all at once. (With m = ceil(X/10) + 1 they
// followed one extra per 100 ms, and a sender whose wake-ups were 1-5 ms
// late lost 2.6-2.9% of the rate at 1,000/s and above, against 0.25% now:
// TestPacerMakesUpSlotsOfALateDispatcher, docs/dialer.md.)
//
// The logs hold an event back to the time of the event n (m) entries
// earlier plus the span, so events made up together after a stall would be
// held back to one moment a window later, and released together again,
// and so on: the run shrinks only by the window's slack (at 500/s, 1 ms a
// second for the one-second window), and the far end saw calls in clumps
// for seconds after one stall. So a wire pacer also allows an event no
// earlier than a quarter interval after the previous event was allowed.
// That is a virtual time (ready's answer when the event was taken, never
// after it), not the event's own: a sender that wakes late does not push
// the events after it, and a late run still goes at once; only a run the
// windows hold back leaves spread, at up to four times the rate.
//
// A handoff pacer (the dispatcher's, which hands attempts to their call
// goroutines at about the rate) keeps the schedule only: the wire pacer
// behind it (gate.go) enforces the windows at the send, and windows on the
// hand-off too would only add the loss a window costs a late sender.
type pacer struct {
	interval time.Duration
	next     time.Time
	// allowed is when the last event was allowed (ready's answer when it
	// was taken, at most its time): a wire pacer allows the next no
	// earlier than a quarter interval after it (see above).
	allowed time.Time
	handoff bool         // schedule only, no window logs
	windows [2]windowLog // one second, 100 ms
}

// windowLog holds the last limit event times (Unix ns) in a ring; no span
// of length span holds more than limit events. An entry may be pending
// (negative: the send's token, see settle): its time is not known yet, so
// while it is the oldest the window does not open.
type windowLog struct {
	span  time.Duration
	limit int
	log   []int64
	head  int // the oldest entry once log is full
}

// setRate changes the rate; the next slot moves no earlier than the
// current one would allow at the new rate.
func (p *pacer) setRate(perSecond float64) {
	iv := rateInterval(perSecond)
	if iv == p.interval {
		return
	}
	if p.interval == 0 {
		p.next = time.Time{} // was unlimited: start cold
	} else if !p.next.IsZero() {
		// The slot after the last event was last+old; keep last+new.
		last := p.next.Add(-p.interval)
		p.next = last.Add(iv)
	}
	p.interval = iv
	var perSec, per100ms int
	if iv > 0 && !p.handoff {
		perSec, per100ms = pacing.WindowLimits(perSecond)
	}
	// Each window is held half an interval longer than its span: evenly
	// paced events still fit (X × (span + 1/2X) < X × span + 1), and a
	// send delayed after its stamp by less than that (preemption between
	// the gate and the socket) cannot crowd the far end's window.
	p.windows[0].resize(time.Second+iv/2, perSec)
	p.windows[1].resize(100*time.Millisecond+iv/2, per100ms)
}

// resize sets the window's limit, keeping the newest events that fit.
func (w *windowLog) resize(span time.Duration, limit int) {
	events := make([]int64, 0, min(len(w.log), limit))
	for i := range len(w.log) {
		events = append(events, w.log[(w.head+i)%len(w.log)])
	}
	w.log = events[max(len(events)-limit, 0):]
	w.head = 0
	w.span = span
	w.limit = limit
}

// ready is the earliest time the window allows the next event (zero when
// it does not bind).
func (w *windowLog) ready() time.Time {
	if w.limit == 0 || len(w.log) < w.limit {
		return time.Time{}
	}
	if w.log[w.head] < 0 {
		return pendingUntil
	}
	return time.Unix(0, w.log[w.head]).Add(w.span)
}

// pendingUntil is ready's answer while the oldest entry is pending: not
// before it settles.
var pendingUntil = time.Unix(1<<40, 0)

// settle replaces the pending entry token (negative) by the time at. The
// newest entries are searched first: a pending send is among them.
func (w *windowLog) settle(token, at int64) {
	for i := len(w.log) - 1; i >= 0; i-- {
		j := (w.head + i) % len(w.log)
		if w.log[j] == token {
			w.log[j] = at
			return
		}
	}
}

func (w *windowLog) add(now int64) {
	if w.limit == 0 {
		return
	}
	if len(w.log) < w.limit {
		w.log = append(w.log, now)
		return
	}
	w.log[w.head] = now
	w.head = (w.head + 1) % w.limit
}

// rateInterval is 1/X as a duration (0 for no limit).
func rateInterval(perSecond float64) time.Duration {
	if perSecond <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / perSecond)
}

// ready is the earliest time of the next event (zero: any time).
func (p *pacer) ready() time.Time {
	t := p.next
	if !p.handoff && p.interval > 0 && !p.allowed.IsZero() {
		if g := p.allowed.Add(p.interval / 4); g.After(t) {
			t = g
		}
	}
	for i := range p.windows {
		if w := p.windows[i].ready(); w.After(t) {
			t = w
		}
	}
	return t
}

// settle records the time of a pending event (takePending's token): the
// moment the send really left, after the gate.
func (p *pacer) settle(token int64, at time.Time) {
	for i := range p.windows {
		p.windows[i].settle(token, at.UnixNano())
	}
}

// takePending is take, with the event's time in the window logs not
// known yet: token (negative, unique) stands for it until settle.
func (p *pacer) takePending(now time.Time, token int64) {
	p.take(now)
	for i := range p.windows {
		if w := &p.windows[i]; w.limit > 0 {
			w.log[(w.head+len(w.log)-1)%len(w.log)] = token
		}
	}
}

// take records an event at now, which must not be before ready().
func (p *pacer) take(now time.Time) {
	if p.interval == 0 {
		return
	}
	if !p.handoff {
		// Virtual, not the event's own time: a sender that wakes late
		// does not push the events after it.
		p.allowed = p.ready()
		if p.allowed.IsZero() || p.allowed.After(now) {
			p.allowed = now
		}
	}
	base := p.next
	if p.next.IsZero() {
		base = now // cold: no debt
	} else if floor := now.Add(-max(p.interval, catchUp)); base.Before(floor) {
		base = floor
	}
	p.next = base.Add(p.interval)
	for i := range p.windows {
		p.windows[i].add(now.UnixNano())
	}
}
