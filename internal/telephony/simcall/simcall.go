// Package simcall is the call backend that places calls on the simulated
// media platform (internal/sim/mediasim) over its gRPC service. It is the
// only part of the simulator a server links: the platform itself runs as
// its own process (dialtone-sim mediasim).
package simcall

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony/simcall/simpb"
	"github.com/seed-7bfc04c2/dialtone/portpub"
)

// CallerHeader is the gRPC metadata key carrying the caller's id.
const CallerHeader = "dialtone-caller"

// CallerDialOption makes every call through a Client say who placed it (a
// node id): the platform records it in CallRecord.Caller.
func CallerDialOption(id string) grpc.DialOption {
	return callerOption{opts: []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, CallerHeader, id), method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(metadata.AppendToOutgoingContext(ctx, CallerHeader, id), desc, cc, method, opts...)
		}),
	}}
}

// callerOption is CallerDialOption's unary and stream interceptors in one
// option. grpc offers no public way to join options, so it is a no-op
// option (grpc.EmptyDialOption) that NewClient replaces with its parts.
type callerOption struct {
	grpc.EmptyDialOption
	opts []grpc.DialOption
}

// Client is the dialer's backend on a mediasim process reached over gRPC. It
// implements telephony.Backend. Safe for concurrent use.
//
// Calls go over one PlaceCalls stream (opened on the first call, reopened
// after it breaks) rather than a PlaceCall RPC each: at thousands of calls
// per second the per-RPC cost (an HTTP/2 stream, headers, a goroutine on
// each side) was a tenth of the leader's CPU.
//
// The stream has a connection of its own, followed as it is written
// (wire.go), so that a call counts as sent when its bytes leave for the
// socket rather than when gRPC queues them.
type Client struct {
	cc  *grpc.ClientConn
	api simpb.MediaSimClient
	// callCC carries the call stream only (callAPI); wq reports its
	// messages written.
	callCC  *grpc.ClientConn
	callAPI simpb.MediaSimClient
	wq      writtenQueue

	mu     sync.Mutex
	cur    *callStream // nil or broken: open a new one
	closed bool
	wg     sync.WaitGroup // the streams' receive loops
}

// callStream is one PlaceCalls stream and the calls waiting for their ends.
type callStream struct {
	s      simpb.MediaSim_PlaceCallsClient
	cancel context.CancelFunc
	wq     *writtenQueue

	sendMu sync.Mutex // serialises Send

	mu      sync.Mutex
	last    uint64                                    // the last call id given out
	waiting map[uint64]chan *simpb.PlaceCallsResponse // by call id
	err     error                                     // set once broken
}

var (
	_ telephony.Backend = (*Client)(nil)
	_ telephony.Revoker = (*Client)(nil)
)

// NewClient connects (lazily) to the MediaSim service at addr. opts are
// applied after the defaults (plaintext, reconnect backoff capped at 1s):
// pass TLS credentials there.
func NewClient(addr string, opts ...grpc.DialOption) (*Client, error) {
	all := portpub.DefaultDialOptions()
	for _, o := range opts {
		if co, ok := o.(callerOption); ok {
			all = append(all, co.opts...)
			continue
		}
		all = append(all, o)
	}
	cc, err := grpc.NewClient(addr, all...)
	if err != nil {
		return nil, fmt.Errorf("simcall: %w", err)
	}
	c := &Client{cc: cc, api: simpb.NewMediaSimClient(cc)}
	// Last, so that it is the stream connection's dialer (a dialer in
	// opts still serves the other calls).
	callCC, err := grpc.NewClient(addr, append(all, grpc.WithContextDialer(c.dialWire))...)
	if err != nil {
		_ = cc.Close()
		return nil, fmt.Errorf("simcall: %w", err)
	}
	c.callCC, c.callAPI = callCC, simpb.NewMediaSimClient(callCC)
	return c, nil
}

// Followed reports whether the call stream's connection is followed as it
// is written (wire.go): then a call counts as sent when its bytes leave
// for the socket; otherwise (a connection the client cannot follow, such
// as TLS) when gRPC has queued them.
func (c *Client) Followed() bool {
	c.wq.mu.Lock()
	defer c.wq.mu.Unlock()
	return c.wq.exact
}

// dialWire dials the call stream's connection and follows it (wire.go).
func (c *Client) dialWire(ctx context.Context, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c.wq.started()
	return newWireConn(conn, &c.wq, unsentBytes(conn)), nil
}

// Close ends the call stream, hanging up its calls, and closes the
// connection.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	if c.cur != nil {
		c.cur.cancel()
	}
	c.mu.Unlock()
	c.wg.Wait()
	return errors.Join(c.callCC.Close(), c.cc.Close())
}

// stream returns the open call stream, opening one if there is none or the
// last one broke.
func (c *Client) stream() (*callStream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("simcall: client closed")
	}
	if cs := c.cur; cs != nil && cs.broken() == nil {
		return cs, nil
	}
	// The stream outlives any one call: its own context, ended by Close.
	ctx, cancel := context.WithCancel(context.Background())
	s, err := c.callAPI.PlaceCalls(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("simcall: opening the call stream: %w", err)
	}
	cs := &callStream{s: s, cancel: cancel, wq: &c.wq, waiting: map[uint64]chan *simpb.PlaceCallsResponse{}}
	c.cur = cs
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		cs.receive()
	}()
	return cs, nil
}

