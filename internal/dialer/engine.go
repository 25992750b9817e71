package dialer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// Store is the replicated state the engine reads (the FSM).
type Store interface {
	Get(id string) (*fsmpb.Request, bool)
	Tenants(state fsmpb.State) []string
	Profiles(tenant string, state fsmpb.State) map[string]int
	Due(tenant, ivrProfile string, state fsmpb.State, limit int) []*fsmpb.Request
	Expired(nowUnixMs int64, limit int) []*fsmpb.Request
	InState(tenant string, state fsmpb.State, after string, limit int) []*fsmpb.Request
	Pacing(tenant string) (*fsmpb.Pacing, bool)
}

// Applier commits commands on the leader, never forwarding
// (cluster.ApplyLeader).
type Applier interface {
	ApplyLeader(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, uint64, error)
}

// Ports reads a tenant's port figures (the port-usage cache).
type Ports interface {
	TenantPorts(tenant string) PortReport
}

// Sender delivers one result notification (notify.Sender).
type Sender interface {
	Send(ctx context.Context, r *fsmpb.Request) error
}

// Options configure an engine.
type Options struct {
	Store   Store
	Apply   Applier
	Ports   Ports
	Backend telephony.Backend // nil: no calls are placed
	Sender  Sender            // nil: notifications are not sent
	Metrics *Metrics          // nil: unregistered metrics
	Logger  *slog.Logger

	// InterruptedRetryDelay: the earliest retry of an attempt a previous
	// leader left in progress.
	InterruptedRetryDelay time.Duration
	// ReportMargin is the relay latency allowed for port reports (see
	// budget); default 100ms.
	ReportMargin time.Duration
	// NotifyMaxBackoff caps the delay between notification retries
	// (default 1 min); NotifyConcurrency bounds deliveries in flight
	// (default 64).
	NotifyMaxBackoff  time.Duration
	NotifyConcurrency int
	// Housekeeping is the period of the fetch, expiry and settings loop
	// (default 50ms).
	Housekeeping time.Duration
	// PortView is how the port budget sees the media platform:
	// PortViewLive (default) or PortViewSampled, the SSG-style baseline for
	// benchmarks (see sampledPorts). PortSampleInterval is the baseline's
	// sampling period (default 5s).
	PortView           string
	PortSampleInterval time.Duration
}

// The port views (Options.PortView).
const (
	PortViewLive    = "live"
	PortViewSampled = "sampled-5s"
)

// maxEntryItems bounds the items of one Raft entry the engine proposes.
const maxEntryItems = 1000

// Engine is the dialer: the leader-only loop that fetches due requests,
// paces attempts and records their outcomes, notifies trigger
// applications and cleans up. New builds it once per node; Run runs it for
// one term of leadership.
type Engine struct {
	opts  Options
	log   *slog.Logger
	m     *Metrics
	retry retryPolicy

	mu      sync.Mutex
	running bool
	tenants map[string]*tenant
	global  pacer
	gCAPS   float64
	wake    chan struct{} // dispatcher: something changed
	fetchCh chan struct{} // fetcher: a queue fell below its watermark
	// startLatency is the recent time from arming an attempt to its
	// committed start, a decaying maximum (lookahead).
	startLatency time.Duration

	starts  *batcher[*item]
	results *batcher[result]
	notes   *notifier
	calls   sync.WaitGroup
}

// tenant is one tenant's in-memory dialer state. Guarded by Engine.mu.
type tenant struct {
	name     string
	settings pacing.Settings
	ports    PortReport
	queues   map[string][]*item // per IVR profile: fetched (INITIATED), in priority order
	order    []string           // profiles, for round robin
	rr       int
	ready    []*item // armed and committed, waiting for their dial slot
	pacer    pacer
	budget   budget
	sampled  sampledPorts // PortViewSampled only
	attempts []time.Time  // dial times, for the achieved rate
	pruned   time.Time    // last prune of the queues
	outcomes map[string]uint64
}

// item is one request on its way through the engine.
type item struct {
	t        *tenant
	req      *fsmpb.Request // as fetched
	callUUID string
	armed    time.Time
}

