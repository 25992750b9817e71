package dialer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Pace and fence the send, not the decision. The dispatcher decides which
// committed attempt goes next and hands it to its call goroutine; the
// backend then builds the call and, immediately before the first byte
// leaves the process, runs the call's gate (telephony.Call.Gate). The gate
// takes the attempt's slot in its tenant's wire pacer and the global wire
// pacer at that moment, so the window logs stamp the send, not the
// hand-off, and whatever jitters in between (goroutine start, a trunk's
// limiter, building the INVITE) cannot crowd the far end's windows. It
// also checks, at that moment, that this node still leads with a fresh
// lease (Lease): a deposed or cut-off leader sends nothing.
//
// The gate's time is a lower bound of the send: between the gate and the
// socket a backend still takes locks (sipgo's transaction table) and its
// goroutine may be preempted, and on a loaded machine sends the gate
// released 5 ms apart were seen leaving together. So the window logs hold
// each send as pending from its gate until the backend reports the write
// returned (telephony.Call.Written, an upper bound of the send), and a
// window does not open while its oldest entry is pending: send k passes
// its gate no earlier than the written time of send k−n plus the span, so
// no window at the far end holds more than n. A backend that does not
// report is settled when Place returns.

// Lease says whether this node may send a call now: nil when it is the
// Raft leader and a quorum acknowledged it no longer than
// leader_lease_timeout ago (cluster.Cluster.CheckLease).
type Lease interface {
	CheckLease() error
}

// errTTLAtSend: the attempt's TTL ended before its send slot.
var errTTLAtSend = errors.New("TTL ended before the send")

// sendDeadline bounds the time from arming an attempt (before its start is
// committed and stamped) to its send: the gate refuses a later send (not
// sent, retried at once). So a call leaves no later than its committed
// start + sendDeadline, which the half-open rule builds on (takeover.go).
const sendDeadline = 2 * time.Second

// errSendLate: the attempt waited longer than sendDeadline for its send.
var errSendLate = errors.New("send deadline passed")

// sendGate returns the gate of one attempt (see above). Waiters of a
// tenant queue FIFO; only the head sleeps on a timer, so a slot wakes one
// goroutine, not every attempt waiting. A backend that gives the gate its
// write (telephony.Call.SendWrite) has it run inside the turn: the send is
// settled when the write returns and only then is it the next waiter's
// turn. Sends then leave in gate order, and the window logs hold the time
// of the write itself, not of the write after a wait for the backend's
// own lock behind other sends (a window entry is pending for that whole
// wait: means of 0.02-1.1 ms at 5,000 CAPS on a busy machine, 15-25 µs
// with the write in the turn). A backend whose write only queues the send
// (telephony.Call.SendQueue: the simulator client's gRPC stream) has it
// run inside the turn too, but the send stays pending until the backend
// reports it written (Call.Written), when its bytes have left.
func (e *Engine) sendGate(it *item) func(context.Context, func() error, bool) error {
	return func(ctx context.Context, write func() error, queued bool) error {
		t := it.t
		e.mu.Lock()
		w := t.senders.join()
		e.mu.Unlock()
		defer e.leaveSenders(t, w)

		select {
		case <-w.turn:
		case <-ctx.Done():
			return ctx.Err()
		}
		// The timer only when the slot is not due yet: at 5,000 CAPS one
		// per call was 2% of the leader.
		var timer *time.Timer
		defer func() {
			if timer != nil {
				timer.Stop()
			}
		}()
		for {
			e.mu.Lock()
			now := e.clock.Now()
			at := e.wireReadyLocked(t)
			settled := e.settled
			if !at.After(now) {
				err := e.passLocked(it, now)
				if err != nil || write == nil {
					t.senders.leave(w) // the next waiter's turn, at once
				}
				e.mu.Unlock()
				if err != nil {
					return err
				}
				e.m.Attempts.WithLabelValues(t.name).Inc()
				if write == nil {
					return nil
				}
				// The write's error is the backend's (SendWrite returns it).
				// A queued write stays pending until the backend reports
				// it written (Call.Written), unless it failed.
				if err := write(); err != nil || !queued {
					e.sendWritten(it, err == nil)
				}
				return nil // then the next waiter's turn (deferred)
			}
			e.mu.Unlock()
			// Re-check at least every Housekeeping: a rate change may
			// move the slot earlier.
			if d := min(at.Sub(now), e.opts.Housekeeping); timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C:
			case <-settled:
			}
		}
	}
}

// wireReadyLocked is the earliest time t's wire pacer and the global one
// allow the next send. Called with e.mu held.
func (e *Engine) wireReadyLocked(t *tenant) time.Time {
	at := t.wire.ready()
	if g := e.gwire.ready(); g.After(at) {
		at = g
	}
	return at
}

// passLocked lets it through its gate at now, if the fence allows, taking
// its slot in the wire pacers (pending until its write is reported).
// Called with e.mu held and it's slot come.
func (e *Engine) passLocked(it *item, now time.Time) error {
	if err := e.sendableLocked(it, now); err != nil {
		return err
	}
	e.sendToken--
	it.sendToken = e.sendToken
	it.gateAt = now
	it.t.wire.takePending(now, it.sendToken)
	e.gwire.takePending(now, it.sendToken)
	it.t.attempts = append(it.t.attempts, now)
	return nil
}

// sendWritten settles it's pending send at the time now (after the
// backend's write returned); a no-op once settled. sent says the backend
// wrote the call (not a failed write, nor a settle after Place for a
// backend that reported nothing): only those go to Options.SendLog.
func (e *Engine) sendWritten(it *item, sent bool) {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if it.sendToken == 0 {
		return
	}
	it.t.wire.settle(it.sendToken, now)
	e.gwire.settle(it.sendToken, now)
	if sent && e.opts.SendLog != nil {
		e.sendLogLine = strconv.AppendInt(e.sendLogLine[:0], it.gateAt.UnixNano(), 10)
		e.sendLogLine = append(e.sendLogLine, ' ')
		e.sendLogLine = strconv.AppendInt(e.sendLogLine, now.UnixNano(), 10)
		e.sendLogLine = append(e.sendLogLine, '\n')
		_, _ = e.opts.SendLog.Write(e.sendLogLine) // a debugging aid: a failed write costs nothing else
	}
	it.sendToken = 0
	e.m.SendDelay.Observe(now.Sub(it.gateAt).Seconds())
	close(e.settled)
	e.settled = make(chan struct{})
}

// sendableLocked is the fence: nil when it may be sent now. Called with
// e.mu held (the lease check is a few atomic loads).
func (e *Engine) sendableLocked(it *item, now time.Time) error {
	if e.opts.Lease != nil {
		if err := e.opts.Lease.CheckLease(); err != nil {
			e.m.Fenced.Inc()
			return fmt.Errorf("fenced: %w", err)
		}
	}
	if now.UnixMilli() >= it.req.ExpiresUnixMs {
		return errTTLAtSend
	}
	if now.Sub(it.armed) > sendDeadline {
		return fmt.Errorf("%w: armed %s ago", errSendLate, now.Sub(it.armed).Round(time.Millisecond))
	}
	return nil
}

// leaseOK reports whether the lease allows sending now (true without a
// Lease): the dispatcher arms nothing while leadership is in doubt.
func (e *Engine) leaseOK() bool {
	return e.opts.Lease == nil || e.opts.Lease.CheckLease() == nil
}

// leaveSenders takes w out of t's queue, handing the turn on if it was
// the head.
func (e *Engine) leaveSenders(t *tenant, w *sender) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t.senders.leave(w)
}
