package dialer

import (
	"maps"
	"sync"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Why a PENDING request is not being dialled. Requests a contact rule
// deferred carry their own reason (Request.wait_reason, e.g.
// window.WaitOutside); the others are classified from the tenant's state.
const (
	// WaitRetry: not due yet (waiting for its next retry).
	WaitRetry = "retry_wait"
	// WaitNoBackend: this node places no calls.
	WaitNoBackend = "no_backend"
	// WaitNoPorts: no fresh port report for the tenant, or it has no
	// ports (no media server serves it).
	WaitNoPorts = "no_ports"
	// WaitPortsBusy: the tenant's port budget is full.
	WaitPortsBusy = "ports_busy"
	// WaitCAPS: the in-memory queues are full; they drain at the CAPS.
	WaitCAPS = "caps_limit"
	// WaitFetching: due, and about to be fetched (the queues are low).
	WaitFetching = "fetching"
)

// waitingEvery is how often the waiting requests are counted; waitingScan
// bounds the records read per IVR profile (beyond it the rest are counted
// with the last reason seen: the queue is in next-retry order).
const (
	waitingEvery = time.Second
	waitingScan  = 10_000
)

// waiting holds the last count of waiting requests by tenant and reason.
type waiting struct {
	last time.Time // owned by the housekeeping goroutine

	mu       sync.Mutex
	byTenant map[string]map[string]int
}

// countWaiting recounts the PENDING requests of every active tenant by
// reason (at most every waitingEvery) and publishes them to Stats and the
// dialtone_dialer_waiting gauge.
func (e *Engine) countWaiting(now time.Time) {
	if now.Sub(e.wait.last) < waitingEvery {
		return
	}
	e.wait.last = now
	// The tenant-state reason of a due request, under e.mu; the scan runs
	// without it.
	dueReason := map[string]string{}
	e.mu.Lock()
	for name, t := range e.tenants {
		dueReason[name] = e.dueReasonLocked(t)
	}
	e.mu.Unlock()

	nowMs := now.UnixMilli()
	counts := make(map[string]map[string]int, len(dueReason))
	for name, due := range dueReason {
		c := map[string]int{}
		for profile, n := range e.opts.Store.Profiles(name, fsmpb.State_PENDING) {
			// The queue's keys; a record is read only for its wait reason.
			keys := e.opts.Store.DueKeys(name, profile, fsmpb.State_PENDING, min(n, waitingScan))
			reason := due
			for _, q := range keys {
				reason = due
				if q.NextRetryUnixMs > nowMs {
					reason = WaitRetry
					if r, ok := e.opts.Store.Get(q.ID); ok && r.WaitReason != "" {
						reason = r.WaitReason
					}
				}
				c[reason]++
			}
			if rest := n - len(keys); rest > 0 {
				c[reason] += rest
			}
		}
		counts[name] = c
	}

	e.wait.mu.Lock()
	old := e.wait.byTenant
	e.wait.byTenant = counts
	e.wait.mu.Unlock()
	for name, c := range counts {
		for reason, n := range c {
			e.m.Waiting.WithLabelValues(name, reason).Set(float64(n))
		}
		for reason := range old[name] {
			if _, ok := c[reason]; !ok {
				e.m.Waiting.DeleteLabelValues(name, reason)
			}
		}
	}
	for name, c := range old {
		if _, ok := counts[name]; !ok {
			for reason := range c {
				e.m.Waiting.DeleteLabelValues(name, reason)
			}
		}
	}
}

// dueReasonLocked says why t's due PENDING requests are not being dialled
// now. Called with e.mu held.
func (e *Engine) dueReasonLocked(t *tenant) string {
	if e.opts.Backend == nil {
		return WaitNoBackend
	}
	if !t.ports.OK || t.ports.Total == 0 {
		return WaitNoPorts
	}
	limit, own, _, _ := t.budget.limit(t.settings.BatchMode, t.settings.PortLoadFactor, t.ports, e.opts.ReportMargin)
	if own >= limit {
		return WaitPortsBusy
	}
	if t.lowOnWork() {
		return WaitFetching
	}
	return WaitCAPS
}

// waitingOf is the last count of tenant's waiting requests by reason.
func (e *Engine) waitingOf(tenant string) map[string]int {
	e.wait.mu.Lock()
	defer e.wait.mu.Unlock()
	return maps.Clone(e.wait.byTenant[tenant])
}
