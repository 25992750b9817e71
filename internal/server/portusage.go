package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/auth"
	"github.com/seed-7bfc04c2/dialtone/internal/portusage"
)

// Limits on a port report.
const (
	MaxServerIDLen    = 128
	MaxServerAddrLen  = 256
	MaxPortsPerServer = 1_000_000
)

var serverIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@-]*$`)

// Entitlements gives a tenant's licensed self-service ports (replicated
// settings; the FSM provides them). ok is false when none is set.
type Entitlements interface {
	Entitlement(tenant string) (uint32, bool)
}

// EntitlementLister optionally lists every entitlement, so tenants that
// are licensed but have no media server yet still count in the totals.
type EntitlementLister interface {
	EntitlementList() []*pb.Entitlement
}

// PortUsageOptions configure the port-usage service.
type PortUsageOptions struct {
	// NodeID names this node in acks and ServerUsage.received_by.
	NodeID string
	// Entitlements may be nil (no entitlements known: 0).
	Entitlements Entitlements
	// Relay, when set, gets every report this node accepted from a
	// publisher, for the peers.
	Relay func(portusage.Report)
	// Metrics may be nil.
	Metrics *portusage.Metrics
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// PortUsage implements PortUsageService over the node's in-memory cache.
type PortUsage struct {
	pb.UnimplementedPortUsageServiceServer
	cache *portusage.Cache
	opts  PortUsageOptions
}

// NewPortUsage returns the port-usage service.
func NewPortUsage(cache *portusage.Cache, opts PortUsageOptions) *PortUsage {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &PortUsage{cache: cache, opts: opts}
}

// ValidateReport checks one report; the error names the field.
func ValidateReport(r *pb.PortReport) error {
	var fe fieldErrors
	switch {
	case r.GetServerId() == "":
		fe.add("server_id", "is required")
	case len(r.ServerId) > MaxServerIDLen || !serverIDPattern.MatchString(r.ServerId):
		fe.add("server_id", "%q must be 1-%d letters, digits, '.', '_', ':', '@' or '-', starting with a letter or digit", truncate(r.ServerId, 80), MaxServerIDLen)
	}
	if len(r.GetAddress()) > MaxServerAddrLen || !printable(r.GetAddress()) {
		fe.add("address", "must be at most %d printable characters", MaxServerAddrLen)
	}
	// "*" is a shared server: it serves every tenant without servers of
	// its own (portusage.AnyTenant).
	if err := ValidateTenant(r.GetTenant()); err != nil && r.GetTenant() != portusage.AnyTenant {
		var f FieldError
		if errors.As(err, &f) {
			fe = append(fe, f)
		}
	}
	if r.GetTotalPorts() > MaxPortsPerServer {
		fe.add("total_ports", "%d exceeds the limit of %d", r.TotalPorts, MaxPortsPerServer)
	}
	if r.GetPortsInUse() > r.GetTotalPorts() {
		fe.add("ports_in_use", "%d exceeds total_ports %d", r.PortsInUse, r.TotalPorts)
	}
	if r.GetTimeUnixMs() < 0 {
		fe.add("time_unix_ms", "must not be negative")
	}
	return fe.status()
}

// Publish takes a publisher's stream of reports: each valid report is
// stamped with this node's clock, cached, relayed to the peers and
// acknowledged. An invalid report ends the stream with InvalidArgument
// naming the field. (Authz checks each report's tenant before it gets here.)
func (s *PortUsage) Publish(stream pb.PortUsageService_PublishServer) error {
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ValidateReport(r); err != nil {
			s.opts.Metrics.Count(portusage.EventInvalid, 1)
			st := status.Convert(err)
			return status.ErrorProto(withMessage(st, fmt.Sprintf("report seq %d: %s", r.GetSeq(), st.Message())))
		}
		now := s.opts.Now()
		rep := portusage.Report{
			ServerID: r.ServerId, Address: r.Address, Tenant: r.Tenant,
			Total: r.TotalPorts, InUse: r.PortsInUse,
			TimeUnixMs: r.TimeUnixMs, Seq: r.Seq,
			ReceivedUnixMs: now.UnixMilli(), ReceivedBy: s.opts.NodeID,
		}
		res := s.cache.Ingest(rep)
		s.opts.Metrics.CountResult(res, false)
		if res == portusage.Accepted && s.opts.Relay != nil {
			s.opts.Relay(rep)
		}
		// Duplicates are acknowledged too: a publisher that re-sends after
		// a failover must be able to move on.
		if err := stream.Send(&pb.PublishAck{Seq: r.Seq, NodeId: s.opts.NodeID, TimeUnixMs: now.UnixMilli()}); err != nil {
			return err
		}
	}
}

// IngestRelayed takes a packet of reports relayed by a peer.
func (s *PortUsage) IngestRelayed(packet []byte) {
	reps, err := portusage.DecodeReports(packet)
	if err != nil {
		s.opts.Metrics.Count(portusage.EventMalformedRelay, 1)
		return
	}
	for _, r := range reps {
		s.opts.Metrics.CountResult(s.cache.Ingest(r), true)
	}
}

// visibility returns a tenant filter for the caller: nil (everything) for a
// principal with tenant "*" or when auth is off (no principal in ctx).
func visibility(ctx context.Context) func(string) bool {
	p, ok := auth.FromContext(ctx)
	if !ok || p.CanAccess("*") {
		return nil
	}
	return p.CanAccess
}

func (s *PortUsage) entitlement(tenant string) uint32 {
	if s.opts.Entitlements == nil {
		return 0
	}
	v, _ := s.opts.Entitlements.Entitlement(tenant)
	return v
}

func windowPB(w portusage.Stats) *pb.WindowStats {
	return &pb.WindowStats{MinInUse: w.MinInUse, MaxInUse: w.MaxInUse, AvgInUse: w.AvgInUse, WindowSeconds: int32(w.WindowSeconds)}
}

func (s *PortUsage) tenantPB(a portusage.Aggregate) *pb.TenantUsage {
	return &pb.TenantUsage{
		Tenant: a.Tenant, TotalPorts: a.Total, PortsInUse: a.InUse, AvailablePorts: a.Available(),
		EntitledPorts: s.entitlement(a.Tenant), Servers: a.Servers, StaleServers: a.StaleServers,
		Window: windowPB(a.Window),
	}
}

// GetUsage returns the deployment aggregate with a row per tenant. A caller
// not scoped to every tenant ("*") sees only its tenants, and the totals
// are over those tenants.
func (s *PortUsage) GetUsage(ctx context.Context, _ *pb.GetUsageRequest) (*pb.Usage, error) {
	keep := visibility(ctx)
	all, tenants := s.cache.Usage(keep)
	out := &pb.Usage{
		NodeId: s.opts.NodeID, TotalPorts: all.Total, PortsInUse: all.InUse, AvailablePorts: all.Available(),
		Servers: all.Servers, StaleServers: all.StaleServers, Window: windowPB(all.Window),
	}
	seen := map[string]bool{}
	for _, t := range tenants {
		row := s.tenantPB(t)
		out.Tenants = append(out.Tenants, row)
		out.EntitledPorts += row.EntitledPorts
		seen[t.Tenant] = true
	}
	if l, ok := s.opts.Entitlements.(EntitlementLister); ok {
		for _, e := range l.EntitlementList() {
			if seen[e.Tenant] || (keep != nil && !keep(e.Tenant)) {
				continue
			}
			out.Tenants = append(out.Tenants, &pb.TenantUsage{Tenant: e.Tenant, EntitledPorts: e.LicensedPorts, Window: windowPB(portusage.Stats{WindowSeconds: all.Window.WindowSeconds})})
			out.EntitledPorts += e.LicensedPorts
		}
	}
	return out, nil
}

// GetTenantUsage returns one tenant's aggregate (zeros when it has no
// server). The interceptor has checked the caller may read the tenant.
func (s *PortUsage) GetTenantUsage(_ context.Context, req *pb.GetTenantUsageRequest) (*pb.TenantUsage, error) {
	if err := ValidateTenant(req.GetTenant()); err != nil {
		return nil, fieldErrors{err.(FieldError)}.status()
	}
	a, _ := s.cache.TenantUsage(req.Tenant)
	return s.tenantPB(a), nil
}

func serverPB(v portusage.ServerView) *pb.ServerUsage {
	out := &pb.ServerUsage{
		Id: v.ID, Address: v.Address, Tenant: v.Tenant, Stale: v.Stale,
		LastReportUnixMs: v.LastReportUnixMs, TotalPorts: v.Total, PortsInUse: v.InUse,
		AvailablePorts: v.Available(), Window: windowPB(v.Window), ReceivedBy: v.ReceivedBy,
	}
	for _, x := range v.Series {
		out.Series = append(out.Series, &pb.Sample{SecondUnix: x.SecondUnix, TotalPorts: x.Total, PortsInUse: x.InUse})
	}
	return out
}

// ListServers lists servers (stale ones included, marked), of one tenant
// when named; without a tenant the caller needs tenant "*" (the
// interceptor enforces it).
func (s *PortUsage) ListServers(ctx context.Context, req *pb.ListServersRequest) (*pb.ListServersResponse, error) {
	if req.GetTenant() != "" {
		if err := ValidateTenant(req.Tenant); err != nil {
			return nil, fieldErrors{err.(FieldError)}.status()
		}
	}
	out := &pb.ListServersResponse{}
	for _, v := range s.cache.Servers(req.GetTenant(), visibility(ctx), false) {
		out.Servers = append(out.Servers, serverPB(v))
	}
	return out, nil
}

// GetServer returns one server with its per-second series. Another
// tenant's server is NotFound, as an unknown one is.
func (s *PortUsage) GetServer(ctx context.Context, req *pb.GetServerRequest) (*pb.ServerUsage, error) {
	if req.GetId() == "" {
		return nil, fieldErrors{{Field: "id", Reason: "is required"}}.status()
	}
	v, ok := s.cache.Server(req.Id)
	if keep := visibility(ctx); ok && keep != nil && !keep(v.Tenant) {
		ok = false
	}
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no media server %q", truncate(req.Id, 80))
	}
	return serverPB(v), nil
}

// Cache is the cache the service reads (for other front ends).
func (s *PortUsage) Cache() *portusage.Cache { return s.cache }

func withMessage(st *status.Status, msg string) *spb.Status {
	p := st.Proto()
	p.Message = msg
	return p
}
