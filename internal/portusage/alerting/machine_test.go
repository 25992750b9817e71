package alerting

import (
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

var t0 = time.Unix(1_700_000_000, 0)

func ok(v float64) Reading { return Reading{Value: v, OK: true} }

var missing = Reading{Missing: MissingUsage}

func TestStep(t *testing.T) {
	above := Rule{Direction: Above, Value: 90, ClearValue: 85}
	below := Rule{Direction: Below, Value: 10, ClearValue: 15}
	type step struct {
		in     Reading
		want   Event
		active bool
	}
	cases := []struct {
		name  string
		rule  Rule
		steps []step
	}{
		{"above: raise at value, once", above, []step{
			{ok(50), None, false}, {ok(90), Raised, true}, {ok(99), None, true}, {ok(95), None, true},
		}},
		{"above: flapping around value raises once", above, []step{
			{ok(89.9), None, false}, {ok(90.1), Raised, true}, {ok(89.9), None, true}, {ok(90.1), None, true},
			{ok(86), None, true}, {ok(91), None, true},
		}},
		{"above: clears only at clear_value, then raises again", above, []step{
			{ok(95), Raised, true}, {ok(85.1), None, true}, {ok(85), Cleared, false}, {ok(89), None, false},
			{ok(90), Raised, true}, {ok(10), Cleared, false},
		}},
		{"below: floor with hysteresis", below, []step{
			{ok(20), None, false}, {ok(10), Raised, true}, {ok(11), None, true}, {ok(9), None, true},
			{ok(14.9), None, true}, {ok(15), Cleared, false}, {ok(12), None, false}, {ok(0), Raised, true},
		}},
		{"missing data neither raises nor clears", above, []step{
			{missing, None, false}, {ok(95), Raised, true}, {missing, None, true}, {Reading{Missing: MissingEntitlement}, None, true},
			{ok(80), Cleared, false}, {missing, None, false},
		}},
		{"stale data (all servers aged out) holds an active floor alert", below, []step{
			{ok(5), Raised, true}, {missing, None, true}, {missing, None, true}, {ok(20), Cleared, false},
		}},
		{"unknown direction never fires", Rule{Direction: "sideways", Value: 1}, []step{
			{ok(100), None, false}, {ok(0), None, false},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s State
			for i, st := range c.steps {
				now := t0.Add(time.Duration(i) * time.Second)
				prev := s
				var ev Event
				s, ev = Step(c.rule, s, st.in, now)
				if ev != st.want || s.Active != st.active {
					t.Fatalf("step %d (%+v): event %s active %v, want %s %v", i, st.in, ev, s.Active, st.want, st.active)
				}
				if ev == Raised && !s.Since.Equal(now) {
					t.Fatalf("step %d: since %v", i, s.Since)
				}
				if !st.in.OK && s != prev {
					t.Fatalf("step %d: missing reading changed the state", i)
				}
				if st.in.OK && s.Value != st.in.Value {
					t.Fatalf("step %d: value %v", i, s.Value)
				}
			}
		})
	}
}

type fakeSettings struct {
	ths  []*fsmpb.Threshold
	ents map[string]uint32
}

func (f *fakeSettings) Thresholds() []*fsmpb.Threshold { return f.ths }
func (f *fakeSettings) Entitlement(t string) (uint32, bool) {
	n, ok := f.ents[t]
	return n, ok
}
func (f *fakeSettings) Entitlements() []*fsmpb.Entitlement {
	var out []*fsmpb.Entitlement
	for t, n := range f.ents {
		out = append(out, &fsmpb.Entitlement{Tenant: t, LicensedPorts: n})
	}
	return out
}

type usageFig struct{ total, inUse uint32 }

type fakeUsage struct {
	dep     *usageFig
	tenants map[string]usageFig
}

func (f *fakeUsage) Deployment() (uint32, uint32, bool) {
	if f.dep == nil {
		return 0, 0, false
	}
	return f.dep.total, f.dep.inUse, true
}
func (f *fakeUsage) Tenant(t string) (uint32, uint32, bool) {
	u, ok := f.tenants[t]
	return u.total, u.inUse, ok
}

func TestMeasure(t *testing.T) {
	set := &fakeSettings{ents: map[string]uint32{"acme": 200, "globex": 50}}
	use := &fakeUsage{dep: &usageFig{400, 100}, tenants: map[string]usageFig{"acme": {300, 150}, "empty": {0, 0}}}
	cases := []struct {
		tenant, metric string
		want           Reading
	}{
		{"acme", MetricInUsePercentOfEntitlement, ok(75)},
		{"acme", MetricInUsePercentOfTotal, ok(50)},
		{"acme", MetricAvailablePorts, ok(150)},
		{"", MetricInUsePercentOfEntitlement, ok(40)}, // 100 of 250 entitled overall
		{"", MetricInUsePercentOfTotal, ok(25)},
		{"", MetricAvailablePorts, ok(300)},
		{"globex", MetricAvailablePorts, missing},                                        // no usage data
		{"empty", MetricInUsePercentOfEntitlement, Reading{Missing: MissingEntitlement}}, // data but no entitlement
		{"empty", MetricInUsePercentOfTotal, Reading{Missing: MissingPorts}},
		{"empty", MetricAvailablePorts, ok(0)},
		{"acme", "bogus", Reading{Missing: MissingMetric}},
	}
	for _, c := range cases {
		got := Measure(&fsmpb.Threshold{Tenant: c.tenant, Metric: c.metric}, set, use)
		if got != c.want {
			t.Errorf("%s/%s = %+v, want %+v", c.tenant, c.metric, got, c.want)
		}
	}
	// Oversubscribed: in use beyond total gives 0 available, not a wrap.
	use.tenants["over"] = usageFig{10, 12}
	if got := Measure(&fsmpb.Threshold{Tenant: "over", Metric: MetricAvailablePorts}, set, use); got != ok(0) {
		t.Errorf("oversubscribed = %+v", got)
	}
	if got := Measure(&fsmpb.Threshold{Metric: MetricAvailablePorts}, set, NoUsage{}); got.OK {
		t.Error("NoUsage gave data")
	}
}
