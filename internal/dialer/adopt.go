package dialer

import (
	"context"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// Takeover of live calls (issue 15). A backend whose calls have dialogs
// reports their state (telephony.Call.Dialog); the engine commits it on
// the attempt (a batcher, like starts and results). A new leader adopts
// every attempt its predecessor left in progress with dialog state,
// instead of ending it as interrupted: the backend rebuilds the dialogs
// and the call ends with its real outcome, recorded once, on the same
// attempt. Attempts without dialog state keep the reconcile rules
// (interrupted, half-open hold).

// Adopter is a backend that can continue a call another process placed,
// from its replicated dialogs. Adopt blocks until the call has ended, like
// Place, and reports its outcome; ctx ending hands the call on (or hangs
// it up) as Place does.
type Adopter interface {
	Adopt(ctx context.Context, c telephony.Call, dialogs []*fsmpb.DialogState) (telephony.Outcome, error)
}

// AddressHolder is a backend whose address follows leadership (the SIP
// service address): Lead binds it for the term, before the engine adopts
// or dials anything, and release unbinds it.
type AddressHolder interface {
	Lead(ctx context.Context) (release func(), err error)
}

// dialogItem is one leg's state to commit.
type dialogItem struct {
	id, callUUID string
	st           *fsmpb.DialogState
}

func (e *Engine) commitDialogs(ctx context.Context, items []dialogItem) {
	err := propose(ctx, e.opts.Apply, items, dialogCommand, nil)
	e.m.DialogBatch.Observe(float64(len(items)))
	if err != nil && ctx.Err() == nil {
		e.log.Warn("dialog state commit failed", "dialogs", len(items), "err", err)
	}
}

func dialogCommand(items []dialogItem) *fsmpb.Command {
	ups := make([]*fsmpb.DialogUpdate, len(items))
	for i, it := range items {
		ups[i] = &fsmpb.DialogUpdate{Id: it.id, CallUuid: it.callUUID, Dialog: it.st}
	}
	return fsm.DialogUpdatesCommand(ups)
}

// dialogSink is the Dialog hook of one call: it queues the state for the
// dialog batcher.
func (e *Engine) dialogSink(id, callUUID string) func(*fsmpb.DialogState) {
	if _, ok := e.opts.Backend.(Adopter); !ok || !e.opts.Takeover {
		return nil
	}
	return func(st *fsmpb.DialogState) { e.dialogs.add(dialogItem{id: id, callUUID: callUUID, st: st}) }
}

// adoptable is the dialog state of r's current attempt when this engine
// adopts it (nil: reconcile it as before).
func (e *Engine) adoptable(r *fsmpb.Request) []*fsmpb.DialogState {
	if !e.opts.Takeover || len(r.Attempts) == 0 {
		return nil
	}
	if _, ok := e.opts.Backend.(Adopter); !ok {
		return nil
	}
	last := r.Attempts[len(r.Attempts)-1]
	if last.EndedUnixMs != 0 || last.CallUuid != r.LastCallUuid {
		return nil
	}
	return last.Dialogs
}

// adopt continues r's call from its dialogs and records its outcome on
// the same attempt. The call counts in its tenant's port budget until it
// ends.
func (e *Engine) adopt(ctx context.Context, r *fsmpb.Request, dialogs []*fsmpb.DialogState) {
	defer e.calls.Done()
	e.mu.Lock()
	e.adopted[r.Tenant]++
	e.mu.Unlock()
	e.m.Adopted.Inc()
	out, err := e.opts.Backend.(Adopter).Adopt(ctx, telephony.Call{
		RequestID: r.Id, CallUUID: r.LastCallUuid, Tenant: r.Tenant, IVRProfile: r.IvrProfile,
		Telnum: r.Telnum, Ani: r.Ani, Cpd: r.Cpd, CustomData: r.CustomData, Attempt: r.AttemptsMade,
		Dialog: e.dialogSink(r.Id, r.LastCallUuid),
	}, dialogs)
	e.mu.Lock()
	e.adopted[r.Tenant]--
	e.mu.Unlock()
	if ctx.Err() != nil {
		return // handed on (or hung up) with leadership: the next leader takes it
	}
	if err != nil {
		e.log.Warn("could not adopt a call; ending it as interrupted", "request", r.Id, "err", err)
		out = telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_INTERRUPTED, Reason: "Interrupted"}
	}
	if out.Class == fsmpb.OutcomeClass_OUTCOME_UNSPECIFIED {
		out.Class = fsmpb.OutcomeClass_OUTCOME_INTERNAL
	}
	if out.Reason == "" {
		out.Reason = out.Class.String()
	}
	cur, ok := e.opts.Store.Get(r.Id)
	if !ok {
		return
	}
	e.results.add(result{it: &item{req: r, callUUID: r.LastCallUuid}, res: &fsmpb.AttemptResult{
		Id: r.Id, CallUuid: r.LastCallUuid, Outcome: out.Class, Reason: out.Reason,
		NextRetryUnixMs: e.retryFor(cur, out.Class, time.Now()).UnixMilli(),
	}})
}
