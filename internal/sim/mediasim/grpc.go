package mediasim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/seed-7bfc04c2/dialtone/internal/portusage"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony/simcall"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony/simcall/simpb"
)

// Server serves platforms over the simpb.MediaSim gRPC service, routing each
// call to the platform of its tenant.
type Server struct {
	simpb.UnimplementedMediaSimServer
	byTenant  map[string]*Platform
	platforms []*Platform
}

// NewServer serves the platforms, one per tenant; it panics when two have
// the same tenant. Register it on a *grpc.Server.
func NewServer(platforms ...*Platform) *Server {
	s := &Server{byTenant: map[string]*Platform{}, platforms: platforms}
	for _, p := range platforms {
		if _, dup := s.byTenant[p.Tenant()]; dup {
			panic(fmt.Sprintf("mediasim: two platforms for tenant %q", p.Tenant()))
		}
		s.byTenant[p.Tenant()] = p
	}
	return s
}

// Register registers the MediaSim service on g.
func (s *Server) Register(g *grpc.Server) { simpb.RegisterMediaSimServer(g, s) }

// PlaceCall places the call on its tenant's platform and answers when it has
// ended: RESOURCE_EXHAUSTED when every port is busy, NOT_FOUND for a tenant
// not simulated here; the client cancelling the RPC hangs the call up.
func (s *Server) PlaceCall(ctx context.Context, req *simpb.PlaceCallRequest) (*simpb.PlaceCallResponse, error) {
	return s.placeCall(ctx, req, callerOf(ctx), time.Now())
}

// callerOf is the caller id of an incoming RPC (simcall.CallerHeader).
func callerOf(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, simcall.CallerHeader); len(v) > 0 {
		return v[0]
	}
	return ""
}

// PlaceCalls places the calls of one stream (see the proto): each call
// runs in its own goroutine until it ends, is hung up by a hangup request
// or the stream ends; the handler returns once every call has ended.
func (s *Server) PlaceCalls(stream simpb.MediaSim_PlaceCallsServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	caller := callerOf(ctx)
	var (
		mu     sync.Mutex // guards hangup
		hangup = map[uint64]context.CancelFunc{}
		sendMu sync.Mutex // serialises stream.Send
		wg     sync.WaitGroup
	)
	defer wg.Wait()
	for {
		req, err := stream.Recv()
		// The call's start is its receipt, before the goroutine below
		// is scheduled: the far end's clock, as near the socket as the
		// stream lets it be.
		received := time.Now()
		if err != nil {
			cancel() // hangs up every call in progress
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if id := req.GetHangup(); id != 0 {
			mu.Lock()
			if hang := hangup[id]; hang != nil {
				hang()
			}
			mu.Unlock()
			continue
		}
		pr, id := req.GetPlace(), req.GetId()
		cctx, hang := context.WithCancel(ctx)
		mu.Lock()
		hangup[id] = hang
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer hang()
			resp, err := s.placeCall(cctx, pr, caller, received)
			mu.Lock()
			delete(hangup, id)
			mu.Unlock()
			msg := &simpb.PlaceCallsResponse{Id: id, Response: resp}
			if err != nil {
				st := status.Convert(err)
				msg.Code, msg.Message = uint32(st.Code()), st.Message()
			}
			sendMu.Lock()
			_ = stream.Send(msg) // fails only when the stream is gone, and the client with it
			sendMu.Unlock()
		}()
	}
}

