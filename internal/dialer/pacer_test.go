package dialer

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
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
			limit, _ := pacing.WindowLimits(tc.rate)
			if got := maxInWindow(ts); got > limit {
				t.Fatalf("a one-second window holds %d events, want at most %d", got, limit)
			}
		})
	}
}

// TestPacerKeepsRateUnderSmallLateness: a sender late by a constant
// amount keeps the exact rate while the lateness is below half an interval
// (the windows' guard). Beyond that the one-second window binds: n =
// floor(X) + 1 events per (1 s + interval/2 + lateness), each event
// (lateness − interval/2) / n later. The 100 ms window holds a quarter
// more than the pace (m = ceil(X/8) + 1) and binds only once m events per
// (100 ms + interval/2 + lateness) is slower still: at 100/s, m = 14 and
// the lateness above about 40 ms. (With m = ceil(X/10) + 1 = 11 it bound
// from half an interval on, and 9 ms cost (100+5+9)/11 ms an event.)
func TestPacerKeepsRateUnderSmallLateness(t *testing.T) {
	perSec, per100ms := pacing.WindowLimits(100)
	if perSec != 101 || per100ms != 14 {
		t.Fatalf("window limits at 100/s: %d, %d; the cases below assume 101 and 14", perSec, per100ms)
	}
	for _, tc := range []struct {
		late     time.Duration
		min, max time.Duration
	}{
		{4 * time.Millisecond, 9990 * time.Millisecond, 10 * time.Second},
		{9 * time.Millisecond, 10020 * time.Millisecond, 10060 * time.Millisecond},  // one second: (1000+5+9)/101 ms each
		{45 * time.Millisecond, 10650 * time.Millisecond, 10800 * time.Millisecond}, // 100 ms: (100+5+45)/14 ms each
	} {
		var p pacer
		p.setRate(100)
		start := time.Unix(0, 0)
		p.next = start
		now := start
		for range 1000 {
			now = p.ready().Add(tc.late)
			p.take(now)
		}
		// 1000 events at exactly 100/s take 9.99 s (+ the constant lateness).
		if got := now.Sub(start); got < tc.min || got > tc.max {
			t.Errorf("late by %s: 1000 events took %s, want %s..%s", tc.late, got, tc.min, tc.max)
		}
	}
}

// TestPacerMakesUpSlotsOfALateDispatcher: a sender that wakes late every
// time and then takes every slot that is due keeps the rate within a
// bound set by its lateness, and no one-second window holds more than
// floor(X) + 1 events nor any 100 ms window more than ceil(X/8) + 1. (When
// a window limit binds, the wake-up lateness shifts the schedule: the
// achieved rate is about floor(X) + 1 per (1 s + 1/2X + mean lateness), or
// ceil(X/8) + 1 per (100 ms + 1/2X + mean lateness) if that is less; at
// these latenesses the one-second window binds. A timer 0-0.2 ms late
// loses under 0.1%; one 1-5 ms late, a loaded machine, about 0.25% at
// 1,000/s and above. With ceil(X/10) + 1 in 100 ms that window bound
// first, and the late timer lost 2.6-2.9%: the tolerances below fail it.)
func TestPacerMakesUpSlotsOfALateDispatcher(t *testing.T) {
	for _, tc := range []struct {
		rate            float64
		minLate, jitter time.Duration
		tol             float64
	}{
		{1000, 0, 200 * time.Microsecond, 0.001},
		{5000, 0, 200 * time.Microsecond, 0.001},
		{333.3, 0, 200 * time.Microsecond, 0.001},
		{200, time.Millisecond, 4 * time.Millisecond, 0.003},
		{1000, time.Millisecond, 4 * time.Millisecond, 0.005},
		{5000, time.Millisecond, 4 * time.Millisecond, 0.005},
		{5000, 2 * time.Millisecond, 8 * time.Millisecond, 0.01},
	} {
		r := rand.New(rand.NewPCG(3, 4))
		var p pacer
		p.setRate(tc.rate)
		start := time.Unix(1000, 0)
		now := start
		var ts []time.Time
		for now.Sub(start) < 20*time.Second {
			now = p.ready().Add(tc.minLate + time.Duration(r.Int64N(int64(tc.jitter))))
			if now.Before(start) {
				now = start
			}
			for !p.ready().After(now) {
				p.take(now)
				ts = append(ts, now)
			}
		}
		got := float64(len(ts)) / now.Sub(start).Seconds()
		if got < tc.rate*(1-tc.tol) || got > tc.rate*(1+tc.tol) {
			t.Errorf("rate %g late %s+%s: achieved %.2f/s", tc.rate, tc.minLate, tc.jitter, got)
		}
		checkWindows(t, ts, tc.rate)
	}
}

