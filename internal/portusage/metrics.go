package portusage

import "github.com/prometheus/client_golang/prometheus"

// Metrics count reports and export per-tenant gauges computed from the
// cache at scrape time.
type Metrics struct {
	reports *prometheus.CounterVec
	cache   *Cache

	total, inUse, available, servers, stale *prometheus.Desc
}

// Report events counted by dialtone_port_usage_reports_total.
const (
	EventIngested       = "ingested"    // accepted from a publisher on this node
	EventRelayedIn      = "relayed_in"  // accepted from a peer
	EventRelayedOut     = "relayed_out" // queued for the peers
	EventDuplicate      = "dropped_duplicate"
	EventTooOld         = "dropped_too_old"
	EventInvalid        = "dropped_invalid" // refused by validation
	EventMalformedRelay = "dropped_malformed_relay"
)

// NewMetrics registers the port-usage metrics for cache on reg.
func NewMetrics(reg prometheus.Registerer, cache *Cache) *Metrics {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("dialtone_port_usage_"+name, help, []string{"tenant"}, nil)
	}
	m := &Metrics{
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialtone_port_usage_reports_total",
			Help: "Port-usage reports by event: ingested, relayed_in, relayed_out, dropped_*.",
		}, []string{"event"}),
		cache:     cache,
		total:     d("total_ports", "Total ports of the tenant's fresh media servers."),
		inUse:     d("in_use_ports", "Ports in use on the tenant's fresh media servers."),
		available: d("available_ports", "Available ports (total - in use) on the tenant's fresh media servers."),
		servers:   d("servers", "Fresh (reporting) media servers of the tenant."),
		stale:     d("stale_servers", "Stale (silent) media servers of the tenant, still listed."),
	}
	for _, e := range []string{EventIngested, EventRelayedIn, EventRelayedOut, EventDuplicate, EventTooOld, EventInvalid, EventMalformedRelay} {
		m.reports.WithLabelValues(e)
	}
	reg.MustRegister(m.reports, m)
	return m
}

// Count adds n to an event counter. A nil Metrics is a no-op.
func (m *Metrics) Count(event string, n int) {
	if m == nil {
		return
	}
	m.reports.WithLabelValues(event).Add(float64(n))
}

// CountResult counts an ingest result (local or relayed).
func (m *Metrics) CountResult(r Result, relayed bool) {
	switch {
	case r == Accepted && relayed:
		m.Count(EventRelayedIn, 1)
	case r == Accepted:
		m.Count(EventIngested, 1)
	case r == Duplicate:
		m.Count(EventDuplicate, 1)
	default:
		m.Count(EventTooOld, 1)
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.total, m.inUse, m.available, m.servers, m.stale} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	_, tenants := m.cache.Usage(nil)
	for _, t := range tenants {
		g := func(d *prometheus.Desc, v uint32) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), t.Tenant)
		}
		g(m.total, t.Total)
		g(m.inUse, t.InUse)
		g(m.available, t.Available())
		g(m.servers, t.Servers)
		g(m.stale, t.StaleServers)
	}
}