type result struct {
	it  *item
	res *fsmpb.AttemptResult
}

// New builds an engine.
func New(o Options) *Engine {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ReportMargin <= 0 {
		o.ReportMargin = 100 * time.Millisecond
	}
	if o.NotifyMaxBackoff <= 0 {
		o.NotifyMaxBackoff = time.Minute
	}
	if o.NotifyConcurrency <= 0 {
		o.NotifyConcurrency = 64
	}
	if o.Housekeeping <= 0 {
		o.Housekeeping = 50 * time.Millisecond
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.PortView == "" {
		o.PortView = PortViewLive
	}
	if o.PortSampleInterval <= 0 {
		o.PortSampleInterval = 5 * time.Second
	}
	e := &Engine{opts: o, log: o.Logger.With("component", "dialer"), m: o.Metrics}
	e.retry = retryPolicy{nextRetryInterval: pacing.DefaultNextRetryInterval, interruptedDelay: o.InterruptedRetryDelay}
	return e
}

// Run runs the engine until ctx ends (leadership lost, or the node
// stopping), then hangs up every call it placed and returns once every
// goroutine it started has finished. Outcomes not committed by then are
// left for the next leader, which reconciles them.
func (e *Engine) Run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	e.running = true
	e.tenants = map[string]*tenant{}
	e.global = pacer{}
	e.startLatency = 0
	e.wake = make(chan struct{}, 1)
	e.fetchCh = make(chan struct{}, 1)
	e.starts = newBatcher(maxEntryItems, e.commitStarts)
	e.results = newBatcher(maxEntryItems, e.commitResults)
	e.notes = newNotifier(e)
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.running = false
		e.tenants = nil
		e.mu.Unlock()
		e.m.reset()
	}()

	e.m.Running.Set(1)
	e.log.Info("dialer starting")
	if !e.reconcile(ctx) {
		return
	}
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){e.starts.run, e.results.run, e.notes.run, e.housekeep, e.dispatch} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	<-ctx.Done()
	wg.Wait()
	e.calls.Wait() // Place returns once ctx is done: every call is hung up
	e.log.Info("dialer stopped")
}

// Running reports whether the engine is running (this node leads).
func (e *Engine) Running() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.running
}

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
			ids := make([]string, len(recs))
			for i, r := range recs {
				ids[i] = r.Id
			}
			if _, _, err := e.opts.Apply.ApplyLeader(ctx, &fsmpb.Command{Body: &fsmpb.Command_Requeue{Requeue: &fsmpb.RequeueRequests{Ids: ids}}}); err != nil {
				return fmt.Errorf("requeue: %w", err)
			}
			requeued += len(ids)
		}
	}
	for _, tn := range e.opts.Store.Tenants(fsmpb.State_IN_PROGRESS) {
		for {
			recs := e.opts.Store.InState(tn, fsmpb.State_IN_PROGRESS, "", maxEntryItems)
			if len(recs) == 0 {
				break
			}
			e.revoke(ctx, recs)
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
			if _, _, err := e.opts.Apply.ApplyLeader(ctx, &fsmpb.Command{Body: &fsmpb.Command_RecordResults{RecordResults: &fsmpb.RecordResults{Results: rs}}}); err != nil {
				return fmt.Errorf("interrupt: %w", err)
			}
			interrupted += len(rs)
		}
	}
	if requeued+interrupted > 0 {
		e.log.Info("reconciled the previous leader's work", "requeued", requeued, "interrupted", interrupted)
	}
	e.m.Reconciled.Add(float64(requeued + interrupted))
	return nil
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
		now := time.Now()
		e.refresh(now)
		e.fetch(ctx, now)
		if now.Sub(lastExpire) >= 250*time.Millisecond {
			lastExpire = now
			e.expire(ctx, now)
		}
		e.cleanup(ctx, now, lastClean)
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
	for _, n := range names {
		if e.tenants[n] == nil {
			e.tenants[n] = &tenant{name: n, queues: map[string][]*item{}, outcomes: map[string]uint64{}}
		}
	}
	for n, t := range e.tenants {
		tp, _ := e.opts.Store.Pacing(n)
		t.settings = pacing.Resolve(global, tp)
		t.pacer.setRate(t.settings.CAPS)
		t.ports = e.opts.Ports.TenantPorts(n)
		if e.opts.PortView == PortViewSampled {
			t.sampled.refresh(now, e.opts.PortSampleInterval, t.ports, t.settings.PortLoadFactor)
		}
		t.rate(now) // trims the attempt log
		if t.idle() && !slices.Contains(names, n) {
			delete(e.tenants, n)
			e.m.dropTenant(n)
			continue
		}
		e.m.tenantGauges(t, e.opts.ReportMargin)
	}
}

