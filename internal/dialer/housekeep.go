package dialer

import (
	"context"
	"slices"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// housekeep refreshes settings and port figures, fetches, expires and
// cleans up, every Housekeeping period or when a queue runs low.
func (e *Engine) housekeep(ctx context.Context) {
	t := time.NewTicker(e.opts.Housekeeping)
	defer t.Stop()
	var lastExpire time.Time
	lastClean := map[string]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.fetchCh:
		}
		now := e.clock.Now()
		e.refresh(now)
		e.fetch(ctx, now)
		if now.Sub(lastExpire) >= 250*time.Millisecond {
			lastExpire = now
			e.expire(ctx, now)
		}
		e.cleanup(ctx, now, lastClean)
		e.countWaiting(now)
		e.signal()
	}
}

// refresh loads every active tenant's settings and port figures. Tenants
// with nothing to do are dropped.
func (e *Engine) refresh(now time.Time) {
	global, _ := e.opts.Store.Pacing("")
	names := e.opts.Store.Tenants(fsmpb.State_PENDING)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gCAPS = pacing.GlobalCAPS(global)
	e.global.setRate(e.gCAPS)
	e.gwire.setRate(e.gCAPS)
	for _, n := range names {
		if e.tenants[n] == nil {
			e.tenants[n] = newTenant(n)
		}
	}
	for n, t := range e.tenants {
		tp, _ := e.opts.Store.Pacing(n)
		t.settings = pacing.Resolve(global, tp)
		t.pacer.setRate(t.settings.CAPS)
		t.wire.setRate(t.settings.CAPS)
		t.ports = e.opts.Ports.TenantPorts(n)
		t.budget.lingering = e.lingeringLocked(n, now) + e.adopted[n]
		e.view.refresh(t, now)
		achieved := t.rate(now) // also trims the attempt log
		if t.idle() && !slices.Contains(names, n) {
			delete(e.tenants, n)
			e.m.dropTenant(n)
			continue
		}
		e.m.tenantGauges(t, e.opts.ReportMargin, achieved, e.limitedByLocked(t))
	}
}
