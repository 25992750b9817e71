package dialer

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// TestBudgetWithDelayedReports simulates a media platform that reports its
// ports in use on every change, with the report reaching the dialer after a
// delay, while the dialer arms and places calls as fast as the budget
// allows. The platform must never be asked for more ports than it has
// (PortLoadFactor 100), whatever the delay up to the margin, including
// ports held by calls of a previous leader when the engine starts.
func TestBudgetWithDelayedReports(t *testing.T) {
	const margin = 100 * time.Millisecond
	for _, tc := range []struct {
		name      string
		mode      string
		plf       uint32
		ports     int
		leftover  int // calls of a previous leader holding ports at the start
		external  int // ports used by other traffic (inbound calls)
		delay     time.Duration
		talk      time.Duration
		wantLimit int // the most calls of this engine in progress at once
	}{
		{"total ports, fast reports", pacing.BatchTotalPorts, 100, 50, 0, 0, 5 * time.Millisecond, 300 * time.Millisecond, 50},
		{"total ports, reports at the margin", pacing.BatchTotalPorts, 100, 50, 0, 0, 95 * time.Millisecond, 300 * time.Millisecond, 50},
		{"leftover calls of a previous leader", pacing.BatchTotalPorts, 100, 50, 30, 0, 40 * time.Millisecond, 300 * time.Millisecond, 50},
		{"load factor 80", pacing.BatchTotalPorts, 80, 50, 0, 0, 20 * time.Millisecond, 300 * time.Millisecond, 40},
		{"available ports with other traffic", pacing.BatchAvailablePorts, 100, 50, 0, 20, 20 * time.Millisecond, 300 * time.Millisecond, 30},
		{"available ports, load factor 50", pacing.BatchAvailablePorts, 50, 60, 0, 20, 20 * time.Millisecond, 300 * time.Millisecond, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 8))
			start := time.Unix(1000, 0)
			var b budget
			type report struct {
				at    time.Time // when the dialer receives it
				inUse int
			}
			var inFlight []report
			cur := PortReport{Total: uint32(tc.ports), InUse: uint32(tc.leftover + tc.external), ReceivedAt: start, OK: true}
			var ends []time.Time // own calls' end times
			leftEnd := start.Add(150 * time.Millisecond)
			occupied := func(now time.Time) int {
				n := tc.external + len(ends)
				if now.Before(leftEnd) {
					n += tc.leftover
				}
				return n
			}
			publish := func(now time.Time) {
				inFlight = append(inFlight, report{at: now.Add(tc.delay), inUse: occupied(now)})
			}
			maxOwn, maxOcc := 0, 0
			for step := range 3000 {
				now := start.Add(time.Duration(step) * time.Millisecond)
				// Calls end; the platform reports the change.
				kept := ends[:0]
				changed := false
				for _, e := range ends {
					if e.After(now) {
						kept = append(kept, e)
					} else {
						b.calls--
						changed = true
					}
				}
				ends = kept
				if now.Equal(leftEnd) {
					changed = true
				}
				if changed {
					publish(now)
				}
				// Reports arrive.
				for len(inFlight) > 0 && !inFlight[0].at.After(now) {
					cur = PortReport{Total: uint32(tc.ports), InUse: uint32(inFlight[0].inUse), ReceivedAt: inFlight[0].at, OK: true}
					inFlight = inFlight[1:]
				}
				// Arm and place as many as the budget allows.
				for b.canArm(tc.mode, tc.plf, cur, margin) {
					b.armed++
					b.place(now)
					ends = append(ends, now.Add(tc.talk/2+time.Duration(rng.Int64N(int64(tc.talk)))))
					publish(now)
				}
				maxOwn = max(maxOwn, b.calls)
				maxOcc = max(maxOcc, occupied(now))
			}
			if maxOcc > tc.ports {
				t.Fatalf("the platform had %d ports in use, more than its %d", maxOcc, tc.ports)
			}
			if maxOwn != tc.wantLimit {
				t.Fatalf("at most %d calls in progress, want the budget %d to be reached and kept", maxOwn, tc.wantLimit)
			}
		})
	}
}

func TestBudgetNoReportNoCapacity(t *testing.T) {
	var b budget
	if b.canArm(pacing.BatchTotalPorts, 100, PortReport{}, time.Second) {
		t.Fatal("armed a call without any port report")
	}
	if l, _, _, _ := b.limit(pacing.BatchTotalPorts, 100, PortReport{Total: 10, OK: false}, time.Second); l != 0 {
		t.Fatalf("stale report gave a budget of %d, want 0", l)
	}
}

