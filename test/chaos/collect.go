package chaos

import (
	"context"
	"fmt"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/sim/mediasim"
	"github.com/seed-7bfc04c2/dialtone/internal/sim/notifysink"
	"github.com/seed-7bfc04c2/dialtone/test/chaos/history"
)

// readAll reads every known request linearizably, 500 at a time.
func (r *Runner) readAll(ctx context.Context, knowns []known) (map[string]*pb.Request, error) {
	out := map[string]*pb.Request{}
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
	var last map[string]*pb.Request
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
			f.State, f.Result, f.ResultReason, f.Telnum = w.GetState(), w.GetResult(), w.GetResultReason(), w.GetSpec().GetTelnum()
			f.Token = w.GetSpec().GetToken()
			f.AttemptsMade, f.MaxAttempts, f.Created, f.Expires, f.Notification = w.GetAttemptsMade(), w.GetSpec().GetMaxAttempts(), asTime(w.GetCreated()), asTime(w.GetExpires()), w.GetNotification()
			for _, a := range w.GetAttempts() {
				f.Attempts = append(f.Attempts, history.Attempt{Number: a.GetNumber(), CallUUID: a.GetCallUuid(), Started: asTime(a.GetStarted()), Ended: asTime(a.GetEnded()), Outcome: a.GetOutcome(), Reason: a.GetReason()})
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
	if err := r.api.simJSON(cctx, sim+":9091/calls", &calls); err != nil {
		return nil, nil, fmt.Errorf("media platform call log: %w", err)
	}
	var notes struct {
		Notifications []notifysink.Notification `json:"notifications"`
	}
	if err := r.api.simJSON(cctx, sim+":8089/notifications", &notes); err != nil {
		return nil, nil, fmt.Errorf("notifications: %w", err)
	}
	return calls.Calls, notes.Notifications, nil
}
