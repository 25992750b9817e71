package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// DirectReads are the services behind the two hot follower reads, GET
// /v1/port-usage and GET /v1/tenants/{tenant}/requests/{id}. The REST
// gateway normally reaches every RPC through a loopback gRPC connection,
// so that the server's interceptors apply; for these two reads that hop
// (HTTP/2 framing, protobuf encode and decode on both sides, a stream per
// call) cost more than the read itself. With DirectReads set, the two
// routes are served in-process, with the gRPC server's own interceptors
// (metrics, panics, authentication and authorisation) run around each call:
// the plain GET every client sends by fastReads (no gateway mux, a
// hand-written encoder; see plainRead), any other form of it by a second
// gateway mux registered in-process (Register…HandlerServer) with the
// loopback gateway's path and query parsing, marshaler and error handler.
// Either way the answers are the loopback gateway's bytes.
type DirectReads struct {
	Requests  pb.RequestServiceServer
	PortUsage pb.PortUsageServiceServer
	// Interceptors are the gRPC server's unary interceptors, in the
	// server's order (grpc.ChainUnaryInterceptor's).
	Interceptors []grpc.UnaryServerInterceptor
}

// bindUnary wraps handler in the interceptors (the first outermost) for
// one method, once: the chain's closures are built here rather than on
// every call as ChainUnary's are.
func bindUnary(icps []grpc.UnaryServerInterceptor, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) grpc.UnaryHandler {
	h := handler
	for i := len(icps) - 1; i >= 0; i-- {
		icp, next := icps[i], h
		h = func(ctx context.Context, req any) (any, error) { return icp(ctx, req, info, next) }
	}
	return h
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
	d     DirectReads
	unary grpc.UnaryServerInterceptor
}

var getRequestInfo = &grpc.UnaryServerInfo{FullMethod: pb.RequestService_GetRequest_FullMethodName}