func TestSampledPortsRefresh(t *testing.T) {
	t0 := time.Unix(1000, 0)
	rep := func(total, inUse uint32) PortReport {
		return PortReport{Total: total, InUse: inUse, ReceivedAt: t0, OK: true}
	}
	var s sampledPorts
	steps := []struct {
		at        time.Duration
		rep       PortReport
		plf       uint32
		use       int // calls armed before this step
		wantQuota int
	}{
		{0, rep(50, 10), 100, 0, 40},                // first sample: the available ports
		{time.Second, rep(50, 0), 100, 15, 25},      // no new sample within 5s: 40 - 15, ended calls free nothing
		{5 * time.Second, rep(50, 30), 100, 0, 20},  // new sample
		{10 * time.Second, rep(50, 10), 50, 20, 20}, // PortLoadFactor on the available ports: (50-10)*50%
		{15 * time.Second, rep(50, 60), 100, 0, 0},  // more in use than total
		{20 * time.Second, PortReport{}, 100, 0, 0}, // no report: no capacity
	}
	for i, st := range steps {
		s.quota -= st.use
		s.refresh(t0.Add(st.at), 5*time.Second, st.rep, st.plf)
		if s.quota != st.wantQuota {
			t.Fatalf("step %d: quota %d, want %d", i, s.quota, st.wantQuota)
		}
	}
}

// TestEngineSampledPortView: with the SSG-style baseline the engine arms at
// most the ports available at each sample until the next one, however fast
// calls end, while the default live view refills ports as they free.
func TestEngineSampledPortView(t *testing.T) {
	const ports, hold, interval, run = 10, 20 * time.Millisecond, 400 * time.Millisecond, 1500 * time.Millisecond
	for _, view := range []string{PortViewSampled, PortViewLive} {
		t.Run(view, func(t *testing.T) {
			h := newHarness(t, hold)
			h.setPorts("acme", ports)
			h.st.setPacing(&fsmpb.Pacing{Tenant: "acme", Caps: 2000})
			h.submit("acme", "Application", 2000, 1, time.Hour, digits)
			h.opts = func(o *Options) { o.PortView, o.PortSampleInterval = view, interval }
			h.start()
			time.Sleep(run)
			h.stop()
			n := len(h.plat.snapshot())
			samples := int(run/interval) + 1
			if view == PortViewSampled {
				if n == 0 || n > ports*samples {
					t.Fatalf("sampled view placed %d calls in %s, want 1..%d (%d ports per %s sample)", n, run, ports*samples, ports, interval)
				}
				return
			}
			// The live view reuses ports as calls end: far more calls.
			if n <= ports*samples*2 {
				t.Fatalf("live view placed only %d calls in %s", n, run)
			}
		})
	}
}

// TestBudgetPlacedSince: placedSince counts the dial times at or after t
// among those of the last placedKeep, as a scan of every time placed
// would, while times age out (the slice stays bounded).
func TestBudgetPlacedSince(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	var b budget
	var all []time.Time
	now := start
	for i := range 40_000 {
		// Bursts of equal times, gaps up to 2 ms: 40,000 calls span
		// about 40 s, four times placedKeep.
		if rng.IntN(3) > 0 {
			now = now.Add(time.Duration(rng.IntN(2_000_000)))
		}
		b.armed++
		b.place(now)
		all = append(all, now)
		if i%997 != 0 {
			continue
		}
		for _, back := range []time.Duration{0, time.Microsecond, 3 * time.Millisecond, time.Second, placedKeep - time.Millisecond} {
			since := now.Add(-back)
			want := 0
			for _, p := range all {
				if !p.Before(since) {
					want++
				}
			}
			if got := b.placedSince(since); got != want {
				t.Fatalf("call %d: placedSince(now - %s) = %d, want %d", i, back, got, want)
			}
		}
		if kept := len(b.placed); kept > 2*(len(b.placed)-b.head)+64 {
			t.Fatalf("call %d: %d times kept for %d live", i, kept, len(b.placed)-b.head)
		}
	}
	if b.calls != 40_000 || b.armed != 0 {
		t.Fatalf("calls %d, armed %d", b.calls, b.armed)
	}
}

// BenchmarkBudgetPlace: one call placed at 5,000 CAPS, with a full
// placedKeep of earlier calls (50,000 times) behind it.
func BenchmarkBudgetPlace(b *testing.B) {
	var bud budget
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	step := time.Second / 5000
	for range 50_000 {
		bud.armed++
		bud.place(now)
		now = now.Add(step)
	}
	b.ReportAllocs()
	for b.Loop() {
		bud.armed++
		bud.place(now)
		_ = bud.placedSince(now.Add(-200 * time.Millisecond))
		now = now.Add(step)
	}
}
