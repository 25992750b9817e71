package dialer

import (
	"context"
	"math"
	"time"

	"github.com/google/uuid"
)

// lookahead is how many attempts of a tenant are armed (committed) ahead
// of their dial slots: enough for twice the recent time from arming to
// committed start at its CAPS, and at least 100 ms worth, so the commit
// latency never delays a dial. (With a fixed 100 ms, commits slower than
// that, e.g. fsync on a busy disk or a long FSM queue, capped the rate at
// lookahead/latency.)
func lookahead(caps float64, commit time.Duration) int {
	ahead := max(100*time.Millisecond, 2*commit)
	return int(min(max(math.Ceil(caps*ahead.Seconds()), 2), maxArmed))
}

// maxArmed bounds the attempts of a tenant armed ahead (several entries).
const maxArmed = 5 * maxEntryItems

// dispatch arms attempts within the port view and dials them at the
// paced rate, until ctx ends. Armed attempts go to the start batcher
// (commitStarts), which makes those that started ready; a ready attempt is
// dialled (call) when its tenant's pacer and the global pacer allow it.
func (e *Engine) dispatch(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		e.mu.Lock()
		arm := e.armLocked(now)
		dial, wait := e.dueLocked(now)
		e.mu.Unlock()
		e.starts.add(arm...)
		for _, it := range dial {
			e.calls.Add(1)
			go e.call(ctx, it)
		}
		timer.Reset(wait) // Go ≥1.23 timers: Reset discards a pending tick
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-timer.C:
		}
	}
}

// armLocked arms, per tenant, up to its lookahead of queued requests that
// its port view allows, and asks for a fetch when a tenant runs low. With
// no backend nothing is armed. Called with e.mu held.
func (e *Engine) armLocked(now time.Time) []*item {
	if e.opts.Backend == nil || !e.leaseOK() {
		return nil // leadership in doubt: commit no new starts
	}
	var arm []*item
	ahead := e.latency.get()
	for _, t := range e.tenants {
		// armed counts the attempts being committed and those ready.
		for t.budget.armed < lookahead(t.settings.CAPS, ahead) && e.view.canArm(t) {
			it := t.next()
			if it == nil {
				break
			}
			it.callUUID = uuid.Must(uuid.NewV7()).String()
			it.armed = now
			t.budget.armed++
			e.view.armed(t)
			arm = append(arm, it)
		}
		// A tenant without a batch (no ports known) gets nothing from a
		// fetch; waking the fetcher for it would spin housekeeping and
		// dispatch against each other.
		if t.lowOnWork() && t.batchSize() > 0 {
			e.wantFetch()
		}
	}
	return arm
}

// dueLocked takes every ready attempt whose slot has come, earliest first
// across the tenants, and returns them with how long to wait for the next
// slot (at most Housekeeping). Called with e.mu held.
func (e *Engine) dueLocked(now time.Time) (dial []*item, wait time.Duration) {
	wait = e.opts.Housekeeping
	for {
		var best *tenant
		var bestAt time.Time
		for _, t := range e.tenants {
			if len(t.ready) == 0 {
				continue
			}
			at := t.pacer.ready()
			if g := e.global.ready(); g.After(at) {
				at = g
			}
			if best == nil || at.Before(bestAt) {
				best, bestAt = t, at
			}
		}
		if best == nil {
			return dial, wait
		}
		if bestAt.After(now) {
			return dial, min(wait, bestAt.Sub(now))
		}
		it := best.ready[0]
		best.ready[0] = nil
		best.ready = best.ready[1:]
		best.pacer.take(now)
		e.global.take(now)
		best.budget.place(now)
		dial = append(dial, it)
	}
}
