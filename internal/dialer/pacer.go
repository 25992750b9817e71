package dialer

import (
	"math"
	"time"
)

// catchUp is how late an event may be and still keep the schedule: the
// slots it missed are made up at once. Timer and scheduling delays on a
// loaded machine are often longer than one interval at high rates (1 ms at
// 1,000 CAPS), so without making them up the achieved rate fell far below
// the target; a stall longer than this drops the missed slots instead of
// bursting.
const catchUp = 50 * time.Millisecond

// pacer spaces events evenly at a rate of X per second: one every 1/X s,
// with no bursts at second boundaries.
//
// It keeps the slot s of the next event. An event may happen at t ≥ s;
// then s becomes max(s, t − max(1/X, catchUp)) + 1/X. So slots are 1/X
// apart, an event that came late by up to catchUp does not shift the
// schedule (the slots it missed follow at once, and the rate stays exact),
// and one that came later than that drops the older missed slots instead
// of bursting to catch up.
//
// Making up slots could crowd a one-second window, so the pacer also keeps
// the times of the last n = floor(X) + 1 events and holds the next event
// back until the oldest of them is a second old: at most n − 1 earlier
// events lie in the second before any event, so no one-second window ever
// holds more than n ≤ X + 1 events. (With n = X the check would bind at
// every event that is late by a constant amount, and the lateness would
// add up; one event of slack avoids that.)
type pacer struct {
	interval time.Duration
	next     time.Time
	limit    int     // floor(X)+1: the most events in any one-second window
	log      []int64 // the last limit event times (Unix ns), a ring
	head     int     // the oldest entry once log is full
}

// setRate changes the rate; the next slot moves no earlier than the
// current one would allow at the new rate.
func (p *pacer) setRate(perSecond float64) {
	iv := rateInterval(perSecond)
	if iv == p.interval {
		return
	}
	if !p.next.IsZero() && p.interval > 0 {
		// The slot after the last event was last+old; keep last+new.
		last := p.next.Add(-p.interval)
		p.next = last.Add(iv)
	}
	p.interval = iv
	limit := 0
	if iv > 0 {
		limit = int(math.Floor(perSecond)) + 1
	}
	// Keep the newest events that fit the new window limit, oldest first.
	events := make([]int64, 0, min(len(p.log), limit))
	for i := range len(p.log) {
		events = append(events, p.log[(p.head+i)%len(p.log)])
	}
	p.log = events[max(len(events)-limit, 0):]
	p.head = 0
	p.limit = limit
}

// rateInterval is 1/X as a duration (0 for no limit).
func rateInterval(perSecond float64) time.Duration {
	if perSecond <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / perSecond)
}

// ready is the earliest time of the next event.
func (p *pacer) ready() time.Time {
	t := p.next
	if p.limit > 0 && len(p.log) == p.limit {
		if w := time.Unix(0, p.log[p.head]).Add(time.Second); w.After(t) {
			t = w
		}
	}
	return t
}

// take records an event at now, which must not be before ready().
func (p *pacer) take(now time.Time) {
	if p.interval == 0 {
		return
	}
	base := p.next
	if floor := now.Add(-max(p.interval, catchUp)); base.Before(floor) {
		base = floor
	}
	p.next = base.Add(p.interval)
	if len(p.log) < p.limit {
		p.log = append(p.log, now.UnixNano())
		return
	}
	p.log[p.head] = now.UnixNano()
	p.head = (p.head + 1) % p.limit
}