// maxInSpan is the largest number of events in any half-open window of
// length span; the extreme windows start at an event.
func maxInSpan(ts []time.Time, span time.Duration) int {
	best, j := 0, 0
	for i := range ts {
		for j < len(ts) && ts[j].Sub(ts[i]) < span {
			j++
		}
		best = max(best, j-i)
	}
	return best
}

// checkWindows fails t when a one-second window of ts holds more than
// floor(rate) + 1 events or a 100 ms window more than ceil(rate/8) + 1
// (pacing.WindowLimits).
func checkWindows(t *testing.T, ts []time.Time, rate float64) {
	t.Helper()
	checkWindowsSlack(t, ts, rate, 0)
}

// checkWindowsSlack is checkWindows allowing slack events more.
func checkWindowsSlack(t *testing.T, ts []time.Time, rate float64, slack int) {
	t.Helper()
	perSec, per100ms := pacing.WindowLimits(rate)
	if w, lim := maxInSpan(ts, time.Second), perSec+slack; w > lim {
		t.Errorf("rate %g: a one-second window holds %d events, limit %d", rate, w, lim)
	}
	if w, lim := maxInSpan(ts, 100*time.Millisecond), per100ms+slack; w > lim {
		t.Errorf("rate %g: a 100 ms window holds %d events, limit %d", rate, w, lim)
	}
}

// TestPacerColdStartHasNoDebt: the first events of a fresh pacer (and of
// one whose rate was unlimited) are 1/X apart, not a burst.
func TestPacerColdStartHasNoDebt(t *testing.T) {
	for _, rate := range []float64{50, 200, 1000} {
		for _, warm := range []bool{false, true} {
			var p pacer
			if warm {
				p.setRate(0)
				p.take(time.Unix(5, 0))
			}
			p.setRate(rate)
			now := time.Unix(10, 0)
			p.take(now)
			if got, want := p.ready().Sub(now), rateInterval(rate); got != want {
				t.Errorf("rate %g (after unlimited: %v): second slot %s after the first, want %s", rate, warm, got, want)
			}
		}
	}
}

