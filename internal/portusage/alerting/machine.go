// Package alerting evaluates Dialtone's port-usage alert thresholds.
//
// Every node runs an Evaluator that, once a second, reads the replicated
// thresholds and entitlements (Settings, the FSM) and the live port usage
// (Usage, the port-usage cache), and moves each threshold's alert through
// a small hysteresis state machine (Step). Every node therefore holds the
// same alerts and answers ListAlerts; only the leader notifies (a webhook
// POST with bounded retries, a log line, the event counter), so a crossing
// is announced once, not once per node.
//
// Alert semantics (see docs/port-usage-settings.md):
//
//   - "above" raises when the metric is >= value and clears when it is
//     <= clear_value (clear_value < value); "below" raises when <= value
//     and clears when >= clear_value (clear_value > value). Between the
//     two nothing changes, so a metric flapping around value raises once.
//   - A metric that cannot be computed (no usage data, all servers stale,
//     no entitlement for in_use_percent_of_entitlement, no ports for
//     in_use_percent_of_total) neither raises nor clears: the alert keeps
//     its state until data comes back, and the evaluator logs once why it
//     cannot evaluate.
//   - Deleting a threshold, or changing its tenant, metric or direction,
//     clears an active alert (notified with a reason).
package alerting

import "time"

// Threshold directions and metrics (the values the API accepts).
const (
	Above = "above"
	Below = "below"

	MetricInUsePercentOfEntitlement = "in_use_percent_of_entitlement"
	MetricInUsePercentOfTotal       = "in_use_percent_of_total"
	MetricAvailablePorts            = "available_ports"
)

// Rule is what Step needs of a threshold.
type Rule struct {
	Direction  string // Above or Below
	Value      float64
	ClearValue float64
}

// Reading is one measurement of a threshold's metric. When OK is false the
// metric could not be computed and Missing says why.
type Reading struct {
	Value   float64
	OK      bool
	Missing string
}

// State is one threshold's alert state.
type State struct {
	Active bool
	// Since is when the alert was raised (zero when not active).
	Since time.Time
	// Value is the last measured value (kept while data is missing).
	Value float64
	// Measured says Value holds a measurement.
	Measured bool
}

// Event is what a Step did.
type Event int

const (
	None Event = iota
	Raised
	Cleared
)

func (e Event) String() string {
	switch e {
	case Raised:
		return "raised"
	case Cleared:
		return "cleared"
	}
	return "none"
}

// Step is the pure alert state machine: given the rule, the current state
// and a reading at now, it returns the next state and the event, if any.
// It raises once per crossing and clears only past ClearValue; a missing
// reading changes nothing.
func Step(r Rule, s State, in Reading, now time.Time) (State, Event) {
	if !in.OK {
		return s, None
	}
	s.Value, s.Measured = in.Value, true
	var crossed, recovered bool
	switch r.Direction {
	case Above:
		crossed, recovered = in.Value >= r.Value, in.Value <= r.ClearValue
	case Below:
		crossed, recovered = in.Value <= r.Value, in.Value >= r.ClearValue
	default:
		return s, None // unknown direction: never fires
	}
	switch {
	case !s.Active && crossed:
		s.Active, s.Since = true, now
		return s, Raised
	case s.Active && recovered:
		s.Active, s.Since = false, time.Time{}
		return s, Cleared
	}
	return s, None
}
