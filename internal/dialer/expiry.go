package dialer

import (
	"context"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// expire ends waiting requests whose TTL ran out.
func (e *Engine) expire(ctx context.Context, now time.Time) {
	for ctx.Err() == nil {
		recs := e.opts.Store.Expired(now.UnixMilli(), maxEntryItems)
		if len(recs) == 0 {
			return
		}
		done := 0
		err := propose(ctx, e.opts.Apply, recs, byRequestID(fsm.ExpireCommand), func(_, expired []*fsmpb.Request) {
			done += len(expired)
			for _, r := range expired {
				e.notes.add(r.Id)
				e.m.outcome(r.Tenant, "TTL_EXPIRED")
			}
		})
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("expire failed", "err", err)
			}
			return
		}
		if done < len(recs) {
			return // the rest is not expired by the leader's clock yet
		}
	}
}

// cleanup purges finished, notified records once per CleanInterval per
// tenant, after their retention.
func (e *Engine) cleanup(ctx context.Context, now time.Time, last map[string]time.Time) {
	for _, tn := range e.opts.Store.Tenants(fsmpb.State_PROCESSED) {
		tp, _ := e.opts.Store.Pacing(tn)
		global, _ := e.opts.Store.Pacing("")
		s := pacing.Resolve(global, tp)
		if l, ok := last[tn]; ok && now.Sub(l) < s.CleanInterval {
			continue
		}
		if _, ok := last[tn]; !ok {
			// The first cleanup of a term waits one interval, as a restarted
			// SSG would.
			last[tn] = now
			continue
		}
		last[tn] = now
		ids := e.purgeable(tn, now, s.Retention)
		err := propose(ctx, e.opts.Apply, ids, fsm.PurgeCommand, func(entry, _ []string) {
			e.m.Purged.Add(float64(len(entry)))
		})
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("cleanup failed", "tenant", tn, "err", err)
			}
			return
		}
		if len(ids) > 0 {
			e.log.Info("cleanup purged finished requests", "tenant", tn, "purged", len(ids))
		}
	}
}

// purgeable returns the ids of tenant's finished requests whose
// notification is done (delivered or not required) and whose last change
// is at least retention old.
func (e *Engine) purgeable(tenant string, now time.Time, retention time.Duration) []string {
	after := ""
	var ids []string
	for {
		recs := e.opts.Store.InState(tenant, fsmpb.State_PROCESSED, after, maxEntryItems)
		if len(recs) == 0 {
			return ids
		}
		after = recs[len(recs)-1].Id
		for _, r := range recs {
			if (r.NotifyState == fsmpb.NotifyState_NOTIFIED || r.NotifyState == fsmpb.NotifyState_NOTIFY_NOT_REQUIRED) &&
				now.Sub(time.UnixMilli(r.UpdatedUnixMs)) >= retention {
				ids = append(ids, r.Id)
			}
		}
	}
}
