package dialer

import (
	"context"
	"errors"
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

// dialogItem is one leg's state to commit; done, when set, is told
// whether it was (a synchronous commit, DialogCommit).
type dialogItem struct {
	id, callUUID string
	st           *fsmpb.DialogState
	done         chan<- error
}

// errDialogRefused: the state machine refused a dialog update (the
// attempt ended or was superseded meanwhile).
var errDialogRefused = errors.New("dialog update refused")

func (e *Engine) commitDialogs(ctx context.Context, items []dialogItem) {
	acked := make(map[int]bool, len(items)) // index in items -> committed
	base := 0
	err := propose(ctx, e.opts.Apply, items, dialogCommand, func(entry, accepted []dialogItem) {
		// accepted is entry's accepted items in order (each its own state).
		j := 0
		for i := range entry {
			if j < len(accepted) && entry[i].st == accepted[j].st {
				acked[base+i] = true
				j++
			}
		}
		base += len(entry)
	})
	e.m.DialogBatch.Observe(float64(len(items)))
	if err != nil && ctx.Err() == nil {
		e.log.Warn("dialog state commit failed", "dialogs", len(items), "err", err)
	}
	for i, it := range items {
		if it.done == nil {
			continue
		}
		switch {
		case acked[i]:
			it.done <- nil
		case err != nil:
			it.done <- err
		default:
			it.done <- errDialogRefused
		}
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

// dialogCommitter is the DialogCommit hook of one call: the states ride
// the dialog batcher like any other, and the caller waits for their entry.
// A batcher stopped with leadership drops what is pending: ctx (the call's,
// which ends with leadership) bounds the wait.
func (e *Engine) dialogCommitter(id, callUUID string) func(context.Context, []*fsmpb.DialogState) error {
	if _, ok := e.opts.Backend.(Adopter); !ok || !e.opts.Takeover {
		return nil
	}
	return func(ctx context.Context, states []*fsmpb.DialogState) error {
		done := make(chan error, len(states))
		items := make([]dialogItem, len(states))
		for i, st := range states {
			items[i] = dialogItem{id: id, callUUID: callUUID, st: st, done: done}
		}
		e.dialogs.add(items...)
		for range states {
			select {
			case err := <-done:
				if err != nil {
					return err
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
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
		Dialog:       e.dialogSink(r.Id, r.LastCallUuid),
		DialogCommit: e.dialogCommitter(r.Id, r.LastCallUuid),
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
