package dialer

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// Commit, then dial: an attempt's start is committed (commitStarts)
// before it is dialled (call), and its outcome is committed afterwards
// (commitResults). Starts and outcomes are group-committed by batchers.

// startLatency is the recent time from arming an attempt to its committed
// start, a decaying maximum: one slow commit raises the lookahead at once
// and it shrinks slowly. Commits record it, the dispatcher reads it.
type startLatency struct {
	mu sync.Mutex
	d  time.Duration
}

func (l *startLatency) observe(took time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d = max(took, l.d*99/100)
}

func (l *startLatency) get() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.d
}

// commitStarts commits armed attempts (one entry) and makes those that
// started ready to dial.
func (e *Engine) commitStarts(ctx context.Context, items []*item) {
	var started []*item
	err := propose(ctx, e.opts.Apply, items, startCommand, func(_, ok []*item) { started = ok })
	e.m.StartBatch.Observe(float64(len(items)))
	if err == nil {
		// From arming the oldest item to its commit: the wait for the
		// commit before it plus its own.
		e.latency.observe(e.clock.Now().Sub(items[0].armed))
	}
	var refused []string
	defer func() {
		// Runs after the unlock below: a start the state machine refused
		// may have ended the request (suppressed): notify it.
		for _, id := range refused {
			e.notes.add(id)
		}
	}()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, it := range items {
		// Started (IN_PROGRESS, no longer due) or refused: either way no
		// longer held, so a later fetch may take it again once it waits.
		delete(it.t.held, it.req.Id)
		if len(started) > 0 && started[0] == it {
			started = started[1:]
			it.t.ready = append(it.t.ready, it)
			continue
		}
		// Not started (cancelled or expired meanwhile, or we are no
		// longer leader): it holds no budget.
		it.t.budget.armed--
		refused = append(refused, it.req.Id)
	}
	if err != nil && ctx.Err() == nil {
		e.log.Warn("attempt start failed", "attempts", len(items), "err", err)
	}
	e.signal()
}

func startCommand(items []*item) *fsmpb.Command {
	starts := make([]*fsmpb.AttemptStart, len(items))
	for i, it := range items {
		starts[i] = &fsmpb.AttemptStart{Id: it.req.Id, CallUuid: it.callUUID}
	}
	// Claim and start in one update: the request is still PENDING (or
	// INITIATED, fetched by an older leader's binary).
	return fsm.BatchStartAttemptsCommand(starts)
}

// call places one committed attempt and queues its outcome.
func (e *Engine) call(ctx context.Context, it *item) {
	defer e.calls.Done()
	growStack()
	r := it.req
	started := e.clock.Now()
	var out telephony.Outcome
	var err error
	if started.UnixMilli() >= r.ExpiresUnixMs {
		// Its TTL ran out between the commit and its slot: do not dial.
		out = telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_INTERNAL, Reason: "TTL Expired"}
	} else {
		out, err = e.opts.Backend.Place(ctx, telephony.Call{
			RequestID: r.Id, CallUUID: it.callUUID, Tenant: r.Tenant, IVRProfile: r.IvrProfile,
			Telnum: r.Telnum, Ani: r.Ani, Cpd: r.Cpd, CustomData: r.CustomData,
			Attempt:      r.AttemptsMade + 1,
			Gate:         e.sendGate(it),
			Sent:         func() { e.sendWritten(it, true) },
			Dialog:       e.dialogSink(r.Id, it.callUUID),
			DialogCommit: e.dialogCommitter(r.Id, it.callUUID),
		})
		e.sendWritten(it, false) // a backend that did not report it
	}
	e.mu.Lock()
	it.t.budget.calls--
	e.mu.Unlock()
	if ctx.Err() != nil {
		return // hung up because leadership ended: the next leader reconciles
	}
	switch {
	case errors.Is(err, errTTLAtSend):
		out = telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_INTERNAL, Reason: "TTL Expired"}
	case errors.Is(err, telephony.ErrNotSent):
		// Fenced at the send: nothing left the process, so it is retried
		// at once (no half-open dialog to wait for) if this node still
		// leads when the result commits; otherwise it stays IN_PROGRESS
		// for the next leader's takeover.
		e.log.Debug("attempt not sent", "request", r.Id, "err", err)
		e.results.add(result{it: it, res: &fsmpb.AttemptResult{
			Id: r.Id, CallUuid: it.callUUID, Outcome: fsmpb.OutcomeClass_OUTCOME_INTERRUPTED, Reason: telephony.ReasonNotSent,
			NextRetryUnixMs: e.clock.Now().UnixMilli(),
		}})
		return
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
		NextRetryUnixMs: e.retryFor(cur, out.Class, e.clock.Now()).UnixMilli(),
	}})
}