func (t *tenant) idle() bool {
	return t.queued() == 0 && len(t.ready) == 0 && t.budget.calls == 0 && t.budget.armed == 0
}

func (t *tenant) queued() int {
	n := 0
	for _, q := range t.queues {
		n += len(q)
	}
	return n
}

// batchSize is the SSG's Request Batch Size for the tenant now.
func (t *tenant) batchSize() int {
	if !t.ports.OK {
		return 0
	}
	switch t.settings.BatchMode {
	case pacing.BatchAvailablePorts:
		return int(t.ports.Total) - min(int(t.ports.InUse), int(t.ports.Total))
	case pacing.BatchFixed:
		return int(t.settings.BatchSize)
	default:
		return int(t.ports.Total)
	}
}

// fetch claims due requests into the in-memory queues of every tenant
// whose queues fell below the low watermark: one Raft entry per tenant.
func (e *Engine) fetch(ctx context.Context, now time.Time) {
	type want struct {
		t      *tenant
		shares map[string]int
		equal  bool
	}
	var wants []want
	e.mu.Lock()
	for _, t := range e.tenants {
		// Pruning reads every queued request; at thousands of CAPS the
		// fetch runs far more often than cancels need noticing (a start of
		// a request no longer INITIATED is refused by the state machine
		// anyway).
		if now.Sub(t.pruned) >= 250*time.Millisecond {
			t.prune(e.opts.Store)
			t.pruned = now
		}
		size := t.batchSize()
		q := t.queued()
		if size <= 0 || q*100 >= size*int(t.settings.LowWatermark) && q > 0 {
			continue
		}
		need := size - q
		if need <= 0 {
			continue
		}
		wants = append(wants, want{t: t, shares: allocate(need, e.opts.Store.Profiles(t.name, fsmpb.State_PENDING), t.settings.Slots), equal: t.settings.EqualNewAndOld})
	}
	e.mu.Unlock()

	for _, w := range wants {
		var picked []*fsmpb.Request
		profiles := make([]string, 0, len(w.shares))
		for p := range w.shares {
			profiles = append(profiles, p)
		}
		slices.Sort(profiles)
		for _, p := range profiles {
			n := w.shares[p]
			limit := n
			if w.equal {
				limit = n * 4 // room to find both kinds
			}
			var due []*fsmpb.Request
			for _, r := range e.opts.Store.Due(w.t.name, p, fsmpb.State_PENDING, limit) {
				if r.NextRetryUnixMs > now.UnixMilli() {
					break // the rest is later still
				}
				if r.ExpiresUnixMs > now.UnixMilli() {
					due = append(due, r)
				}
			}
			picked = append(picked, pick(due, n, w.equal)...)
		}
		if len(picked) == 0 {
			continue
		}
		for start := 0; start < len(picked); start += maxEntryItems {
			chunk := picked[start:min(start+maxEntryItems, len(picked))]
			ids := make([]string, len(chunk))
			for i, r := range chunk {
				ids[i] = r.Id
			}
			res, _, err := e.opts.Apply.ApplyLeader(ctx, &fsmpb.Command{Body: &fsmpb.Command_Claim{Claim: &fsmpb.ClaimRequests{Ids: ids}}})
			if err != nil {
				if ctx.Err() == nil {
					e.log.Warn("fetch failed", "tenant", w.t.name, "err", err)
				}
				return
			}
			e.m.Fetches.Inc()
			e.mu.Lock()
			for i, r := range chunk {
				if i < len(res.GetItems()) && res.Items[i].Code == fsmpb.Code_CODE_OK {
					w.t.enqueue(&item{t: w.t, req: r})
				}
			}
			e.mu.Unlock()
		}
	}
}

