package dialer

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// reconcile returns what a previous leader left to the pool: fetched
// requests (INITIATED) go back to PENDING; attempts in progress, whose
// outcome nobody will learn, are ended as interrupted (not counted) and
// retried after InterruptedRetryDelay. It retries until it succeeds or ctx
// ends, and reports whether it succeeded.
func (e *Engine) reconcile(ctx context.Context) bool {
	for {
		err := e.reconcileOnce(ctx)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		e.log.Warn("reconcile failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (e *Engine) reconcileOnce(ctx context.Context) error {
	requeued, interrupted, adopted := 0, 0, 0
	for _, tn := range e.opts.Store.Tenants(fsmpb.State_INITIATED) {
		for {
			recs := e.opts.Store.InState(tn, fsmpb.State_INITIATED, "", maxEntryItems)
			if len(recs) == 0 {
				break
			}
			if err := propose(ctx, e.opts.Apply, recs, byRequestID(fsm.RequeueCommand), nil); err != nil {
				return fmt.Errorf("requeue: %w", err)
			}
			requeued += len(recs)
		}
	}
	for _, tn := range e.opts.Store.Tenants(fsmpb.State_IN_PROGRESS) {
		after := ""
		for {
			recs := e.opts.Store.InState(tn, fsmpb.State_IN_PROGRESS, after, maxEntryItems)
			if len(recs) == 0 {
				break
			}
			after = recs[len(recs)-1].Id
			// Calls with replicated dialogs are adopted, not interrupted:
			// they stay IN_PROGRESS until they end.
			recs = slices.DeleteFunc(recs, func(r *fsmpb.Request) bool {
				if e.adopting[r.Id] {
					return true
				}
				d := e.adoptable(r)
				if d == nil {
					return false
				}
				e.adopting[r.Id] = true
				adopted++
				e.calls.Add(1)
				go e.adopt(ctx, r, d)
				return true
			})
			if len(recs) == 0 {
				continue
			}
			ended := e.revoke(ctx, recs)
			now := e.clock.Now()
			cmd := func(recs []*fsmpb.Request) *fsmpb.Command { return e.interruptCommand(recs, ended, now) }
			if err := propose(ctx, e.opts.Apply, recs, cmd, nil); err != nil {
				return fmt.Errorf("interrupt: %w", err)
			}
			interrupted += len(recs)
		}
	}
	if requeued+interrupted+adopted > 0 {
		e.log.Info("reconciled the previous leader's work", "requeued", requeued, "interrupted", interrupted, "adopted", adopted)
	}
	e.m.Reconciled.Add(float64(requeued + interrupted))
	return nil
}

// interruptCommand ends the attempts of recs, left in progress by a
// previous leader, as interrupted, and holds back the retry of those that
// may still be up at the far end (the half-open rule, halfOpenUntil).
// ended holds the requests whose call the platform confirmed ended.
func (e *Engine) interruptCommand(recs []*fsmpb.Request, ended map[string]bool, now time.Time) *fsmpb.Command {
	rs := make([]*fsmpb.AttemptResult, len(recs))
	for i, r := range recs {
		next := e.retry.nextRetry(r, fsmpb.OutcomeClass_OUTCOME_INTERRUPTED, now)
		if !ended[r.Id] {
			if until, ok := e.halfOpenUntil(r, now); ok {
				e.mu.Lock()
				e.linger[r.Tenant] = append(e.linger[r.Tenant], until)
				e.mu.Unlock()
				if exp := time.UnixMilli(r.ExpiresUnixMs); until.After(exp) {
					until = exp // it expires instead; the expiry ends it
				}
				if until.After(next) {
					next = until
				}
			}
		}
		rs[i] = &fsmpb.AttemptResult{
			Id: r.Id, CallUuid: r.LastCallUuid,
			Outcome:         fsmpb.OutcomeClass_OUTCOME_INTERRUPTED,
			Reason:          "Interrupted",
			NextRetryUnixMs: next.UnixMilli(),
		}
	}
	return fsm.RecordResultsCommand(rs)
}

// halfOpenUntil is the rule against half-open re-dials: an attempt a
// previous leader left in progress (it recorded no end) may have been sent
// up to sendDeadline after its committed start, and may stay up at the far
// end for HalfOpenHold after that with nobody to end it (an INVITE still
// ringing, a 200 OK never acknowledged). Unless the platform confirmed it
// ended (a revoke), its request is not re-dialled before start +
// sendDeadline + HalfOpenHold, and it counts in the port budget until
// then. ok is false when the rule does not hold it back (HalfOpenHold 0,
// or that time has passed).
func (e *Engine) halfOpenUntil(r *fsmpb.Request, now time.Time) (time.Time, bool) {
	if e.opts.HalfOpenHold <= 0 || len(r.Attempts) == 0 {
		return time.Time{}, false
	}
	last := r.Attempts[len(r.Attempts)-1]
	if last.EndedUnixMs != 0 || last.CallUuid != r.LastCallUuid {
		return time.Time{}, false
	}
	until := time.UnixMilli(last.StartedUnixMs).Add(sendDeadline + e.opts.HalfOpenHold)
	return until, until.After(now)
}

// lingeringLocked counts tenant's half-open attempts whose hold has not
// ended, dropping the others. Called with e.mu held.
func (e *Engine) lingeringLocked(tenant string, now time.Time) int {
	l := slices.DeleteFunc(e.linger[tenant], func(t time.Time) bool { return !t.After(now) })
	if len(l) == 0 {
		delete(e.linger, tenant)
		return 0
	}
	e.linger[tenant] = l
	return len(l)
}

// revokeTimeout bounds how long reconcile waits for the media platform to
// end a predecessor's calls.
const revokeTimeout = 5 * time.Second

// revoke asks the backend, when it can (telephony.Revoker), to end the
// calls of recs that a previous leader left in progress, before they are
// returned to the pool: a predecessor that was paused or cut off rather
// than killed may still have them up, and a retry would then be a second
// concurrent call, or a cancel would be acknowledged while a call is up.
// A revoke that fails (platform unreachable) is logged; the request is
// then retried after InterruptedRetryDelay as before.
func (e *Engine) revoke(ctx context.Context, recs []*fsmpb.Request) (ended map[string]bool) {
	ended = map[string]bool{}
	rv, ok := e.opts.Backend.(telephony.Revoker)
	if !ok || len(recs) == 0 {
		return ended
	}
	var mu sync.Mutex
	ctx, cancel := context.WithTimeout(ctx, revokeTimeout)
	defer cancel()
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, r := range recs {
		if r.LastCallUuid == "" {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := rv.Revoke(ctx, r.Tenant, r.LastCallUuid); err != nil {
				e.log.Warn("could not revoke a previous leader's call", "request", r.Id, "call_uuid", r.LastCallUuid, "err", err)
				return
			}
			e.m.Revoked.Inc()
			mu.Lock()
			ended[r.Id] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	return ended
}
