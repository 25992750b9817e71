package dialer

import "time"

// pacer spaces events evenly at a rate of X per second: one every 1/X s,
// with no bursts at second boundaries.
//
// It keeps the slot s of the next event. An event may happen at t ≥ s;
// then s becomes max(s, t−1/X) + 1/X. So slots are at least 1/X apart, and
// an event that came late by less than one interval does not shift the
// schedule (the rate stays exact), while one that came later than that
// drops the missed slots instead of bursting to catch up. Every slot after
// the first event of any one-second window [a, a+1) lies in that window
// (s_{j+1} ≥ t_j ≥ a), so the window holds at most X+1 events.
type pacer struct {
	interval time.Duration
	next     time.Time
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
}

// rateInterval is 1/X as a duration (0 for no limit).
func rateInterval(perSecond float64) time.Duration {
	if perSecond <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / perSecond)
}

// ready is the earliest time of the next event.
func (p *pacer) ready() time.Time { return p.next }

// take records an event at now, which must not be before ready().
func (p *pacer) take(now time.Time) {
	if p.interval == 0 {
		return
	}
	base := p.next
	if floor := now.Add(-p.interval); base.Before(floor) {
		base = floor
	}
	p.next = base.Add(p.interval)
}
