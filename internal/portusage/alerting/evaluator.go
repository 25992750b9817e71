package alerting

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Options configure an Evaluator.
type Options struct {
	Settings Settings // required
	Usage    Usage    // nil: NoUsage
	// IsLeader says whether this node notifies (required).
	IsLeader func() bool
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	NodeID     string

	// Interval between evaluations (default 1s). Ticks, when set, replaces
	// the ticker (tests): each value received triggers an evaluation at
	// that time.
	Interval time.Duration
	Ticks    <-chan time.Time

	Webhook WebhookOptions
}

// Evaluator evaluates every threshold every Interval and keeps the alerts.
// Run owns its goroutines; Evaluate and ActiveAlerts may be called from
// any goroutine.
type Evaluator struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex // serialises Evaluate; guards tracked and alerts
	tracked map[string]*tracked
	alerts  []*pb.Alert // published snapshot, sorted by threshold id

	active *prometheus.GaugeVec
	total  *prometheus.CounterVec
	wh     *webhook

	evaluated func() // test hook, called after each Evaluate in Run
}

type tracked struct {
	th      *fsmpb.Threshold
	st      State
	missing string // why the last reading could not be computed
}

// New returns an evaluator and registers its metrics.
func New(opts Options) (*Evaluator, error) {
	if opts.Settings == nil || opts.IsLeader == nil {
		return nil, errors.New("alerting: Settings and IsLeader are required")
	}
	if opts.Usage == nil {
		opts.Usage = NoUsage{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	e := &Evaluator{
		opts:    opts,
		log:     opts.Logger.With("component", "alerting"),
		tracked: map[string]*tracked{},
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dialtone_port_alerts_active",
			Help: "1 while a port-usage threshold's alert is raised, as evaluated on this node (every node evaluates).",
		}, []string{"threshold_id", "tenant"}),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialtone_port_alerts_total",
			Help: "Port-usage alert events notified by this node while leader (event: raised or cleared).",
		}, []string{"threshold_id", "tenant", "event"}),
	}
	e.wh = newWebhook(opts.Webhook, e.log)
	if r := opts.Registerer; r != nil {
		for _, c := range []prometheus.Collector{e.active, e.total, e.wh.failures} {
			if err := r.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return e, nil
}

// Run evaluates every Interval until ctx is done, then waits for the
// webhook sender to stop. Call it once.
func (e *Evaluator) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.wh.run(ctx)
	}()
	defer wg.Wait()

	ticks := e.opts.Ticks
	if ticks == nil {
		t := time.NewTicker(e.opts.Interval)
		defer t.Stop()
		ticks = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticks:
			e.Evaluate(now)
			if e.evaluated != nil {
				e.evaluated()
			}
		}
	}
}

// ActiveAlerts returns the alerts raised, sorted by threshold id.
func (e *Evaluator) ActiveAlerts() []*pb.Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*pb.Alert(nil), e.alerts...)
}

// sameAlert says whether a threshold edit keeps the alert: the same
// tenant, metric and direction (value, clear_value and webhook may change).
func sameAlert(a, b *fsmpb.Threshold) bool {
	return a.Tenant == b.Tenant && a.Metric == b.Metric && a.Direction == b.Direction
}

// Evaluate runs one evaluation at now.
func (e *Evaluator) Evaluate(now time.Time) {
	ths := e.opts.Settings.Thresholds()
	leader := e.opts.IsLeader()

	e.mu.Lock()
	defer e.mu.Unlock()

	current := make(map[string]*fsmpb.Threshold, len(ths))
	for _, th := range ths {
		current[th.Id] = th
	}
	// Thresholds deleted, or changed into another alert.
	for id, tr := range e.tracked {
		th, still := current[id]
		if still && sameAlert(th, tr.th) {
			continue
		}
		if tr.st.Active {
			reason := "threshold deleted"
			if still {
				reason = "threshold changed"
			}
			e.emit(leader, tr.th, Cleared, tr.st.Value, reason, now)
		}
		e.active.DeleteLabelValues(id, tr.th.Tenant)
		delete(e.tracked, id)
	}

	alerts := make([]*pb.Alert, 0, len(e.alerts))
	for _, th := range ths {
		tr := e.tracked[th.Id]
		if tr == nil {
			tr = &tracked{}
			e.tracked[th.Id] = tr
		}
		tr.th = th
		in := Measure(th, e.opts.Settings, e.opts.Usage)
		if in.Missing != tr.missing {
			lvl := slog.LevelDebug
			if leader {
				lvl = slog.LevelInfo
			}
			if in.Missing != "" {
				e.log.Log(context.Background(), lvl, "port alert cannot be evaluated; keeping its state", "threshold_id", th.Id, "tenant", th.Tenant, "metric", th.Metric, "active", tr.st.Active, "why", in.Missing)
			} else {
				e.log.Log(context.Background(), lvl, "port alert can be evaluated again", "threshold_id", th.Id, "tenant", th.Tenant, "metric", th.Metric)
			}
			tr.missing = in.Missing
		}
		var ev Event
		tr.st, ev = Step(Rule{Direction: th.Direction, Value: th.Value, ClearValue: th.ClearValue}, tr.st, in, now)
		if ev != None {
			e.emit(leader, th, ev, tr.st.Value, "", now)
		}
		g := 0.0
		if tr.st.Active {
			g = 1
			alerts = append(alerts, &pb.Alert{
				ThresholdId:  th.Id,
				Tenant:       th.Tenant,
				Metric:       th.Metric,
				Value:        tr.st.Value,
				RaisedUnixMs: tr.st.Since.UnixMilli(),
			})
		}
		e.active.WithLabelValues(th.Id, th.Tenant).Set(g)
	}
	sort.Slice(alerts, func(i, j int) bool { return alerts[i].ThresholdId < alerts[j].ThresholdId })
	e.alerts = alerts
}

// emit announces an event: on the leader a log line, the counter and the
// webhook; elsewhere a debug line only.
func (e *Evaluator) emit(leader bool, th *fsmpb.Threshold, ev Event, value float64, reason string, now time.Time) {
	attrs := []any{"threshold_id", th.Id, "tenant", th.Tenant, "metric", th.Metric, "direction", th.Direction,
		"threshold", th.Value, "clear_value", th.ClearValue, "value", value}
	if reason != "" {
		attrs = append(attrs, "reason", reason)
	}
	if !leader {
		e.log.Debug("port alert "+ev.String()+" (not leader: not notified)", attrs...)
		return
	}
	if ev == Raised {
		e.log.Warn("port alert raised", attrs...)
	} else {
		e.log.Info("port alert cleared", attrs...)
	}
	e.total.WithLabelValues(th.Id, th.Tenant, ev.String()).Inc()
	if th.WebhookUrl != "" {
		e.wh.enqueue(th.WebhookUrl, Notification{
			Event:       ev.String(),
			ThresholdID: th.Id,
			Tenant:      th.Tenant,
			Metric:      th.Metric,
			Direction:   th.Direction,
			Threshold:   th.Value,
			ClearValue:  th.ClearValue,
			Value:       value,
			Reason:      reason,
			Time:        now.UTC(),
			TimeUnixMs:  now.UnixMilli(),
			NodeID:      e.opts.NodeID,
		})
	}
}

// HTTPClient is the client webhooks use (tests may replace it).
type HTTPClient interface {
	Do(*http.Request) (*http.Response, error)
}
