package chaos

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/sim/mediasim"
	"github.com/seed-7bfc04c2/dialtone/internal/sim/notifysink"
	"github.com/seed-7bfc04c2/dialtone/test/chaos/history"
)

// readAll reads every known request linearizably, 500 at a time.
func (r *Runner) readAll(ctx context.Context, knowns []known) (map[string]wireRequest, error) {
	out := map[string]wireRequest{}
	for i := 0; i < len(knowns); i += 500 {
		var ids []string
		for _, k := range knowns[i:min(i+500, len(knowns))] {
			ids = append(ids, k.id)
		}
		err := r.retry(ctx, 30*time.Second, func(ctx context.Context, base string) error {
			m, err := r.api.batchGet(ctx, base, ids)
			if err != nil {
				return err
			}
			for id, w := range m {
				out[id] = w
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("final reads: %w", err)
		}
	}
	return out, nil
}

// drain waits until every acknowledged request is processed and every one
// the dialer finished has been notified (or DrainTimeout passes), then
// answers their final state.
func (r *Runner) drain(ctx context.Context, knowns []known) ([]history.Final, error) {
	deadline := time.Now().Add(r.opts.DrainTimeout)
	var last map[string]wireRequest
	var pending int
	for {
		m, err := r.readAll(ctx, knowns)
		if err != nil {
			return nil, err
		}
		last, pending = m, 0
		for _, k := range knowns {
			if w, ok := m[k.id]; !ok || w.State != "PROCESSED" || w.Notification == "PENDING" {
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		r.log("  draining: %d requests not processed or not yet notified", pending)
		if err := sleep(ctx, 3*time.Second); err != nil {
			return nil, err
		}
	}
	var finals []history.Final
	for _, k := range knowns {
		f := history.Final{ID: k.id, Token: k.token}
		if w, ok := last[k.id]; ok {
			f.Found = true
			f.State, f.Result, f.ResultReason, f.Telnum = w.State, w.Result, w.ResultReason, w.Spec.Telnum
			f.Token = w.Spec.Token
			f.AttemptsMade, f.MaxAttempts, f.Created, f.Expires, f.Notification = w.AttemptsMade, w.Spec.MaxAttempts, w.Created, w.Expires, w.Notification
			for _, a := range w.Attempts {
				f.Attempts = append(f.Attempts, history.Attempt{Number: a.Number, CallUUID: a.CallUUID, Started: a.Started, Ended: a.Ended, Outcome: a.Outcome, Reason: a.Reason})
			}
		}
		finals = append(finals, f)
	}
	if pending > 0 {
		return finals, fmt.Errorf("%d requests still not processed or not notified after %v", pending, r.opts.DrainTimeout)
	}
	return finals, nil
}

// collect reads the media platform's call log and the notifications the
// trigger application received.
func (r *Runner) collect(ctx context.Context) ([]mediasim.CallRecord, []notifysink.Notification, error) {
	sim := "http://" + r.dep.ClientNet + ".10"
	var calls struct {
		Calls []mediasim.CallRecord `json:"calls"`
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := r.api.do(cctx, http.MethodGet, sim+":9091/calls", nil, &calls); err != nil {
		return nil, nil, fmt.Errorf("media platform call log: %w", err)
	}
	var notes struct {
		Notifications []notifysink.Notification `json:"notifications"`
	}
	if _, err := r.api.do(cctx, http.MethodGet, sim+":8089/notifications", nil, &notes); err != nil {
		return nil, nil, fmt.Errorf("notifications: %w", err)
	}
	return calls.Calls, notes.Notifications, nil
}