// TestPacerCatchUpAfterStalls: a sender that stalls for up to 300 ms at
// random and then takes every slot that is due never crowds a window, at
// the rates, and its catch-up fills the 100 ms window to its limit
// (ceil(X/8) + 1: the made-up slots go at up to a quarter above the rate,
// not one extra per 100 ms).
func TestPacerCatchUpAfterStalls(t *testing.T) {
	for _, rate := range []float64{50, 200, 1000, 2000} {
		r := rand.New(rand.NewPCG(5, 6))
		var p pacer
		p.setRate(rate)
		now := time.Unix(1000, 0)
		var ts []time.Time
		for range int(rate * 20) {
			late := time.Duration(r.Int64N(int64(time.Millisecond)))
			if r.IntN(20) == 0 {
				late = time.Duration(r.Int64N(int64(300 * time.Millisecond)))
			}
			if at := p.ready().Add(late); at.After(now) {
				now = at
			}
			for !p.ready().After(now) {
				p.take(now)
				ts = append(ts, now)
			}
		}
		checkWindows(t, ts, rate)
		if _, lim := pacing.WindowLimits(rate); maxInSpan(ts, 100*time.Millisecond) < lim {
			t.Errorf("rate %g: the catch-up filled a 100 ms window with at most %d events, want the limit %d", rate, maxInSpan(ts, 100*time.Millisecond), lim)
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
	// The older missed slots are dropped: the schedule allows the next at
	// +100ms. The two events at one instant leave room in the 100 ms
	// window (ceil(10/8) + 1 = 3; with ceil(10/10) + 1 = 2 they filled it
	// and held the next for 100 ms plus half an interval, 150ms).
	if gap := p.ready().Sub(now); gap != 100*time.Millisecond {
		t.Fatalf("second catch-up slot %s away, want 100ms", gap)
	}
}

func TestPacerSetRate(t *testing.T) {
	var p pacer
	p.setRate(10)
	now := time.Unix(0, 0)
	p.take(now) // cold: no debt, next at +100ms
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

// TestPacerPendingHoldsTheWindow: a send taken as pending holds its
// window closed while it is the oldest entry, and once settled the window
// opens one span after its written time, not its gate time.
func TestPacerPendingHoldsTheWindow(t *testing.T) {
	var p pacer
	p.setRate(10) // 100 ms window: ceil(10/8)+1 = 3 sends, span 100 ms + 50 ms
	t0 := time.Unix(1000, 0)
	p.takePending(t0, -1)
	p.takePending(t0.Add(100*time.Millisecond), -2)
	if got := p.windows[1].ready(); !got.IsZero() {
		t.Fatalf("100 ms window ready at %v after 2 sends, want open (its limit is 3)", got)
	}
	p.takePending(t0.Add(200*time.Millisecond), -3)
	if got := p.windows[1].ready(); !got.Equal(pendingUntil) {
		t.Fatalf("100 ms window ready at %v with its oldest send pending, want closed", got)
	}
	p.settle(-1, t0.Add(30*time.Millisecond))
	if got, want := p.windows[1].ready(), t0.Add(180*time.Millisecond); !got.Equal(want) {
		t.Fatalf("100 ms window ready at %v, want %v (written time + span)", got.Sub(t0), want.Sub(t0))
	}
	p.settle(-1, t0.Add(time.Second)) // settled already: no effect
	if got, want := p.windows[1].ready(), t0.Add(180*time.Millisecond); !got.Equal(want) {
		t.Fatalf("a second settle moved the window to %v", got.Sub(t0))
	}
}

// TestPacerDoesNotEchoALateRun: a sender that always has the next event
// waiting (the gate's queue) and wakes on time, stalled once for 20 ms at
// 500/s. The slots missed in the stall are made up at once, but the
// window logs must not echo that run: the sends a window later are held
// to the run's time by the logs, and are then spread (a quarter interval
// apart at least) instead of released together. Released together, each
// window passed the run on, shrinking only by the window's slack (1 ms a
// second for the one-second window at 500/s): at the far end, calls in
// clumps for many seconds.
func TestPacerDoesNotEchoALateRun(t *testing.T) {
	const rate = 500
	var p pacer
	p.setRate(rate)
	start := time.Unix(1000, 0)
	now := start
	var ts []time.Time
	var stall time.Time
	for now.Sub(start) < 10*time.Second {
		if r := p.ready(); r.After(now) {
			now = r
		}
		if stall.IsZero() && now.Sub(start) > 2*time.Second {
			now = now.Add(20 * time.Millisecond)
			stall = now
		}
		p.take(now)
		ts = append(ts, now)
	}
	iv := time.Second / rate
	for i := 1; i < len(ts); i++ {
		if ts[i].Sub(stall) < 50*time.Millisecond {
			continue // the made-up run itself
		}
		if d := ts[i].Sub(ts[i-1]); d < iv/4 {
			t.Fatalf("events %d and %d %s apart, %s after the stall: the run echoed", i-1, i, d, ts[i].Sub(stall))
		}
	}
	if got := float64(len(ts)-1) / ts[len(ts)-1].Sub(start).Seconds(); got < rate*0.999 || got > rate*1.001 {
		t.Errorf("achieved %.2f/s, want %d", got, rate)
	}
	checkWindows(t, ts, rate)
}
