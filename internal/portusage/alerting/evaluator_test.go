package alerting

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type world struct {
	set    *fakeSettings
	use    *fakeUsage
	leader atomic.Bool
	reg    *prometheus.Registry
	ev     *Evaluator
}

func newWorld(t *testing.T, wh WebhookOptions, ticks <-chan time.Time) *world {
	w := &world{
		set: &fakeSettings{ents: map[string]uint32{"acme": 100}},
		use: &fakeUsage{tenants: map[string]usageFig{}},
		reg: prometheus.NewRegistry(),
	}
	ev, err := New(Options{Settings: w.set, Usage: w.use, IsLeader: w.leader.Load, Registerer: w.reg, Logger: quiet(), NodeID: "n1", Ticks: ticks, Webhook: wh})
	if err != nil {
		t.Fatal(err)
	}
	w.ev = ev
	return w
}

func (w *world) inUse(tenant string, n uint32) { w.use.tenants[tenant] = usageFig{200, n} }

func hi(url string) *fsmpb.Threshold {
	return &fsmpb.Threshold{Id: "hi", Tenant: "acme", Metric: MetricInUsePercentOfEntitlement, Direction: Above, Value: 90, ClearValue: 85, WebhookUrl: url}
}

func TestEvaluatorFollowerKeepsAlertsButDoesNotNotify(t *testing.T) {
	w := newWorld(t, WebhookOptions{}, nil)
	w.set.ths = []*fsmpb.Threshold{hi("")}
	w.inUse("acme", 95)
	w.ev.Evaluate(t0)
	al := w.ev.ActiveAlerts()
	if len(al) != 1 || al[0].ThresholdId != "hi" || al[0].Value != 95 || al[0].RaisedUnixMs != t0.UnixMilli() {
		t.Fatalf("alerts = %v", al)
	}
	if g := w.value("dialtone_port_alerts_active", "hi", "acme", ""); g != 1 {
		t.Fatalf("gauge = %v", g)
	}
	if n := w.series("dialtone_port_alerts_total"); n != 0 {
		t.Fatalf("follower counted %d events", n)
	}
	// It becomes leader while the alert is up: no second announcement.
	w.leader.Store(true)
	w.ev.Evaluate(t0.Add(time.Second))
	if n := w.series("dialtone_port_alerts_total"); n != 0 {
		t.Fatal("new leader re-announced an alert already raised")
	}
	w.inUse("acme", 80)
	w.ev.Evaluate(t0.Add(2 * time.Second))
	if c := w.value("dialtone_port_alerts_total", "hi", "acme", "cleared"); c != 1 {
		t.Fatalf("cleared counter = %v", c)
	}
	if len(w.ev.ActiveAlerts()) != 0 || w.value("dialtone_port_alerts_active", "hi", "acme", "") != 0 {
		t.Fatal("alert still active")
	}
}

func TestEvaluatorMissingEntitlementNoAlert(t *testing.T) {
	w := newWorld(t, WebhookOptions{}, nil)
	w.leader.Store(true)
	th := hi("")
	th.Tenant = "globex" // no entitlement
	w.set.ths = []*fsmpb.Threshold{th}
	w.inUse("globex", 200)
	w.ev.Evaluate(t0)
	if len(w.ev.ActiveAlerts()) != 0 || w.series("dialtone_port_alerts_total") != 0 {
		t.Fatal("alert without an entitlement")
	}
	w.set.ents["globex"] = 100
	w.ev.Evaluate(t0.Add(time.Second))
	if len(w.ev.ActiveAlerts()) != 1 {
		t.Fatal("no alert once the entitlement is set")
	}
}

func TestEvaluatorDeleteAndChangeClear(t *testing.T) {
	w := newWorld(t, WebhookOptions{}, nil)
	w.leader.Store(true)
	w.set.ths = []*fsmpb.Threshold{hi("")}
	w.inUse("acme", 95)
	w.ev.Evaluate(t0)
	// Raising the value keeps the alert (same tenant/metric/direction).
	edited := hi("")
	edited.Value, edited.ClearValue = 93, 88
	w.set.ths = []*fsmpb.Threshold{edited}
	w.ev.Evaluate(t0.Add(time.Second))
	if al := w.ev.ActiveAlerts(); len(al) != 1 || al[0].RaisedUnixMs != t0.UnixMilli() {
		t.Fatalf("edit lost the alert: %v", al)
	}
	// Changing the metric clears it, then it is evaluated afresh.
	changed := hi("")
	changed.Metric = MetricInUsePercentOfTotal // 95 of 200 = 47.5%
	w.set.ths = []*fsmpb.Threshold{changed}
	w.ev.Evaluate(t0.Add(2 * time.Second))
	if len(w.ev.ActiveAlerts()) != 0 || w.value("dialtone_port_alerts_total", "hi", "acme", "cleared") != 1 {
		t.Fatal("metric change did not clear")
	}
	w.inUse("acme", 199)
	w.ev.Evaluate(t0.Add(3 * time.Second))
	w.set.ths = nil
	w.ev.Evaluate(t0.Add(4 * time.Second))
	if len(w.ev.ActiveAlerts()) != 0 || w.value("dialtone_port_alerts_total", "hi", "acme", "cleared") != 2 {
		t.Fatal("delete did not clear")
	}
	// The gauge series of a deleted threshold is gone.
	if n := w.series("dialtone_port_alerts_active"); n != 0 {
		t.Fatalf("%d gauge series left", n)
	}
}

