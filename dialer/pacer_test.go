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
