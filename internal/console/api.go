package console

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// API is what the console reads and changes: a subset of Dialtone's public
// API. Every call runs with the viewer's credential (see WithCredential), so
// the API's own authentication, roles and tenant scoping apply to the
// console exactly as they do to REST.
type API interface {
	ClusterStatus(ctx context.Context) (*pb.ClusterStatus, error)
	Members(ctx context.Context) (*pb.ListMembersResponse, error)
	DialerStatus(ctx context.Context) (*pb.DialerStatus, error)
	Usage(ctx context.Context) (*pb.Usage, error)
	Servers(ctx context.Context, tenant string) (*pb.ListServersResponse, error)
	Entitlements(ctx context.Context) (*pb.ListEntitlementsResponse, error)
	Alerts(ctx context.Context) (*pb.ListAlertsResponse, error)
	ListRequests(ctx context.Context, req *pb.ListRequestsRequest) (*pb.ListRequestsResponse, error)
	GetRequest(ctx context.Context, tenant, id string) (*pb.GetRequestResponse, error)
	CancelRequest(ctx context.Context, tenant, id string) (*pb.CancelRequestResponse, error)
	ListPacing(ctx context.Context) (*pb.ListPacingResponse, error)
	SetPacing(ctx context.Context, tenant string, p *pb.Pacing) (*pb.SetPacingResponse, error)
}

// WithCredential makes the API calls made with ctx carry the viewer's
// Authorization header value (empty: none, for auth mode none).
func WithCredential(ctx context.Context, authorization string) context.Context {
	if authorization == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
}

// GRPCAPI implements API over a connection to a node's own gRPC server,
// the one the REST gateway uses, so that the interceptors (authentication,
// authorisation, metrics) run for every console read and write.
type GRPCAPI struct {
	requests pb.RequestServiceClient
	cluster  pb.ClusterServiceClient
	ports    pb.PortUsageServiceClient
	settings pb.PortSettingsServiceClient
	dialer   pb.DialerServiceClient
}

// NewGRPCAPI returns the API over conn.
func NewGRPCAPI(conn grpc.ClientConnInterface) *GRPCAPI {
	return &GRPCAPI{
		requests: pb.NewRequestServiceClient(conn),
		cluster:  pb.NewClusterServiceClient(conn),
		ports:    pb.NewPortUsageServiceClient(conn),
		settings: pb.NewPortSettingsServiceClient(conn),
		dialer:   pb.NewDialerServiceClient(conn),
	}
}

func (a *GRPCAPI) ClusterStatus(ctx context.Context) (*pb.ClusterStatus, error) {
	return a.cluster.GetStatus(ctx, &pb.GetStatusRequest{})
}

func (a *GRPCAPI) Members(ctx context.Context) (*pb.ListMembersResponse, error) {
	return a.cluster.ListMembers(ctx, &pb.ListMembersRequest{})
}

func (a *GRPCAPI) DialerStatus(ctx context.Context) (*pb.DialerStatus, error) {
	return a.dialer.GetDialerStatus(ctx, &pb.GetDialerStatusRequest{})
}

func (a *GRPCAPI) Usage(ctx context.Context) (*pb.Usage, error) {
	return a.ports.GetUsage(ctx, &pb.GetUsageRequest{})
}

func (a *GRPCAPI) Servers(ctx context.Context, tenant string) (*pb.ListServersResponse, error) {
	return a.ports.ListServers(ctx, &pb.ListServersRequest{Tenant: tenant})
}

func (a *GRPCAPI) Entitlements(ctx context.Context) (*pb.ListEntitlementsResponse, error) {
	return a.settings.ListEntitlements(ctx, &pb.ListEntitlementsRequest{})
}

func (a *GRPCAPI) Alerts(ctx context.Context) (*pb.ListAlertsResponse, error) {
	return a.settings.ListAlerts(ctx, &pb.ListAlertsRequest{})
}

func (a *GRPCAPI) ListRequests(ctx context.Context, req *pb.ListRequestsRequest) (*pb.ListRequestsResponse, error) {
	return a.requests.ListRequests(ctx, req)
}

func (a *GRPCAPI) GetRequest(ctx context.Context, tenant, id string) (*pb.GetRequestResponse, error) {
	return a.requests.GetRequest(ctx, &pb.GetRequestRequest{Tenant: tenant, Id: id})
}

func (a *GRPCAPI) CancelRequest(ctx context.Context, tenant, id string) (*pb.CancelRequestResponse, error) {
	return a.requests.CancelRequest(ctx, &pb.CancelRequestRequest{Tenant: tenant, Id: id})
}

func (a *GRPCAPI) ListPacing(ctx context.Context) (*pb.ListPacingResponse, error) {
	return a.dialer.ListPacing(ctx, &pb.ListPacingRequest{})
}

func (a *GRPCAPI) SetPacing(ctx context.Context, tenant string, p *pb.Pacing) (*pb.SetPacingResponse, error) {
	return a.dialer.SetPacing(ctx, &pb.SetPacingRequest{Tenant: tenant, Pacing: p})
}
