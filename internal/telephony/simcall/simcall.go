// Package simcall is the call backend that places calls on the simulated
// media platform (internal/sim/mediasim) over its gRPC service. It is the
// only part of the simulator a server links: the platform itself runs as
// its own process (dialtone-sim mediasim).
package simcall

import (
	"context"
	"fmt"

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
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(metadata.AppendToOutgoingContext(ctx, CallerHeader, id), method, req, reply, cc, opts...)
	})
}

// Client is the dialer's backend on a mediasim process reached over gRPC. It
// implements telephony.Backend. Safe for concurrent use.
type Client struct {
	cc  *grpc.ClientConn
	api simpb.MediaSimClient
}

var (
	_ telephony.Backend = (*Client)(nil)
	_ telephony.Revoker = (*Client)(nil)
)

// NewClient connects (lazily) to the MediaSim service at addr. opts are
// applied after the defaults (plaintext, reconnect backoff capped at 1s):
// pass TLS credentials there.
func NewClient(addr string, opts ...grpc.DialOption) (*Client, error) {
	cc, err := grpc.NewClient(addr, append(portpub.DefaultDialOptions(), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("simcall: %w", err)
	}
	return &Client{cc: cc, api: simpb.NewMediaSimClient(cc)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.cc.Close() }

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
	// The request is built; the send is paced and fenced now.
	if err := call.Send(ctx); err != nil {
		return telephony.Outcome{}, err
	}
	// The unary call's request is written by gRPC's transport goroutine
	// (which batches frames), and its reply comes only at the call's end:
	// there is no later moment to report than this (see BENCHMARKS.md).
	call.Written()
	resp, err := c.api.PlaceCall(ctx, req)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return telephony.Outcome{}, cerr
		}
		switch status.Code(err) {
		case codes.ResourceExhausted:
			return telephony.Outcome{}, fmt.Errorf("%s: %w", status.Convert(err).Message(), telephony.ErrFull)
		case codes.FailedPrecondition:
			return telephony.Outcome{}, fmt.Errorf("%s: %w", status.Convert(err).Message(), telephony.ErrRevoked)
		}
		return telephony.Outcome{}, fmt.Errorf("simcall: place call: %w", err)
	}
	return telephony.Outcome{Class: resp.GetClass(), Reason: resp.GetReason()}, nil
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