func (s *Server) placeCall(ctx context.Context, req *simpb.PlaceCallRequest, caller string, received time.Time) (*simpb.PlaceCallResponse, error) {
	p, ok := s.platformFor(req.GetTenant())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "mediasim: no platform for tenant %q", req.GetTenant())
	}
	out, rec, err := p.place(ctx, telephony.Call{
		RequestID: req.GetRequestId(), CallUUID: req.GetCallUuid(), Tenant: req.GetTenant(),
		IVRProfile: req.GetIvrProfile(), Telnum: req.GetTelnum(), Ani: req.GetAni(),
		Cpd: req.GetCpd(), CustomData: req.GetCustomData(), Attempt: req.GetAttempt(),
	}, caller, received)
	switch {
	case errors.Is(err, telephony.ErrRevoked):
		return nil, status.Errorf(codes.FailedPrecondition, "mediasim: call %s was revoked", req.GetCallUuid())
	case errors.Is(err, telephony.ErrFull):
		// The client adds ErrFull back.
		return nil, status.Errorf(codes.ResourceExhausted, "mediasim: tenant %q: every port busy", req.GetTenant())
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return nil, status.FromContextError(err).Err()
	case err != nil:
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &simpb.PlaceCallResponse{Class: out.Class, Reason: out.Reason, Outcome: rec.Outcome, ServerId: rec.ServerID}, nil
}

// RevokeCall revokes a call of the tenant's platform (Platform.Revoke).
func (s *Server) RevokeCall(ctx context.Context, req *simpb.RevokeCallRequest) (*simpb.RevokeCallResponse, error) {
	p, ok := s.platformFor(req.GetTenant())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "mediasim: no platform for tenant %q", req.GetTenant())
	}
	p.mu.Lock()
	_, live := p.live[req.GetCallUuid()]
	p.mu.Unlock()
	if err := p.Revoke(ctx, req.GetTenant(), req.GetCallUuid()); err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &simpb.RevokeCallResponse{WasInProgress: live}, nil
}

// AnyTenant is the tenant of a shared platform: it serves the calls of
// every tenant that has no platform of its own (the port-usage cache
// likewise counts servers of tenant "*" for tenants without servers).
const AnyTenant = portusage.AnyTenant

// platformFor is tenant's platform, else the shared one.
func (s *Server) platformFor(tenant string) (*Platform, bool) {
	if p, ok := s.byTenant[tenant]; ok {
		return p, true
	}
	p, ok := s.byTenant[AnyTenant]
	return p, ok
}

// GetStats answers the platforms' counters.
func (s *Server) GetStats(_ context.Context, req *simpb.GetStatsRequest) (*simpb.GetStatsResponse, error) {
	ps, err := s.pick(req.GetTenant())
	if err != nil {
		return nil, err
	}
	resp := &simpb.GetStatsResponse{}
	for _, p := range ps {
		resp.Platforms = append(resp.Platforms, statsToPB(p.Stats()))
	}
	return resp, nil
}

// ListCalls answers the call log.
func (s *Server) ListCalls(_ context.Context, req *simpb.ListCallsRequest) (*simpb.ListCallsResponse, error) {
	ps, err := s.pick(req.GetTenant())
	if err != nil {
		return nil, err
	}
	resp := &simpb.ListCallsResponse{}
	for _, p := range ps {
		for _, r := range p.CallsOf(req.GetRequestId(), int(req.GetLimit())) {
			resp.Calls = append(resp.Calls, recordToPB(r))
		}
	}
	return resp, nil
}

// pick is the platform of tenant, or every platform for "".
func (s *Server) pick(tenant string) ([]*Platform, error) {
	if tenant == "" {
		return s.platforms, nil
	}
	p, ok := s.byTenant[tenant]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "mediasim: no platform for tenant %q", tenant)
	}
	return []*Platform{p}, nil
}

func statsToPB(s Stats) *simpb.PlatformStats {
	out := &simpb.PlatformStats{
		Tenant: s.Tenant, Placed: s.Placed, Refused: s.Refused, Cancelled: s.Cancelled,
		ByOutcome: s.ByOutcome, InProgress: s.InProgress, PeakInProgress: s.PeakInProgress,
		ConcurrentViolations: s.ConcurrentViolations,
	}
	for _, v := range s.Servers {
		out.Servers = append(out.Servers, &simpb.ServerStats{Id: v.ID, TotalPorts: v.TotalPorts, PortsInUse: v.PortsInUse})
	}
	return out
}

