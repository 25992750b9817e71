package dialer

import (
	"cmp"
	"slices"
)

// Stats is a point-in-time view of the engine, for `dialtone status`, the
// admin API and tests. Only the leader's engine runs; elsewhere Running is
// false and Tenants is empty.
type Stats struct {
	Running bool
	// Global CAPS limit in force (0: none).
	GlobalCAPS float64
	Tenants    []TenantStats // sorted by tenant
}

// TenantStats is one tenant's part of Stats.
type TenantStats struct {
	Tenant string
	// Requests in the in-memory queues (fetched, still PENDING), in total and per IVR
	// profile.
	Queued        int
	QueuedProfile map[string]int
	// Calls this engine has in progress, and the most it may have now
	// (floor(ports × PortLoadFactor/100) per the batch-size mode).
	InProgress int
	PortBudget int
	// The port figures the budget is computed from (fresh servers only).
	PortsTotal uint32
	PortsInUse uint32
	// Effective CAPS and the attempts started over the last 10 seconds, per
	// second.
	CAPS           float64
	AttemptsPerSec float64
	// LimitedBy says what holds the tenant below its CAPS now ("" when
	// nothing does; see limitedBy).
	LimitedBy string
	// Attempts ended, by outcome class name (fsmpb.OutcomeClass).
	Outcomes map[string]uint64
	// Notifications waiting to be delivered, and retries so far.
	NotifyPending int
	NotifyRetries uint64
	// PENDING requests not being dialled, by reason (WaitRetry,
	// WaitNoPorts, window.WaitOutside, ...), counted every second.
	Waiting map[string]int
}

// What holds a tenant below its CAPS (TenantStats.LimitedBy and the
// dialtone_dialer_limited metric).
const (
	LimitedFenced  = "fenced"  // no fresh leader lease: nothing is sent
	LimitedSending = "sending" // the sends lag their slots: the machine cannot sustain the rate
	LimitedCommit  = "commit"  // attempt starts wait for Raft commits
	LimitedPorts   = "ports"   // the port budget is full
	LimitedWork    = "no-work" // nothing due in the queues
)

// limitedByLocked is the first of the reasons above that holds now, or ""
// (dialling at the pace, or no pace set). Called with e.mu held.
func (e *Engine) limitedByLocked(t *tenant) string {
	switch {
	case !e.leaseOK():
		return LimitedFenced
	case t.settings.CAPS > 0 && t.senders.len() > max(2, int(t.settings.CAPS/10)):
		// More than 100 ms of sends queued at the gate.
		return LimitedSending
	case len(t.ready) > 0 || t.senders.len() > 0:
		return ""
	case t.budget.armed > 0:
		return LimitedCommit
	case t.queued() > 0 && !e.view.canArm(t):
		return LimitedPorts
	case t.queued() == 0:
		return LimitedWork
	}
	return ""
}

// Stats returns the engine's current figures.
func (e *Engine) Stats() Stats {
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Stats{Running: e.running, GlobalCAPS: e.gCAPS}
	for _, t := range e.tenants {
		limit, own, _, _ := t.budget.limit(t.settings.BatchMode, t.settings.PortLoadFactor, t.ports, e.opts.ReportMargin)
		ts := TenantStats{
			Tenant: t.name, Queued: t.queued(), QueuedProfile: map[string]int{},
			InProgress: own, PortBudget: limit, PortsTotal: t.ports.Total, PortsInUse: t.ports.InUse,
			CAPS: t.settings.CAPS, AttemptsPerSec: t.rate(now), Outcomes: map[string]uint64{},
			LimitedBy: e.limitedByLocked(t),
		}
		for p, q := range t.queues {
			ts.QueuedProfile[p] = len(q)
		}
		for k, v := range t.outcomes {
			ts.Outcomes[k] = v
		}
		ts.Waiting = e.waitingOf(t.name)
		if e.notes != nil {
			ts.NotifyPending, ts.NotifyRetries = e.notes.stats(t.name)
		}
		st.Tenants = append(st.Tenants, ts)
	}
	slices.SortFunc(st.Tenants, func(a, b TenantStats) int { return cmp.Compare(a.Tenant, b.Tenant) })
	return st
}