func (t *tenant) enqueue(it *item) {
	p := it.req.IvrProfile
	if _, ok := t.queues[p]; !ok {
		t.order = append(t.order, p)
	}
	t.queues[p] = append(t.queues[p], it)
}

// prune drops queued requests that are no longer INITIATED (cancelled or
// expired since they were fetched).
func (t *tenant) prune(s Store) {
	for p, q := range t.queues {
		kept := q[:0]
		for _, it := range q {
			if r, ok := s.Get(it.req.Id); ok && r.State == fsmpb.State_INITIATED {
				kept = append(kept, it)
			}
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

// expire ends waiting requests whose TTL ran out.
func (e *Engine) expire(ctx context.Context, now time.Time) {
	for ctx.Err() == nil {
		recs := e.opts.Store.Expired(now.UnixMilli(), maxEntryItems)
		if len(recs) == 0 {
			return
		}
		ids := make([]string, len(recs))
		for i, r := range recs {
			ids[i] = r.Id
		}
		res, _, err := e.opts.Apply.ApplyLeader(ctx, &fsmpb.Command{Body: &fsmpb.Command_Expire{Expire: &fsmpb.ExpireRequests{Ids: ids}}})
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("expire failed", "err", err)
			}
			return
		}
		done := 0
		for i, it := range res.GetItems() {
			if it.Code == fsmpb.Code_CODE_OK {
				done++
				e.notes.add(ids[i])
				e.m.outcome(recs[i].Tenant, "TTL_EXPIRED")
			}
		}
		if done < len(ids) {
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
		after := ""
		var ids []string
		for {
			recs := e.opts.Store.InState(tn, fsmpb.State_PROCESSED, after, maxEntryItems)
			if len(recs) == 0 {
				break
			}
			after = recs[len(recs)-1].Id
			for _, r := range recs {
				if (r.NotifyState == fsmpb.NotifyState_NOTIFIED || r.NotifyState == fsmpb.NotifyState_NOTIFY_NOT_REQUIRED) &&
					now.Sub(time.UnixMilli(r.UpdatedUnixMs)) >= s.Retention {
					ids = append(ids, r.Id)
				}
			}
		}
		for start := 0; start < len(ids) && ctx.Err() == nil; start += maxEntryItems {
			chunk := ids[start:min(start+maxEntryItems, len(ids))]
			if _, _, err := e.opts.Apply.ApplyLeader(ctx, &fsmpb.Command{Body: &fsmpb.Command_Purge{Purge: &fsmpb.PurgeRequests{Ids: chunk}}}); err != nil {
				if ctx.Err() == nil {
					e.log.Warn("cleanup failed", "tenant", tn, "err", err)
				}
				return
			}
			e.m.Purged.Add(float64(len(chunk)))
		}
		if len(ids) > 0 {
			e.log.Info("cleanup purged finished requests", "tenant", tn, "purged", len(ids))
		}
	}
}

func (e *Engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

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

// dispatch arms attempts within the port budget and dials them at the
// paced rate, until ctx ends.
func (e *Engine) dispatch(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var arm []*item
		var dial []*item
		wait := e.opts.Housekeeping
		e.mu.Lock()
		for _, t := range e.tenants {
			if e.opts.Backend == nil {
				break
			}
			// armed counts the attempts being committed and those ready.
			for t.budget.armed < lookahead(t.settings.CAPS, e.startLatency) && e.canArm(t) {
				it := t.next()
				if it == nil {
					break
				}
				it.callUUID = uuid.Must(uuid.NewV7()).String()
				it.armed = now
				t.budget.armed++
				t.sampled.quota--
				arm = append(arm, it)
			}
			if t.queued()*100 < t.batchSize()*int(t.settings.LowWatermark) || t.queued() == 0 {
				select {
				case e.fetchCh <- struct{}{}:
				default:
				}
			}
		}
		// Dial every ready attempt whose slot has come, earliest first.
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
				break
			}
			if bestAt.After(now) {
				wait = min(wait, bestAt.Sub(now))
				break
			}
			it := best.ready[0]
			best.ready[0] = nil
			best.ready = best.ready[1:]
			best.pacer.take(now)
			e.global.take(now)
			best.budget.place(now)
			best.attempts = append(best.attempts, now)
			dial = append(dial, it)
		}
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

// canArm reports whether the port view lets t arm one more attempt.
func (e *Engine) canArm(t *tenant) bool {
	if e.opts.PortView == PortViewSampled {
		return t.sampled.quota > 0
	}
	return t.budget.canArm(t.settings.BatchMode, t.settings.PortLoadFactor, t.ports, e.opts.ReportMargin)
}

// commitStarts commits armed attempts (one entry) and makes those that
// started ready to dial.
func (e *Engine) commitStarts(ctx context.Context, items []*item) {
	starts := make([]*fsmpb.AttemptStart, len(items))
	for i, it := range items {
		starts[i] = &fsmpb.AttemptStart{Id: it.req.Id, CallUuid: it.callUUID}
	}
	res, _, err := e.opts.Apply.ApplyLeader(ctx, &fsmpb.Command{Body: &fsmpb.Command_StartAttempts{StartAttempts: &fsmpb.StartAttempts{Starts: starts}}})
	e.m.StartBatch.Observe(float64(len(items)))
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil {
		// From arming the oldest item to its commit: the wait for the
		// commit before it plus its own. A decaying maximum, so one slow
		// commit raises the lookahead at once and it shrinks slowly.
		took := time.Since(items[0].armed)
		e.startLatency = max(took, e.startLatency*99/100)
	}
	for i, it := range items {
		if err != nil || i >= len(res.GetItems()) || res.Items[i].Code != fsmpb.Code_CODE_OK {
			// Not started (cancelled or expired meanwhile, or we are no
			// longer leader): it holds no budget.
			it.t.budget.armed--
			continue
		}
		it.t.ready = append(it.t.ready, it)
	}
	if err != nil && ctx.Err() == nil {
		e.log.Warn("attempt start failed", "attempts", len(items), "err", err)
	}
	e.signal()
}

// call places one committed attempt and queues its outcome.
func (e *Engine) call(ctx context.Context, it *item) {
	defer e.calls.Done()
	r := it.req
	started := time.Now()
	var out telephony.Outcome
	var err error
	if started.UnixMilli() >= r.ExpiresUnixMs {
		// Its TTL ran out between the commit and its slot: do not dial.
		out = telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_INTERNAL, Reason: "TTL Expired"}
	} else {
		e.m.Attempts.WithLabelValues(r.Tenant).Inc()
		out, err = e.opts.Backend.Place(ctx, telephony.Call{
			RequestID: r.Id, CallUUID: it.callUUID, Tenant: r.Tenant, IVRProfile: r.IvrProfile,
			Telnum: r.Telnum, Ani: r.Ani, Cpd: r.Cpd, CustomData: r.CustomData,
			Attempt: r.AttemptsMade + 1,
		})
	}
	e.mu.Lock()
	it.t.budget.calls--
	e.mu.Unlock()
	if ctx.Err() != nil {
		return // hung up because leadership ended: the next leader reconciles
	}
	switch {
	case errors.Is(err, telephony.ErrFull):
		e.m.Refused.WithLabelValues(r.Tenant).Inc()
		out = telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_INTERNAL, Reason: "PortsFull"}
	case err != nil:
		e.log.Debug("call failed", "request", r.Id, "err", err)
		out = telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_INTERNAL, Reason: "InternalError"}
	case out.Class == fsmpb.OutcomeClass_OUTCOME_UNSPECIFIED:
		out.Class = fsmpb.OutcomeClass_OUTCOME_INTERNAL
	}
	if out.Reason == "" {
		out.Reason = out.Class.String()
	}
	// The record as stored now: IN_PROGRESS with this attempt counted.
	cur, ok := e.opts.Store.Get(r.Id)
	if !ok {
		return
	}
	e.results.add(result{it: it, res: &fsmpb.AttemptResult{
		Id: r.Id, CallUuid: it.callUUID, Outcome: out.Class, Reason: out.Reason,
		NextRetryUnixMs: e.retryFor(cur, out.Class, time.Now()).UnixMilli(),
	}})
}