// retryFor is r's retry time after an outcome of class c, at its tenant's
// NextRetryInterval.
func (e *Engine) retryFor(r *fsmpb.Request, c fsmpb.OutcomeClass, now time.Time) time.Time {
	p := e.retry
	e.mu.Lock()
	if t := e.tenants[r.Tenant]; t != nil {
		p.nextRetryInterval = t.settings.NextRetryInterval
	}
	e.mu.Unlock()
	return p.nextRetry(r, c, now)
}

// commitResults commits attempt outcomes and delivered notifications (one
// entry: a notification delivered while the previous entry was committing
// rides with the next outcomes instead of an entry of its own), queues the
// notifications of the requests the outcomes finished and forgets the
// delivered ones.
func (e *Engine) commitResults(ctx context.Context, rs []result) {
	// Outcomes first, then marks: the order of the command's items.
	slices.SortStableFunc(rs, func(a, b result) int {
		return cmp.Compare(boolInt(a.res == nil), boolInt(b.res == nil))
	})
	var recorded, marked []result
	err := propose(ctx, e.opts.Apply, rs, resultsCommand, func(entry, ok []result) {
		for _, r := range ok {
			if r.res != nil {
				recorded = append(recorded, r)
			}
		}
		// A refused mark (already notified, purged) is done with too.
		for _, r := range entry {
			if r.res == nil {
				marked = append(marked, r)
			}
		}
	})
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("recording outcomes failed; the next leader reinstates them and sends their notifications again", "items", len(rs), "err", err)
		}
		return
	}
	e.notes.forgetIDs(marked)
	e.mu.Lock()
	for _, r := range recorded {
		if r.it.t != nil { // nil: an adopted call
			r.it.t.outcomes[r.res.Outcome.String()]++
		}
	}
	e.mu.Unlock()
	for _, r := range recorded {
		e.m.outcome(r.it.req.Tenant, r.res.Outcome.String())
		if cur, ok := e.opts.Store.Get(r.res.Id); ok && cur.State == fsmpb.State_PROCESSED {
			e.notes.add(cur.Id)
		}
	}
	e.signal()
}

// resultsCommand builds the entry of rs, outcomes before marks (as
// commitResults sorts them).
func resultsCommand(rs []result) *fsmpb.Command {
	var results []*fsmpb.AttemptResult
	var marks []string
	for _, r := range rs {
		if r.res != nil {
			results = append(results, r.res)
		} else {
			marks = append(marks, r.mark)
		}
	}
	if len(marks) == 0 {
		return fsm.RecordResultsCommand(results)
	}
	return fsm.BatchRecordResultsCommand(results, marks)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// growStack grows the calling goroutine's stack, while it is shallow, to
// about what placing a call needs. A fresh call goroutine otherwise grew
// it (copying its frames) deep inside the backend's send, in its turn at
// the gate: 0.64 s of a 19 s leader profile at 5,000 CAPS, 0.55 s of it in
// the turn; with this, 0.34 s and none in the turn. A 6 kB frame makes
// the runtime give it 16 kB at once; a 16 kB frame (a 32 kB stack, past
// the per-P stack caches) cost more than it saved (0.70 s).
//
//go:noinline
func growStack() {
	var pad [6 << 10]byte
	touch(pad[:])
}

// touch keeps growStack's frame from being optimised away.
//
//go:noinline
func touch(b []byte) { b[len(b)-1] = 0 }