// TestWebhookRunRetries drives Run with a fake ticker: the leader POSTs
// one notification per crossing, retrying a failing endpoint.
func TestWebhookRunRetries(t *testing.T) {
	var (
		mu    sync.Mutex
		got   []Notification
		calls atomic.Int32
	)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			rw.WriteHeader(http.StatusServiceUnavailable) // first attempt fails
			return
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s", r.Method, r.Header.Get("Content-Type"))
		}
		var n Notification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	}))
	defer srv.Close()

	ticks := make(chan time.Time)
	w := newWorld(t, WebhookOptions{Backoff: time.Millisecond}, ticks)
	w.leader.Store(true)
	w.set.ths = []*fsmpb.Threshold{hi(srv.URL + "/hook")}
	evaluated := make(chan struct{})
	w.ev.evaluated = func() { evaluated <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.ev.Run(ctx); close(done) }()

	for i, inUse := range []uint32{50, 95, 91, 96, 84, 80} { // raise once, clear once
		w.inUse("acme", inUse)
		ticks <- t0.Add(time.Duration(i) * time.Second)
		<-evaluated
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d notifications delivered", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if got[0].Event != "raised" || got[0].ThresholdID != "hi" || got[0].Tenant != "acme" || got[0].Metric != MetricInUsePercentOfEntitlement ||
		got[0].Value != 95 || got[0].Threshold != 90 || got[0].TimeUnixMs != t0.Add(time.Second).UnixMilli() || got[0].NodeID != "n1" {
		t.Fatalf("raised = %+v", got[0])
	}
	if got[1].Event != "cleared" || got[1].Value != 84 {
		t.Fatalf("cleared = %+v", got[1])
	}
	if calls.Load() != 3 {
		t.Fatalf("%d POSTs, want 3 (one retry)", calls.Load())
	}
}

func TestWebhookGivesUp(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if strings.HasSuffix(r.URL.Path, "/bad") {
			rw.WriteHeader(http.StatusBadRequest)
			return
		}
		rw.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	w := newWebhook(WebhookOptions{Attempts: 3, Backoff: time.Millisecond}, quiet())
	w.deliver(context.Background(), outgoing{url: srv.URL + "/down"})
	if calls.Load() != 3 || counterValue(w.failures) != 1 {
		t.Fatalf("calls %d failures %v", calls.Load(), counterValue(w.failures))
	}
	w.deliver(context.Background(), outgoing{url: srv.URL + "/bad"}) // 4xx: not retried
	if calls.Load() != 4 || counterValue(w.failures) != 2 {
		t.Fatalf("calls %d failures %v", calls.Load(), counterValue(w.failures))
	}
	// A full queue drops without blocking.
	small := newWebhook(WebhookOptions{QueueLength: 1}, quiet())
	small.enqueue("http://x", Notification{})
	small.enqueue("http://x", Notification{})
	if counterValue(small.failures) != 1 {
		t.Fatal("full queue did not drop")
	}
}

func TestRunStopsWithContext(t *testing.T) {
	w := newWorld(t, WebhookOptions{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.ev.Run(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, err := New(Options{Settings: w.set, IsLeader: w.leader.Load, Registerer: w.reg}); err == nil {
		t.Fatal("registering twice succeeded")
	}
}

// value returns a metric's value for the labels (event "" for the gauge),
// or -1 when the series does not exist.
func (w *world) value(name, id, tenant, event string) float64 {
	mfs, _ := w.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			want := map[string]string{"threshold_id": id, "tenant": tenant, "event": event}
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

func (w *world) series(name string) int {
	mfs, _ := w.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

func counterValue(c prometheus.Counter) float64 {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, _ := reg.Gather()
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}
