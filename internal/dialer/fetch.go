package dialer

import (
	"context"
	"slices"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// fetch takes due requests into the in-memory queues of every tenant
// whose queues fell below the low watermark. Nothing is committed here:
// the requests stay PENDING, and each is claimed and started by one
// update when its attempt is armed (BatchStartAttempts, commitStarts), so
// an attempt costs one record update less than a claim at fetch time
// followed by a start. The tenant's held set keeps a request from being
// fetched twice while it is queued or armed.
func (e *Engine) fetch(ctx context.Context, now time.Time) {
	for _, w := range e.fetchWants(now) {
		due := e.pickDue(w, now)
		if len(due) == 0 {
			// Every due request is held already (or none is due): the
			// next scan would read the same ones, so wait a little.
			e.mu.Lock()
			w.t.emptyFetch = now
			e.mu.Unlock()
			continue
		}
		picked := e.screen(ctx, due, now)
		if len(picked) == 0 {
			continue
		}
		e.m.Fetches.Inc()
		e.mu.Lock()
		for _, r := range picked {
			if _, dup := w.t.held[r.Id]; !dup {
				w.t.held[r.Id] = struct{}{}
				w.t.enqueue(&item{t: w.t, req: r})
			}
		}
		e.mu.Unlock()
	}
}

// emptyFetchPause is how long a tenant whose last fetch found nothing new
// (every due request already held, or none due) is not fetched again: the
// scan reads past every held request, so repeating it at every wake-up of
// the housekeeping loop cost O(queued) each time for nothing.
const emptyFetchPause = 100 * time.Millisecond

// fetchWant is what one tenant's fetch asks for: how many requests of
// each IVR profile.
type fetchWant struct {
	t      *tenant
	shares map[string]int
	equal  bool // equal_priority_new_and_old
	held   int  // requests of t held when asked: the scan reads past them
}

// fetchWants prunes the queues and returns the tenants that are low on
// work, with the shares of their profiles in the batch they need. The
// store is read outside the engine's lock where it can be: the send gate
// takes that lock for every call, and a prune or a copy of the held set
// under it (milliseconds with thousands queued) showed at the far end as
// calls sent in clumps.
func (e *Engine) fetchWants(now time.Time) []fetchWant {
	var prune []*tenant
	e.mu.Lock()
	for _, t := range e.tenants {
		// Pruning reads every queued request; at thousands of CAPS the
		// fetch runs far more often than cancels need noticing (a start of
		// a request that no longer waits is refused by the state machine
		// anyway).
		if now.Sub(t.pruned) >= 250*time.Millisecond {
			t.pruned = now
			prune = append(prune, t)
		}
	}
	e.mu.Unlock()
	for _, t := range prune {
		e.prune(t)
	}
	var wants []fetchWant
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.tenants {
		size := t.batchSize()
		if size <= 0 || !t.lowOnWork() {
			continue
		}
		need := size - t.queued()
		if need <= 0 || now.Sub(t.emptyFetch) < emptyFetchPause {
			continue
		}
		// The held requests are PENDING too: with no others there is
		// nothing to fetch, and the scan (which reads past the held
		// ones) is skipped.
		pending := e.opts.Store.Profiles(t.name, fsmpb.State_PENDING)
		total := 0
		for _, n := range pending {
			total += n
		}
		if total <= len(t.held) {
			continue
		}
		wants = append(wants, fetchWant{t: t, shares: allocate(need, pending, t.settings.Slots),
			equal: t.settings.EqualNewAndOld, held: len(t.held)})
	}
	return wants
}

// pickDue picks the requests w asks for: per profile (in name order) the due
// ones not already held, in queue order, new and retries alternating when
// w.equal. The held requests are still PENDING and come first in the
// queue order, so the scan reads past them. The store is scanned outside
// the engine's lock; the held set is read under it once per profile.
func (e *Engine) pickDue(w fetchWant, now time.Time) []*fsmpb.Request {
	var picked []*fsmpb.Request
	profiles := make([]string, 0, len(w.shares))
	for p := range w.shares {
		profiles = append(profiles, p)
	}
	slices.Sort(profiles)
	nowMs := now.UnixMilli()
	for _, p := range profiles {
		n := w.shares[p]
		limit := n
		if w.equal {
			limit = n * 4 // room to find both kinds
		}
		// The queue's keys, not the records: the scan reads past the held
		// ones, and a record still as created is decoded on every read.
		var scanned []fsm.Queued
		for _, q := range e.opts.Store.DueKeys(w.t.name, p, fsmpb.State_PENDING, limit+w.held) {
			if q.NextRetryUnixMs > nowMs {
				break // the rest is later still
			}
			scanned = append(scanned, q)
		}
		var due []fsm.Queued
		e.mu.Lock()
		for _, q := range scanned {
			if len(due) == limit {
				break
			}
			if _, held := w.t.held[q.ID]; !held && q.ExpiresUnixMs > nowMs {
				due = append(due, q)
			}
		}
		e.mu.Unlock()
		for _, q := range pick(due, n, w.equal) {
			// Read after the scan: skip one that changed since and is no
			// longer due (its claim would fail, or it was deferred).
			if r, ok := e.opts.Store.Get(q.ID); ok && r.State == fsmpb.State_PENDING &&
				r.NextRetryUnixMs <= nowMs && r.ExpiresUnixMs > nowMs {
				picked = append(picked, r)
			}
		}
	}
	return picked
}

func (t *tenant) enqueue(it *item) {
	p := it.req.IvrProfile
	if _, ok := t.queues[p]; !ok {
		t.order = append(t.order, p)
	}
	t.queues[p] = append(t.queues[p], it)
}

// prune drops t's queued requests that no longer wait (cancelled or
// expired since they were fetched). The store is read outside the
// engine's lock; a request taken from the queue meanwhile is armed
// already, and the state machine refuses its start.
func (e *Engine) prune(t *tenant) {
	e.mu.Lock()
	var queued []*item
	for _, q := range t.queues {
		queued = append(queued, q...)
	}
	e.mu.Unlock()
	gone := map[*item]struct{}{}
	for _, it := range queued {
		if st, ok := e.opts.Store.StateOf(it.req.Id); !ok || (st != fsmpb.State_PENDING && st != fsmpb.State_INITIATED) {
			gone[it] = struct{}{}
		}
	}
	if len(gone) == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for p, q := range t.queues {
		kept := q[:0]
		for _, it := range q {
			if _, g := gone[it]; g {
				delete(t.held, it.req.Id)
				continue
			}
			kept = append(kept, it)
		}
		clear(q[len(kept):])
		t.queues[p] = kept
	}
}

// next pops the next queued request, round robin over the profiles.
func (t *tenant) next() *item {
	for range t.order {
		p := t.order[t.rr%len(t.order)]
		t.rr++
		if q := t.queues[p]; len(q) > 0 {
			it := q[0]
			q[0] = nil
			t.queues[p] = q[1:]
			return it
		}
	}
	return nil
}
