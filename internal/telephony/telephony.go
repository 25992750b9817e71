// Package telephony defines how the dialer places a call and learns its
// outcome, independently of the media platform behind it (the simulated
// media platform, or SIP).
package telephony

import (
	"context"
	"errors"
	"fmt"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Call is one call attempt to place.
type Call struct {
	RequestID  string
	CallUUID   string // unique per attempt, chosen and committed by the dialer before the call is placed
	Tenant     string
	IVRProfile string
	Telnum     string
	Ani        string
	Cpd        *fsmpb.Cpd
	CustomData []*fsmpb.KeyValue
	Attempt    uint32

	// Gate, when set, is the dialer's pacer and fence at the wire. A
	// backend calls it through Send immediately before the first byte of
	// the call leaves the process (the INVITE's write, the simulator's
	// request), after everything that may delay the send (its own
	// limiters, building the request). It waits for the call's CAPS slot
	// at that moment and checks that this node still leads with a fresh
	// lease. An error means "do not send": the backend returns it (Send
	// wraps it in ErrNotSent) without sending anything, and the dialer
	// handles the attempt as not placed. write, when not nil, is the send
	// itself (SendWrite, SendQueue): the gate runs it once the send is
	// allowed and before the next call's turn, and counts the send as
	// written when it returns, unless queued: then the backend reports
	// the write with Written (as after Send).
	Gate func(ctx context.Context, write func() error, queued bool) error
	// Sent, when set, is told (through Written) that the send the Gate
	// allowed has been written: the write to the socket returned. The
	// dialer's windows hold the send as pending until then (the time
	// between the gate and the socket varies on a loaded machine).
	Sent func()

	// Dialog, when set, is called by a backend whose calls have dialogs
	// (SIP) each time a leg's replicable state changes: its INVITE sent,
	// the dialog established, confirmed, refreshed. The dialer commits
	// the latest state per leg, so that a new leader can adopt the call
	// (see dialer.Adopter). It must not block.
	Dialog func(*fsmpb.DialogState)
	// DialogCommit, when set (with Dialog), commits leg states and returns
	// once they are replicated (nil) or cannot be (the error; ctx ended,
	// leadership lost). A backend writes ahead with it where the far end
	// must not learn of a change no successor would know: the ACK of a
	// 2xx (the call is up) and the 200 to a BYE (the call is over).
	DialogCommit func(ctx context.Context, states []*fsmpb.DialogState) error
}

// Written reports, after Send returned nil, that the call's first request
// has been written (or its write failed): as soon as the write returned.
func (c Call) Written() {
	if c.Sent != nil {
		c.Sent()
	}
}

// Send runs the call's Gate, if any: nil means the call may leave now,
// and the backend reports the write with Written. An error wraps
// ErrNotSent and the gate's reason; the backend must then return it
// without sending.
func (c Call) Send(ctx context.Context) error {
	if c.Gate == nil {
		return nil
	}
	if err := c.Gate(ctx, nil, false); err != nil {
		return fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	return nil
}

// SendWrite is Send for a backend whose send is one short write that
// does not wait for the far end (a message queued on a stream): the Gate
// runs write in the call's turn, so the pacer stamps the write itself and
// no other call's send comes between. It returns an error wrapping
// ErrNotSent when the gate refused (write was not called), or write's
// error. Written is implied.
func (c Call) SendWrite(ctx context.Context, write func() error) error {
	return c.sendIn(ctx, write, false)
}

// SendQueue is SendWrite for a backend whose write only queues the
// request for a writer it does not run (gRPC's transport goroutine, which
// may write several queued messages at once, late, on a loaded machine):
// the Gate runs queue in the call's turn, and the backend reports with
// Written when the request's bytes have been written to the socket (or
// will not be), so the dialer's windows hold the send until it has left.
// When queue fails nothing is pending: Written is not needed.
func (c Call) SendQueue(ctx context.Context, queue func() error) error {
	return c.sendIn(ctx, queue, true)
}

func (c Call) sendIn(ctx context.Context, write func() error, queued bool) error {
	if c.Gate == nil {
		err := write()
		if !queued || err != nil {
			c.Written()
		}
		return err
	}
	var called bool
	var werr error
	err := c.Gate(ctx, func() error {
		called = true
		werr = write()
		return werr
	}, queued)
	if err != nil && !called {
		return fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	return werr
}

// ErrNotSent is returned (wrapped) by Place when the call's Gate refused
// the send: nothing of the call left the process.
var ErrNotSent = errors.New("call not sent")

// ReasonNotSent is the reason the dialer records for an attempt whose
// send its gate refused (ErrNotSent): interrupted, not counted, and not a
// call the far end ever saw, so a notification's Status leaves it out.
const ReasonNotSent = "NotSent"

// Outcome is how an attempt ended: its class drives retries; Reason is the
// seed's per-attempt reason ("RingNoAnswer", "DestinationBusy",
// "AnsweringMachineDetected", "SITInvalidNumber", ...), reported in the
// notification's Status.
type Outcome struct {
	Class  fsmpb.OutcomeClass
	Reason string
}

// Backend places calls. Place blocks until the call has ended (or ctx is
// done) and reports its outcome. An error means the platform could not be
// asked at all; the dialer records it as an internal failure. Safe for
// concurrent use.
type Backend interface {
	Place(ctx context.Context, c Call) (Outcome, error)
}

// ErrFull is returned (wrapped) by a backend that refused a call because
// every port was busy: the oversubscription the port budget must prevent.
var ErrFull = errors.New("media platform full")

// Revoker is implemented by backends that can end a call placed by another
// process. A new leader revokes the calls its predecessor left in progress
// before it retries their requests: a predecessor that was paused or cut
// off, rather than dead, cannot hang them up itself. Revoke hangs the call
// up if it is in progress and returns once it has ended (nil also when
// there is no such call), and makes the platform refuse any later Place
// with that call UUID (wrapping ErrRevoked), so a deposed leader that wakes
// up cannot place it either.
type Revoker interface {
	Revoke(ctx context.Context, tenant, callUUID string) error
}

// ErrRevoked is returned (wrapped) by Place for a call UUID that was revoked.
var ErrRevoked = errors.New("call revoked by a newer leader")
