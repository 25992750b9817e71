package alerting

import "github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"

// Settings is the replicated configuration the evaluator reads (the FSM).
type Settings interface {
	Thresholds() []*fsmpb.Threshold
	Entitlement(tenant string) (uint32, bool)
	Entitlements() []*fsmpb.Entitlement
}

// Usage is the live port usage the evaluator reads (the port-usage cache).
// Figures are the current aggregates over servers that are not stale; ok
// is false when there is no current data (no server reporting, or every
// server stale).
type Usage interface {
	// Deployment is the aggregate over every tenant.
	Deployment() (total, inUse uint32, ok bool)
	// Tenant is the aggregate over one tenant's servers.
	Tenant(tenant string) (total, inUse uint32, ok bool)
}

// NoUsage is a Usage with no data: every threshold stays unevaluated.
type NoUsage struct{}

func (NoUsage) Deployment() (uint32, uint32, bool)   { return 0, 0, false }
func (NoUsage) Tenant(string) (uint32, uint32, bool) { return 0, 0, false }

// Reasons a metric cannot be computed.
const (
	MissingUsage       = "no current port-usage data (no server reporting, or all stale)"
	MissingEntitlement = "no entitlement set, so in_use_percent_of_entitlement cannot be computed"
	MissingPorts       = "no ports reported (total 0), so in_use_percent_of_total cannot be computed"
	MissingMetric      = "unknown metric"
)

// Measure computes a threshold's metric. A threshold with tenant "" reads
// the deployment aggregate and, for in_use_percent_of_entitlement, the sum
// of all entitlements.
func Measure(th *fsmpb.Threshold, set Settings, use Usage) Reading {
	var (
		total, inUse uint32
		ok           bool
	)
	if th.Tenant == "" {
		total, inUse, ok = use.Deployment()
	} else {
		total, inUse, ok = use.Tenant(th.Tenant)
	}
	if !ok {
		return Reading{Missing: MissingUsage}
	}
	switch th.Metric {
	case MetricInUsePercentOfEntitlement:
		var ent uint64
		if th.Tenant == "" {
			for _, e := range set.Entitlements() {
				ent += uint64(e.LicensedPorts)
			}
		} else if n, found := set.Entitlement(th.Tenant); found {
			ent = uint64(n)
		}
		if ent == 0 {
			return Reading{Missing: MissingEntitlement}
		}
		return Reading{Value: 100 * float64(inUse) / float64(ent), OK: true}
	case MetricInUsePercentOfTotal:
		if total == 0 {
			return Reading{Missing: MissingPorts}
		}
		return Reading{Value: 100 * float64(inUse) / float64(total), OK: true}
	case MetricAvailablePorts:
		if inUse >= total {
			return Reading{Value: 0, OK: true}
		}
		return Reading{Value: float64(total - inUse), OK: true}
	}
	return Reading{Missing: MissingMetric}
}
