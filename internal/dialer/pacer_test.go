package dialer

import (
	"math/rand/v2"
	"testing"
	"time"
)

// maxInWindow is the largest number of events in any half-open one-second
// window; the extreme windows start at an event.
func maxInWindow(ts []time.Time) int {
	best, j := 0, 0
	for i := range ts {
		for j < len(ts) && ts[j].Sub(ts[i]) < time.Second {
			j++
		}
		best = max(best, j-i)
	}
	return best
}

func TestPacerNoWindowAboveRatePlusOne(t *testing.T) {
	for _, tc := range []struct {
		name string
		rate float64
		// lateness returns how late the event is relative to ready().
		lateness func(r *rand.Rand, iv time.Duration) time.Duration
	}{
		{"on time", 50, func(*rand.Rand, time.Duration) time.Duration { return 0 }},
		{"jitter below one interval", 200, func(r *rand.Rand, iv time.Duration) time.Duration {
			return time.Duration(r.Int64N(int64(iv)))
		}},
		{"occasional long stalls", 1000, func(r *rand.Rand, iv time.Duration) time.Duration {
			if r.IntN(50) == 0 {
				return time.Duration(r.Int64N(int64(300 * time.Millisecond)))
			}
			return time.Duration(r.Int64N(int64(2 * iv)))
		}},
		{"fractional rate", 7.5, func(r *rand.Rand, iv time.Duration) time.Duration {
			return time.Duration(r.Int64N(int64(iv / 2)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var p pacer
			p.setRate(tc.rate)
			now := time.Unix(1000, 0)
			p.next = now
			var ts []time.Time
			for range int(tc.rate * 30) {
				at := p.ready().Add(tc.lateness(r, p.interval))
				if at.Before(now) {
					at = now
				}
				now = at
				p.take(now)
				ts = append(ts, now)
			}
			limit := int(tc.rate) + 1
			if got := maxInWindow(ts); got > limit {
				t.Fatalf("a one-second window holds %d events, want at most %d", got, limit)
			}
		})
	}
}

func TestPacerKeepsRateUnderSmallLateness(t *testing.T) {
	var p pacer
	p.setRate(100)
	start := time.Unix(0, 0)
	p.next = start
	now := start
	for range 1000 {
		now = p.ready().Add(9 * time.Millisecond) // late by 0.9 intervals every time
		p.take(now)
	}
	// 1000 events at exactly 100/s take 9.99 s (+ the constant lateness).
	if got := now.Sub(start); got < 9990*time.Millisecond || got > 10*time.Second {
		t.Fatalf("1000 events took %s, want about 9.99 s", got)
	}
}

// TestPacerMakesUpSlotsOfALateDispatcher: a dispatcher that wakes several
// intervals late every time (a loaded machine at 1,000 CAPS) and then takes
// every slot that is due keeps the exact rate, and no one-second window
// holds more than X + 1 events. (The window limit costs a little: when it
// binds, the dispatcher's lateness shifts the schedule, about one mean
// lateness per second; hence the 0.5% at 5,000/s, where 1-5 ms late is up
// to 25 intervals.)
func TestPacerMakesUpSlotsOfALateDispatcher(t *testing.T) {
	for _, rate := range []float64{1000, 5000, 333.3} {
		tol := 0.002
		if rate > 1000 {
			tol = 0.005
		}
		r := rand.New(rand.NewPCG(3, 4))
		var p pacer
		p.setRate(rate)
		start := time.Unix(1000, 0)
		p.next = start
		now := start
		var ts []time.Time
		for now.Sub(start) < 20*time.Second {
			// Wake 1..5 ms after the next slot, then take all that are due.
			now = p.ready().Add(time.Millisecond + time.Duration(r.Int64N(int64(4*time.Millisecond))))
			for !p.ready().After(now) {
				p.take(now)
				ts = append(ts, now)
			}
		}
		got := float64(len(ts)) / now.Sub(start).Seconds()
		if got < rate*(1-tol) || got > rate*(1+tol) {
			t.Errorf("rate %g: achieved %.2f/s", rate, got)
		}
		if w := maxInWindow(ts); w > int(rate)+1 {
			t.Errorf("rate %g: a one-second window holds %d events", rate, w)
		}
	}
}

// TestPacerWindowLimitAfterAStall: a stall shorter than catchUp is made up
// at once, but never beyond X+1 events in a second.
func TestPacerWindowLimitAfterAStall(t *testing.T) {
	var p pacer
	p.setRate(100)
	now := time.Unix(0, 0)
	p.next = now
	var ts []time.Time
	for range 60 { // on time for 0.6 s
		now = p.ready()
		p.take(now)
		ts = append(ts, now)
	}
	now = now.Add(45 * time.Millisecond) // a stall: 4 slots missed
	n := 0
	for !p.ready().After(now) {
		p.take(now)
		ts = append(ts, now)
		n++
	}
	if n != 4 {
		t.Fatalf("after a 45 ms stall %d events at once, want the 4 slots due (600..630 ms)", n)
	}
	for range 300 {
		now = p.ready()
		p.take(now)
		ts = append(ts, now)
	}
	if w := maxInWindow(ts); w > 101 {
		t.Fatalf("a one-second window holds %d events at 100/s", w)
	}
}

func TestPacerDropsMissedSlotsInsteadOfBursting(t *testing.T) {
	var p pacer
	p.setRate(10)
	now := time.Unix(0, 0)
	p.take(now)
	now = now.Add(5 * time.Second) // idle for 50 intervals
	p.take(now)
	if gap := p.ready().Sub(now); gap != 0 {
		// One event may follow at once (the slot left from within the
		// last interval), but not more.
		t.Fatalf("next slot %s after a late event, want immediately (one catch-up)", gap)
	}
	p.take(now)
	if gap := p.ready().Sub(now); gap != 100*time.Millisecond {
		t.Fatalf("second catch-up slot %s away, want 100ms", gap)
	}
}

func TestPacerSetRate(t *testing.T) {
	var p pacer
	p.setRate(10)
	now := time.Unix(0, 0)
	p.take(now) // the first event leaves one catch-up slot: next at now
	p.take(now) // next at +100ms
	p.setRate(2)
	if got := p.ready().Sub(now); got != 500*time.Millisecond {
		t.Fatalf("after slowing to 2/s the next slot is %s away, want 500ms", got)
	}
	p.setRate(0)
	p.take(now)
	if p.interval != 0 {
		t.Fatal("rate 0 must mean no limit")
	}
}
