package dialer

import (
	"context"
	"fmt"
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
	requeued, interrupted := 0, 0
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
		for {
			recs := e.opts.Store.InState(tn, fsmpb.State_IN_PROGRESS, "", maxEntryItems)
			if len(recs) == 0 {
				break
			}
			e.revoke(ctx, recs)
			if err := propose(ctx, e.opts.Apply, recs, e.interruptCommand, nil); err != nil {
				return fmt.Errorf("interrupt: %w", err)
			}
			interrupted += len(recs)
		}
	}
	if requeued+interrupted > 0 {
		e.log.Info("reconciled the previous leader's work", "requeued", requeued, "interrupted", interrupted)
	}
	e.m.Reconciled.Add(float64(requeued + interrupted))
	return nil
}

// interruptCommand ends the attempts of recs, left in progress by a
// previous leader, as interrupted.
func (e *Engine) interruptCommand(recs []*fsmpb.Request) *fsmpb.Command {
	now := time.Now()
	rs := make([]*fsmpb.AttemptResult, len(recs))
	for i, r := range recs {
		rs[i] = &fsmpb.AttemptResult{
			Id: r.Id, CallUuid: r.LastCallUuid,
			Outcome:         fsmpb.OutcomeClass_OUTCOME_INTERRUPTED,
			Reason:          "Interrupted",
			NextRetryUnixMs: e.retry.nextRetry(r, fsmpb.OutcomeClass_OUTCOME_INTERRUPTED, now).UnixMilli(),
		}
	}
	return fsm.RecordResultsCommand(rs)
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
func (e *Engine) revoke(ctx context.Context, recs []*fsmpb.Request) {
	rv, ok := e.opts.Backend.(telephony.Revoker)
	if !ok || len(recs) == 0 {
		return
	}
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
		})
	}
	wg.Wait()
}