func statsFromPB(s *simpb.PlatformStats) Stats {
	out := Stats{
		Tenant: s.GetTenant(), Placed: s.GetPlaced(), Refused: s.GetRefused(), Cancelled: s.GetCancelled(),
		ByOutcome: map[string]uint64{}, InProgress: s.GetInProgress(), PeakInProgress: s.GetPeakInProgress(),
		ConcurrentViolations: s.GetConcurrentViolations(),
	}
	for k, v := range s.GetByOutcome() {
		out.ByOutcome[k] = v
	}
	for _, v := range s.GetServers() {
		out.Servers = append(out.Servers, ServerStats{ID: v.GetId(), TotalPorts: v.GetTotalPorts(), PortsInUse: v.GetPortsInUse()})
	}
	return out
}

func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromUnixMs(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func recordToPB(r CallRecord) *simpb.CallRecord {
	return &simpb.CallRecord{
		RequestId: r.RequestID, CallUuid: r.CallUUID, Attempt: r.Attempt, Telnum: r.Telnum, Tenant: r.Tenant,
		ServerId: r.ServerID, StartUnixMs: unixMs(r.Start), EndUnixMs: unixMs(r.End), State: r.State,
		Outcome: r.Outcome, Reason: r.Reason, Class: r.Class, Concurrent: r.Concurrent, Caller: r.Caller,
	}
}

func recordFromPB(r *simpb.CallRecord) CallRecord {
	return CallRecord{
		RequestID: r.GetRequestId(), CallUUID: r.GetCallUuid(), Attempt: r.GetAttempt(), Telnum: r.GetTelnum(),
		Tenant: r.GetTenant(), ServerID: r.GetServerId(), Start: fromUnixMs(r.GetStartUnixMs()),
		End: fromUnixMs(r.GetEndUnixMs()), State: r.GetState(), Outcome: r.GetOutcome(), Reason: r.GetReason(),
		Class: r.GetClass(), Concurrent: r.GetConcurrent(), Caller: r.GetCaller(),
	}
}

// Client reaches a mediasim process over gRPC: the dialer's backend
// (simcall.Client) plus the platform's counters and call log, for tests and
// tools. Safe for concurrent use.
type Client struct {
	*simcall.Client
	api simpb.MediaSimClient
}

var _ telephony.Revoker = (*Platform)(nil)

// NewClient connects (lazily) to the MediaSim service at addr (see
// simcall.NewClient for opts).
func NewClient(addr string, opts ...grpc.DialOption) (*Client, error) {
	c, err := simcall.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	return &Client{Client: c, api: simpb.NewMediaSimClient(c.Conn())}, nil
}

// Stats returns the counters of tenant's platform, or of every platform for
// "".
func (c *Client) Stats(ctx context.Context, tenant string) ([]Stats, error) {
	resp, err := c.api.GetStats(ctx, &simpb.GetStatsRequest{Tenant: tenant})
	if err != nil {
		return nil, fmt.Errorf("mediasim: stats: %w", err)
	}
	var out []Stats
	for _, s := range resp.GetPlatforms() {
		out = append(out, statsFromPB(s))
	}
	return out, nil
}

// Calls returns the call log of tenant's platform ("" for all) for
// requestID ("" for all), oldest first; limit > 0 keeps the newest limit per
// platform.
func (c *Client) Calls(ctx context.Context, tenant, requestID string, limit int) ([]CallRecord, error) {
	resp, err := c.api.ListCalls(ctx, &simpb.ListCallsRequest{Tenant: tenant, RequestId: requestID, Limit: uint32(max(limit, 0))})
	if err != nil {
		return nil, fmt.Errorf("mediasim: calls: %w", err)
	}
	var out []CallRecord
	for _, r := range resp.GetCalls() {
		out = append(out, recordFromPB(r))
	}
	return out, nil
}
