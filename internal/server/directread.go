package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// DirectReads are the services behind the two hot follower reads, GET
// /v1/port-usage and GET /v1/tenants/{tenant}/requests/{id}. The REST
// gateway normally reaches every RPC through a loopback gRPC connection,
// so that the server's interceptors apply; for these two reads that hop
// (HTTP/2 framing, protobuf encode and decode on both sides, a stream per
// call) cost more than the read itself. With DirectReads set, the two
// routes go to a second gateway mux registered in-process
// (Register…HandlerServer): the same path and query parsing, marshaler and
// error handler as the loopback gateway, so the answers are the same bytes,
// with Unary (the gRPC server's own interceptor chain: metrics, panics,
// authentication and authorisation) run around each call in-process.
type DirectReads struct {
	Requests  pb.RequestServiceServer
	PortUsage pb.PortUsageServiceServer
	// Unary is the gRPC server's interceptor chain (ChainUnary of the
	// server's interceptors, in the server's order).
	Unary grpc.UnaryServerInterceptor
}

// ChainUnary runs interceptors in order around a handler, as
// grpc.ChainUnaryInterceptor does on the server.
func ChainUnary(icps ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		h := handler
		for i := len(icps) - 1; i >= 0; i-- {
			icp, next := icps[i], h
			h = func(ctx context.Context, req any) (any, error) { return icp(ctx, req, info, next) }
		}
		return h(ctx, req)
	}
}

// directRequests serves only GetRequest; every other method of the
// in-process mux is Unimplemented, so a route sent there by mistake can
// never skip the interceptors.
type directRequests struct {
	pb.UnimplementedRequestServiceServer
	d DirectReads
}

var getRequestInfo = &grpc.UnaryServerInfo{FullMethod: pb.RequestService_GetRequest_FullMethodName}

func (s directRequests) GetRequest(ctx context.Context, req *pb.GetRequestRequest) (*pb.GetRequestResponse, error) {
	resp, err := s.d.Unary(ctx, req, getRequestInfo, func(ctx context.Context, req any) (any, error) {
		return s.d.Requests.GetRequest(ctx, req.(*pb.GetRequestRequest))
	})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.GetRequestResponse), nil
}

// directPortUsage serves only GetUsage (see directRequests).
type directPortUsage struct {
	pb.UnimplementedPortUsageServiceServer
	d DirectReads
}

var getUsageInfo = &grpc.UnaryServerInfo{FullMethod: pb.PortUsageService_GetUsage_FullMethodName}

func (s directPortUsage) GetUsage(ctx context.Context, req *pb.GetUsageRequest) (*pb.Usage, error) {
	resp, err := s.d.Unary(ctx, req, getUsageInfo, func(ctx context.Context, req any) (any, error) {
		return s.d.PortUsage.GetUsage(ctx, req.(*pb.GetUsageRequest))
	})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.Usage), nil
}

// directReadPatterns are the routes the in-process mux takes over.
const (
	directUsagePattern   = "GET /v1/port-usage"
	directRequestPattern = "GET /v1/tenants/{tenant}/requests/{id}"
)

// directReadHandlers returns the handlers of the two hot reads: the
// in-process gateway mux, or the loopback gateway (gw) for anything the
// in-process one must not see (a custom verb, a HEAD).
func directReadHandlers(ctx context.Context, d DirectReads, muxOpts []runtime.ServeMuxOption, gw http.Handler) (map[string]http.Handler, error) {
	local := runtime.NewServeMux(muxOpts...)
	if err := pb.RegisterRequestServiceHandlerServer(ctx, local, directRequests{d: d}); err != nil {
		return nil, err
	}
	if err := pb.RegisterPortUsageServiceHandlerServer(ctx, local, directPortUsage{d: d}); err != nil {
		return nil, err
	}
	pick := func(ok func(*http.Request) bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !ok(r) {
				gw.ServeHTTP(w, r)
				return
			}
			local.ServeHTTP(w, r)
		})
	}
	return map[string]http.Handler{
		directUsagePattern: pick(func(*http.Request) bool { return true }),
		// "{id}" is one whole segment for net/http; the gateway would read a
		// trailing ":verb" as a custom method, so leave those to it.
		directRequestPattern: pick(func(r *http.Request) bool { return !strings.Contains(r.PathValue("id"), ":") }),
	}, nil
}