func (e *Engine) retryFor(r *fsmpb.Request, c fsmpb.OutcomeClass, now time.Time) time.Time {
	p := e.retry
	e.mu.Lock()
	if t := e.tenants[r.Tenant]; t != nil {
		p.nextRetryInterval = t.settings.NextRetryInterval
	}
	e.mu.Unlock()
	return p.nextRetry(r, c, now)
}

// commitResults commits attempt outcomes (one entry) and queues the
// notifications of the requests they finished.
func (e *Engine) commitResults(ctx context.Context, rs []result) {
	cmd := &fsmpb.RecordResults{Results: make([]*fsmpb.AttemptResult, len(rs))}
	for i, r := range rs {
		cmd.Results[i] = r.res
	}
	res, _, err := e.opts.Apply.ApplyLeader(ctx, &fsmpb.Command{Body: &fsmpb.Command_RecordResults{RecordResults: cmd}})
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("recording outcomes failed; the next leader reinstates them", "results", len(rs), "err", err)
		}
		return
	}
	e.mu.Lock()
	for i, r := range rs {
		if i < len(res.GetItems()) && res.Items[i].Code == fsmpb.Code_CODE_OK {
			r.it.t.outcomes[r.res.Outcome.String()]++
		}
	}
	e.mu.Unlock()
	for i, r := range rs {
		if i >= len(res.GetItems()) || res.Items[i].Code != fsmpb.Code_CODE_OK {
			continue
		}
		e.m.outcome(r.it.req.Tenant, r.res.Outcome.String())
		if cur, ok := e.opts.Store.Get(r.res.Id); ok && cur.State == fsmpb.State_PROCESSED {
			e.notes.add(cur.Id)
		}
	}
	e.signal()
}