func (s directRequests) GetRequest(ctx context.Context, req *pb.GetRequestRequest) (*pb.GetRequestResponse, error) {
	resp, err := s.unary(ctx, req, getRequestInfo, func(ctx context.Context, req any) (any, error) {
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
	d     DirectReads
	unary grpc.UnaryServerInterceptor
}

var getUsageInfo = &grpc.UnaryServerInfo{FullMethod: pb.PortUsageService_GetUsage_FullMethodName}

func (s directPortUsage) GetUsage(ctx context.Context, req *pb.GetUsageRequest) (*pb.Usage, error) {
	resp, err := s.unary(ctx, req, getUsageInfo, func(ctx context.Context, req any) (any, error) {
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

// directReadHandlers returns the handlers of the two hot reads: the fast
// path (fastReads) for a plain GET, the in-process gateway mux for any other
// form of it, or the loopback gateway (gw) for anything the in-process one
// must not see (a custom verb, a HEAD).
func directReadHandlers(ctx context.Context, d DirectReads, muxOpts []runtime.ServeMuxOption, marshaler runtime.Marshaler, gw http.Handler) (map[string]http.Handler, error) {
	local := runtime.NewServeMux(muxOpts...)
	unary := ChainUnary(d.Interceptors...)
	if err := pb.RegisterRequestServiceHandlerServer(ctx, local, directRequests{d: d, unary: unary}); err != nil {
		return nil, err
	}
	if err := pb.RegisterPortUsageServiceHandlerServer(ctx, local, directPortUsage{d: d, unary: unary}); err != nil {
		return nil, err
	}
	f := newFastReads(d, local, marshaler)
	pick := func(ok func(*http.Request) bool, fast http.HandlerFunc) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Method != http.MethodGet || !ok(r):
				gw.ServeHTTP(w, r)
			case plainRead(r):
				fast(w, r)
			default:
				local.ServeHTTP(w, r)
			}
		})
	}
	return map[string]http.Handler{
		directUsagePattern: pick(func(*http.Request) bool { return true }, f.serveUsage),
		// "{id}" is one whole segment for net/http; the gateway would read a
		// trailing ":verb" as a custom method, so leave those to it.
		directRequestPattern: pick(func(r *http.Request) bool { return !strings.Contains(r.PathValue("id"), ":") }, f.serveRequest),
	}, nil
}

// plainRead reports whether r is the plain form of a hot read, the one the
// fast path serves exactly as the gateway would: no query (the gateway
// parses and validates one by reflection), nothing percent-escaped in the
// path (the gateway's unescaping differs from net/http's for reserved
// characters), no TE (the gateway then sends trailers) and no Grpc-Timeout
// (the gateway turns it into a deadline or a 400). Every other form goes
// through the in-process gateway mux.
func plainRead(r *http.Request) bool {
	return r.URL.RawQuery == "" && r.URL.RawPath == "" && !strings.Contains(r.RequestURI, "%") &&
		len(r.Header["Te"]) == 0 && len(r.Header["Grpc-Timeout"]) == 0
}

// fastReads serves the plain form of the two hot reads without the gateway
// mux: the path values come from net/http's pattern, the interceptor chain
// runs as on every RPC, and the answer is written by the hand-written
// encoder (directjson.go), byte for byte what the gateway's marshaler
// writes. Errors go to the gateway's own error handler. What it leaves out,
// because nothing on these two calls reads it: the gateway's request
// metadata other than "authorization" (x-forwarded-*, grpcgateway-*
// headers), its RPC-method and path-pattern context values, and a
// grpc.ServerTransportStream (neither handler sets headers or trailers).
type fastReads struct {
	d         DirectReads
	local     *runtime.ServeMux
	marshaler runtime.Marshaler
	// The handlers wrapped in the interceptor chain, built once.
	usage, request grpc.UnaryHandler
}

func newFastReads(d DirectReads, local *runtime.ServeMux, marshaler runtime.Marshaler) *fastReads {
	return &fastReads{
		d: d, local: local, marshaler: marshaler,
		usage: bindUnary(d.Interceptors, getUsageInfo, func(ctx context.Context, req any) (any, error) {
			return d.PortUsage.GetUsage(ctx, req.(*pb.GetUsageRequest))
		}),
		request: bindUnary(d.Interceptors, getRequestInfo, func(ctx context.Context, req any) (any, error) {
			return d.Requests.GetRequest(ctx, req.(*pb.GetRequestRequest))
		}),
	}
}

// incomingAuth is the context the gateway would hand the interceptors, as far
// as they read it: the Authorization header's values as "authorization"
// metadata.
func incomingAuth(r *http.Request) context.Context {
	ctx := r.Context()
	if v := r.Header["Authorization"]; len(v) > 0 {
		ctx = metadata.NewIncomingContext(ctx, metadata.MD{"authorization": v})
	}
	return ctx
}

func (f *fastReads) serveUsage(w http.ResponseWriter, r *http.Request) {
	ctx := incomingAuth(r)
	resp, err := f.usage(ctx, &pb.GetUsageRequest{})
	if err != nil {
		runtime.HTTPError(ctx, f.local, f.marshaler, w, r, err)
		return
	}
	u := resp.(*pb.Usage)
	bp := jsonBufs.Get().(*[]byte)
	b, ok := appendUsageJSON((*bp)[:0], u)
	f.write(ctx, w, r, u, b, ok, bp)
}

func (f *fastReads) serveRequest(w http.ResponseWriter, r *http.Request) {
	ctx := incomingAuth(r)
	req := &pb.GetRequestRequest{Tenant: r.PathValue("tenant"), Id: r.PathValue("id")}
	resp, err := f.request(ctx, req)
	if err != nil {
		runtime.HTTPError(ctx, f.local, f.marshaler, w, r, err)
		return
	}
	g := resp.(*pb.GetRequestResponse)
	bp := jsonBufs.Get().(*[]byte)
	b, ok := appendGetRequestJSON((*bp)[:0], g)
	f.write(ctx, w, r, g, b, ok, bp)
}

// contentTypeJSON is the marshaler's Content-Type, shared (net/http only
// reads it).
var contentTypeJSON = []string{"application/json"}

// write sends b, or, when the encoder declined (!ok), lets the gateway
// marshal and forward m (its answer to whatever protojson refused).
func (f *fastReads) write(ctx context.Context, w http.ResponseWriter, r *http.Request, m proto.Message, b []byte, ok bool, bp *[]byte) {
	if ok {
		w.Header()["Content-Type"] = contentTypeJSON
		_, _ = w.Write(b)
	} else {
		runtime.ForwardResponseMessage(runtime.NewServerMetadataContext(ctx, runtime.ServerMetadata{}), f.local, f.marshaler, w, r, m)
	}
	if cap(b) <= maxPooledJSON {
		*bp = b[:0]
		jsonBufs.Put(bp)
	}
}
