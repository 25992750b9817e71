package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/sim/mediasim"
	"github.com/seed-7bfc04c2/dialtone/test/chaos/history"
)

// TestMeasure: a fault's write and dial gaps are the longest silences from
// its start to the next fault, and the baseline covers the warm-up.
func TestMeasure(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	h := &history.History{Start: t0}
	for _, ms := range []int{100, 300, 600, 1000, 1100, 3500, 3600, 5000} { // acks
		h.Ops = append(h.Ops, history.Op{Kind: history.Create, Outcome: history.OK, Return: at(ms)})
	}
	h.Ops = append(h.Ops, history.Op{Kind: history.Get, Outcome: history.OK, Return: at(2000)})         // a read is not a write
	h.Ops = append(h.Ops, history.Op{Kind: history.Cancel, Outcome: history.Unknown, Return: at(2500)}) // nor a failed cancel
	for _, ms := range []int{200, 900, 1050, 4200, 4300} {
		h.Calls = append(h.Calls, mediasim.CallRecord{Start: at(ms)})
	}
	h.Faults = []history.Fault{{Name: "kill-leader", Start: at(1000), Settled: at(1500), Healed: at(3000)}}
	av := Measure(h, at(5000))
	if len(av) != 2 {
		t.Fatalf("%d entries", len(av))
	}
	if av[0].WriteGap != 400*time.Millisecond || av[0].DialGap != 700*time.Millisecond {
		t.Errorf("baseline: write %v dial %v, want 400ms 700ms", av[0].WriteGap, av[0].DialGap)
	}
	if av[1].WriteGap != 2400*time.Millisecond || av[1].DialGap != 3150*time.Millisecond {
		t.Errorf("fault: write %v dial %v, want 2.4s 3.15s", av[1].WriteGap, av[1].DialGap)
	}
	if tab := AvailabilityTable(av); !strings.Contains(tab, "| kill-leader |  | 500ms | 2s | 2.4s | 3.15s |") {
		t.Errorf("table:\n%s", tab)
	}
}

// TestMeasureClosedWindow: the time the calling window was closed does
// not count in a gap between calls (but does between writes).
func TestMeasureClosedWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	h := &history.History{Start: t0, Settings: history.Settings{Contact: &history.ContactRules{
		Closed: []history.Span{{From: at(1500), To: at(3500)}, {From: at(4800), To: at(6000)}},
	}}}
	for _, ms := range []int{500, 4000, 4500} {
		h.Ops = append(h.Ops, history.Op{Kind: history.Create, Outcome: history.OK, Return: at(ms)})
		h.Calls = append(h.Calls, mediasim.CallRecord{Start: at(ms)})
	}
	h.Faults = []history.Fault{{Name: "pause-leader", Start: at(1000)}}
	av := Measure(h, at(5000))
	// Writes: 1000..4000 = 3s. Calls: 1000..4000 less the 2 s closed = 1 s;
	// 4500..5000 less 4800..5000 = 300ms.
	if av[1].WriteGap != 3*time.Second || av[1].DialGap != time.Second {
		t.Errorf("write %v dial %v, want 3s 1s", av[1].WriteGap, av[1].DialGap)
	}
	if got := openTime(at(0), at(10000), h.Settings.Contact.Closed); got != 6800*time.Millisecond {
		t.Errorf("openTime over both spans = %v, want 6.8s", got)
	}
	// A fault whose whole span the window was closed: no call gap.
	h.Faults = []history.Fault{{Name: "pause-leader", Start: at(1000)}, {Name: "kill-follower", Start: at(1600)}, {Name: "kill-leader", Start: at(3500)}}
	av = Measure(h, at(5000))
	if tab := AvailabilityTable(av); av[2].DialOpen != 0 || !strings.Contains(tab, "| kill-follower |  | - | - | 1.9s | - (window closed) |") {
		t.Errorf("open %v, table:\n%s", av[2].DialOpen, tab)
	}
}

// TestLeaderTerms: a new term inside a fault's window is forced; one
// elsewhere is not.
func TestLeaderTerms(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	h := &history.History{
		Faults: []history.Fault{{Name: "kill-leader", Start: at(10), Settled: at(11)}},
		Leaders: []history.LeaderObs{
			{Time: at(1), Node: "n1", State: "Leader", Term: 2},
			{Time: at(11), Node: "n2", State: "Leader", Term: 3},
			{Time: at(12), Node: "n1", State: "Follower", Term: 3},
			{Time: at(40), Node: "n3", State: "Leader", Term: 5},
		},
	}
	if terms, unforced := LeaderTerms(h); terms != 2 || unforced != 1 {
		t.Fatalf("terms %d unforced %d, want 2 and 1", terms, unforced)
	}
}
