package dialer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus metrics. They outlive a term of
// leadership: a node builds them once and hands them to its engine.
type Metrics struct {
	Running       prometheus.Gauge
	QueueDepth    *prometheus.GaugeVec
	InProgress    *prometheus.GaugeVec
	PortBudget    *prometheus.GaugeVec
	CAPSTarget    *prometheus.GaugeVec
	CAPSAchieved  *prometheus.GaugeVec
	Limited       *prometheus.GaugeVec
	Attempts      *prometheus.CounterVec
	Outcomes      *prometheus.CounterVec
	Refused       *prometheus.CounterVec
	Notifications *prometheus.CounterVec
	Fetches       prometheus.Counter
	Reconciled    prometheus.Counter
	Revoked       prometheus.Counter
	Fenced        prometheus.Counter
	Purged        prometheus.Counter
	StartBatch    prometheus.Histogram
	Waiting       *prometheus.GaugeVec
	Deferred      *prometheus.CounterVec
	Ended         *prometheus.CounterVec
	Adopted       prometheus.Counter
	DialogBatch   prometheus.Histogram
	SendDelay     prometheus.Histogram
}

// NewMetrics builds the metrics and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dialtone_dialer_running", Help: "1 while this node's dialer engine runs (it leads)."}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dialtone_dialer_queue_depth",
			Help: "Requests fetched into the in-memory queues."}, []string{"tenant"}),
		InProgress: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dialtone_dialer_calls_in_progress",
			Help: "Calls this engine has in progress or armed."}, []string{"tenant"}),
		PortBudget: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dialtone_dialer_port_budget",
			Help: "The most calls the engine may have in progress: floor(ports x PortLoadFactor/100)."}, []string{"tenant"}),
		CAPSAchieved: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dialtone_dialer_caps_achieved",
			Help: "Call attempts sent per second over the last 10 s."}, []string{"tenant"}),
		Limited: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dialtone_dialer_limited",
			Help: "1 for what holds the tenant below its CAPS now (fenced, sending, commit, ports, no-work)."}, []string{"tenant", "reason"}),
		CAPSTarget: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dialtone_dialer_caps_target",
			Help: "Configured call attempts per second."}, []string{"tenant"}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dialtone_dialer_attempts_total",
			Help: "Call attempts placed."}, []string{"tenant"}),
		Outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dialtone_dialer_outcomes_total",
			Help: "Attempt outcomes committed, by class, and requests that expired waiting (TTL_EXPIRED)."}, []string{"tenant", "outcome"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dialtone_dialer_refused_total",
			Help: "Calls the media platform refused because it was full (oversubscription)."}, []string{"tenant"}),
		Notifications: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dialtone_dialer_notifications_total",
			Help: "Result notification deliveries, by result (delivered, failed: retried)."}, []string{"tenant", "result"}),
		Fetches:    prometheus.NewCounter(prometheus.CounterOpts{Name: "dialtone_dialer_fetches_total", Help: "Batch fetches committed (one Raft entry each)."}),
		Reconciled: prometheus.NewCounter(prometheus.CounterOpts{Name: "dialtone_dialer_reconciled_total", Help: "Requests a new leader took back from its predecessor (requeued or interrupted)."}),
		Fenced:     prometheus.NewCounter(prometheus.CounterOpts{Name: "dialtone_dialer_fenced_total", Help: "Attempts not sent because this node's leader lease was not fresh at the send (deposed or cut off)."}),
		Revoked:    prometheus.NewCounter(prometheus.CounterOpts{Name: "dialtone_dialer_revoked_total", Help: "Calls of a previous leader that the new leader revoked on the media platform before retrying them."}),
		Purged:     prometheus.NewCounter(prometheus.CounterOpts{Name: "dialtone_dialer_purged_total", Help: "Finished requests purged by cleanup."}),
		StartBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "dialtone_dialer_start_batch_size",
			Help: "Attempt starts per Raft entry (group commit).", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		Waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dialtone_dialer_waiting",
			Help: "PENDING requests not being dialled, by reason (retry_wait, outside_window, no_ports, ports_busy, caps_limit, no_backend); recomputed every second."}, []string{"tenant", "reason"}),
		Deferred: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dialtone_dialer_deferred_total",
			Help: "Requests whose next eligible time a contact rule moved, by reason (outside_window)."}, []string{"tenant", "reason"}),
		Ended: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dialtone_dialer_rule_ended_total",
			Help: "Requests a contact rule ended FAILURE without an attempt, by result reason."}, []string{"tenant", "reason"}),
		Adopted: prometheus.NewCounter(prometheus.CounterOpts{Name: "dialtone_dialer_adopted_total", Help: "Calls a new leader adopted from its predecessor (replicated dialogs) instead of interrupting them."}),
		DialogBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "dialtone_dialer_dialog_batch_size",
			Help: "Dialog state updates per Raft entry (group commit).", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		SendDelay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "dialtone_dialer_send_delay_seconds",
			Help:    "From an attempt's wire slot (its gate) to the backend's write returning. The pacer counts a send in its windows until then, so at high CAPS this delay lowers the rate it can keep.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 10)}),
	}
	if reg != nil {
		reg.MustRegister(m.Running, m.QueueDepth, m.InProgress, m.PortBudget, m.CAPSTarget, m.CAPSAchieved, m.Limited, m.Attempts, m.Outcomes,
			m.Refused, m.Notifications, m.Fetches, m.Reconciled, m.Revoked, m.Fenced, m.Purged, m.StartBatch, m.Waiting, m.Deferred, m.Ended, m.Adopted, m.DialogBatch, m.SendDelay)
	}
	return m
}

func (m *Metrics) tenantGauges(t *tenant, margin time.Duration, achieved float64, limitedBy string) {
	m.CAPSAchieved.WithLabelValues(t.name).Set(achieved)
	m.Limited.DeletePartialMatch(prometheus.Labels{"tenant": t.name})
	if limitedBy != "" {
		m.Limited.WithLabelValues(t.name, limitedBy).Set(1)
	}
	limit, own, _, _ := t.budget.limit(t.settings.BatchMode, t.settings.PortLoadFactor, t.ports, margin)
	m.Running.Set(1)
	m.QueueDepth.WithLabelValues(t.name).Set(float64(t.queued()))
	m.InProgress.WithLabelValues(t.name).Set(float64(own))
	m.PortBudget.WithLabelValues(t.name).Set(float64(limit))
	m.CAPSTarget.WithLabelValues(t.name).Set(t.settings.CAPS)
}

func (m *Metrics) dropTenant(name string) {
	m.QueueDepth.DeleteLabelValues(name)
	m.InProgress.DeleteLabelValues(name)
	m.PortBudget.DeleteLabelValues(name)
	m.CAPSTarget.DeleteLabelValues(name)
	m.CAPSAchieved.DeleteLabelValues(name)
	m.Limited.DeletePartialMatch(prometheus.Labels{"tenant": name})
	m.Waiting.DeletePartialMatch(prometheus.Labels{"tenant": name})
}

func (m *Metrics) outcome(tenant, class string) { m.Outcomes.WithLabelValues(tenant, class).Inc() }

// reset clears the per-tenant gauges when the engine stops (a follower has
// no queues or calls).
func (m *Metrics) reset() {
	m.Running.Set(0)
	m.QueueDepth.Reset()
	m.InProgress.Reset()
	m.PortBudget.Reset()
	m.CAPSTarget.Reset()
	m.CAPSAchieved.Reset()
	m.Limited.Reset()
	m.Waiting.Reset()
}