// receive hands every answer to its call until the stream breaks, then
// fails the calls still waiting.
func (cs *callStream) receive() {
	for {
		msg, err := cs.s.Recv()
		if err != nil {
			cs.mu.Lock()
			cs.err = fmt.Errorf("simcall: call stream: %w", err)
			for id, ch := range cs.waiting {
				close(ch)
				delete(cs.waiting, id)
			}
			cs.mu.Unlock()
			cs.cancel()
			// What it queued will not be written now (or was, unseen).
			cs.wq.flush()
			return
		}
		cs.mu.Lock()
		ch := cs.waiting[msg.GetId()]
		delete(cs.waiting, msg.GetId())
		cs.mu.Unlock()
		if ch != nil {
			ch <- msg // buffered: never blocks
		}
	}
}

func (cs *callStream) broken() error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.err
}

func (cs *callStream) send(req *simpb.PlaceCallsRequest) error {
	_, err := cs.sendMsg(req, nil)
	return err
}

// sendMsg queues a request, or a grpc.PreparedMsg of one, on the stream.
// queued says written will be called once its bytes are written;
// otherwise nobody follows the connection and the caller reports it.
func (cs *callStream) sendMsg(m any, written func()) (queued bool, err error) {
	cs.sendMu.Lock()
	defer cs.sendMu.Unlock()
	// In stream order: the queue's entries match the messages one for one.
	queued = cs.wq.push(written)
	if err := cs.s.SendMsg(m); err != nil {
		if queued {
			cs.wq.unpush()
		}
		return false, fmt.Errorf("simcall: call stream: %w", err)
	}
	return queued, nil
}

// Conn is the client's connection, for further MediaSim calls.
func (c *Client) Conn() *grpc.ClientConn { return c.cc }

// Place places the call and blocks until it has ended. A platform with every
// port busy answers an error wrapping telephony.ErrFull; an unreachable
// platform or an unknown tenant an ordinary error; when ctx ends first the
// call is hung up and ctx's error returned. The call's Gate runs just
// before the request is sent; its refusal (telephony.ErrNotSent) sends
// nothing.
func (c *Client) Place(ctx context.Context, call telephony.Call) (telephony.Outcome, error) {
	req := &simpb.PlaceCallRequest{
		RequestId: call.RequestID, CallUuid: call.CallUUID, Tenant: call.Tenant, IvrProfile: call.IVRProfile,
		Telnum: call.Telnum, Ani: call.Ani, Cpd: call.Cpd, CustomData: call.CustomData, Attempt: call.Attempt,
	}
	cs, err := c.stream()
	if err != nil {
		return telephony.Outcome{}, err
	}
	ch := make(chan *simpb.PlaceCallsResponse, 1)
	cs.mu.Lock()
	if cs.err != nil {
		cs.mu.Unlock()
		return telephony.Outcome{}, cs.err
	}
	cs.last++
	id := cs.last
	cs.waiting[id] = ch
	cs.mu.Unlock()
	forget := func() {
		cs.mu.Lock()
		delete(cs.waiting, id)
		cs.mu.Unlock()
	}
	// The request is built, encoded (outside the turn: the turn holds
	// back every later send of the tenant) and the stream open: the send
	// is paced and fenced now, and the stream's Send (which queues the
	// message to gRPC's transport goroutine, batching frames; there is no
	// later moment to report) runs in the call's turn at the gate.
	msg := &grpc.PreparedMsg{}
	if err := msg.Encode(cs.s, &simpb.PlaceCallsRequest{Id: id, Place: req}); err != nil {
		forget()
		return telephony.Outcome{}, fmt.Errorf("simcall: encoding the call: %w", err)
	}
	if err := call.SendQueue(ctx, func() error {
		queued, err := cs.sendMsg(msg, call.Written)
		if err == nil && !queued {
			call.Written() // queued is all this client can see
		}
		return err
	}); err != nil {
		forget()
		return telephony.Outcome{}, err
	}
	select {
	case msg, ok := <-ch:
		if !ok {
			if cerr := ctx.Err(); cerr != nil {
				return telephony.Outcome{}, cerr
			}
			return telephony.Outcome{}, cs.broken()
		}
		if code := codes.Code(msg.GetCode()); code != codes.OK {
			return telephony.Outcome{}, placeError(code, msg.GetMessage())
		}
		return telephony.Outcome{Class: msg.GetResponse().GetClass(), Reason: msg.GetResponse().GetReason()}, nil
	case <-ctx.Done():
		forget()
		// Hang up: best effort, as a cancelled PlaceCall RPC was.
		_ = cs.send(&simpb.PlaceCallsRequest{Hangup: id})
		return telephony.Outcome{}, ctx.Err()
	}
}

// placeError is the error of a call the platform answered with code.
func placeError(code codes.Code, msg string) error {
	switch code {
	case codes.ResourceExhausted:
		return fmt.Errorf("%s: %w", msg, telephony.ErrFull)
	case codes.FailedPrecondition:
		return fmt.Errorf("%s: %w", msg, telephony.ErrRevoked)
	}
	return fmt.Errorf("simcall: place call: %w", status.Error(code, msg))
}

// Revoke hangs up the call with callUUID on tenant's platform if it is in
// progress (returning once it has ended) and makes the platform refuse it
// from now on.
func (c *Client) Revoke(ctx context.Context, tenant, callUUID string) error {
	if _, err := c.api.RevokeCall(ctx, &simpb.RevokeCallRequest{Tenant: tenant, CallUuid: callUUID}); err != nil {
		return fmt.Errorf("simcall: revoke call %s: %w", callUUID, err)
	}
	return nil
}