// Stats returns the engine's current figures.
func (e *Engine) Stats() Stats {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Stats{Running: e.running, GlobalCAPS: e.gCAPS}
	for _, t := range e.tenants {
		limit, own, _, _ := t.budget.limit(t.settings.BatchMode, t.settings.PortLoadFactor, t.ports, e.opts.ReportMargin)
		ts := TenantStats{
			Tenant: t.name, Queued: t.queued(), QueuedProfile: map[string]int{},
			InProgress: own, PortBudget: limit, PortsTotal: t.ports.Total, PortsInUse: t.ports.InUse,
			CAPS: t.settings.CAPS, AttemptsPerSec: t.rate(now), Outcomes: map[string]uint64{},
		}
		for p, q := range t.queues {
			ts.QueuedProfile[p] = len(q)
		}
		for k, v := range t.outcomes {
			ts.Outcomes[k] = v
		}
		if e.notes != nil {
			ts.NotifyPending, ts.NotifyRetries = e.notes.stats(t.name)
		}
		st.Tenants = append(st.Tenants, ts)
	}
	slices.SortFunc(st.Tenants, func(a, b TenantStats) int {
		if a.Tenant < b.Tenant {
			return -1
		}
		if a.Tenant > b.Tenant {
			return 1
		}
		return 0
	})
	return st
}

// rate is the attempts per second over the last 10 s (and trims the log).
func (t *tenant) rate(now time.Time) float64 {
	const span = 10 * time.Second
	i := 0
	for i < len(t.attempts) && now.Sub(t.attempts[i]) > span {
		i++
	}
	t.attempts = append(t.attempts[:0], t.attempts[i:]...)
	return float64(len(t.attempts)) / span.Seconds()
}
