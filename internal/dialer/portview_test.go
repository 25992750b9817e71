package dialer

import (
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
)

// New picks the port view once from Options.PortView: the sampled baseline
// only for PortViewSampled, the live budget otherwise.
func TestNewPicksPortView(t *testing.T) {
	for _, tc := range []struct {
		view     string
		interval time.Duration
		want     portView
	}{
		{view: "", want: liveView{margin: 100 * time.Millisecond}},
		{view: PortViewLive, want: liveView{margin: 100 * time.Millisecond}},
		{view: PortViewSampled, want: sampledView{interval: 5 * time.Second}},
		{view: PortViewSampled, interval: time.Second, want: sampledView{interval: time.Second}},
		{view: "sampled", want: liveView{margin: 100 * time.Millisecond}}, // config refuses it; the engine stays live
	} {
		e := New(Options{PortView: tc.view, PortSampleInterval: tc.interval})
		if e.view != tc.want {
			t.Errorf("PortView %q, interval %s: view %#v, want %#v", tc.view, tc.interval, e.view, tc.want)
		}
	}
}

// armAll arms attempts for t as the dispatcher does until the view says
// no, and returns how many.
func armAll(v portView, t *tenant) int {
	n := 0
	for v.canArm(t) && n < 1000 {
		t.budget.armed++
		v.armed(t)
		n++
	}
	return n
}

// The live view refills as soon as calls end; the sampled view passes the
// ports free at a sample and nothing more until the next sample.
func TestPortViews(t *testing.T) {
	const interval = time.Second
	t0 := time.Now()
	for _, tc := range []struct {
		name string
		view portView
		// attempts armable: at the start, after those calls ended, half an
		// interval later, a whole interval later.
		want [4]int
	}{
		{"live", liveView{margin: 100 * time.Millisecond}, [4]int{4, 4, 4, 4}},
		{"sampled", sampledView{interval: interval}, [4]int{4, 0, 0, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn := newTenant("acme")
			tn.settings = pacing.Settings{BatchMode: pacing.BatchTotalPorts, PortLoadFactor: 100}
			var got [4]int
			for i, at := range []time.Time{t0, t0, t0.Add(interval / 2), t0.Add(interval)} {
				tn.budget.armed = 0 // every call armed before has ended
				tn.ports = PortReport{Total: 4, ReceivedAt: at, OK: true}
				tc.view.refresh(tn, at)
				got[i] = armAll(tc.view, tn)
			}
			if got != tc.want {
				t.Fatalf("armable %v, want %v", got, tc.want)
			}
		})
	}
}
