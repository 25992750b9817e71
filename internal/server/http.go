package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/api/openapi"
	"github.com/seed-7bfc04c2/dialtone/internal/auth"
)

// OpenAPI returns the OpenAPI document generated from the protos.
func OpenAPI() []byte { return openapi.JSON }

// HTTPOptions configure the HTTP handler.
type HTTPOptions struct {
	// Ready reports whether the node can serve (member of a cluster with a
	// known leader).
	Ready func() (bool, string)
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// MaxBodyBytes bounds request bodies; larger ones answer 413.
	MaxBodyBytes int64
	// Extra mounts further handlers (the SSG endpoint) by path.
	Extra map[string]http.Handler
	// Auth guards /metrics (role admin) and /openapi.json (any principal)
	// when ProtectMetrics / ProtectOpenAPI are set.
	Auth           *auth.Authenticator
	ProtectMetrics bool
	ProtectOpenAPI bool
	// Direct, when set, serves the two hot reads in-process (see
	// DirectReads) instead of over the loopback gRPC connection.
	Direct *DirectReads
}

// NewHTTPHandler serves REST (grpc-gateway over conn, a client connection
// to this node's own gRPC server, so interceptors apply to REST too),
// /openapi.json, /healthz, /readyz and /metrics.
func NewHTTPHandler(ctx context.Context, conn *grpc.ClientConn, opts HTTPOptions) (http.Handler, error) {
	marshaler := strictJSONPb{&runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
	muxOpts := []runtime.ServeMuxOption{runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler)}
	gw := runtime.NewServeMux(muxOpts...)
	if err := pb.RegisterRequestServiceHandler(ctx, gw, conn); err != nil {
		return nil, fmt.Errorf("api: register request gateway: %w", err)
	}
	if err := pb.RegisterClusterServiceHandler(ctx, gw, conn); err != nil {
		return nil, fmt.Errorf("api: register cluster gateway: %w", err)
	}
	if err := pb.RegisterPortUsageServiceHandler(ctx, gw, conn); err != nil {
		return nil, fmt.Errorf("api: register port-usage gateway: %w", err)
	}
	if err := pb.RegisterPortSettingsServiceHandler(ctx, gw, conn); err != nil {
		return nil, fmt.Errorf("api: register port-settings gateway: %w", err)
	}
	if err := pb.RegisterDialerServiceHandler(ctx, gw, conn); err != nil {
		return nil, fmt.Errorf("api: register dialer gateway: %w", err)
	}
	if err := gw.HandlePath("POST", suppressionUploadPath, uploadSuppressions(gw, pb.NewDialerServiceClient(conn))); err != nil {
		return nil, fmt.Errorf("api: register suppression upload: %w", err)
	}
	mux := http.NewServeMux()
	// The gateway and the built-in endpoints answer an oversized body with
	// the gateway's error shape; the protocol front ends (Extra: SSG, Cisco)
	// get only the cap and answer 413 in their own shapes.
	limit := func(h http.Handler) http.Handler { return limitBody(h, opts.MaxBodyBytes) }
	mux.Handle("GET /healthz", limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})))
	mux.Handle("GET /readyz", limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ok, why := true, "ready"
		if opts.Ready != nil {
			ok, why = opts.Ready()
		}
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, why)
	})))
	var spec http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.JSON)
	})
	if opts.ProtectOpenAPI && opts.Auth != nil {
		spec = HTTPAuth(opts.Auth, func(*http.Request) auth.Role { return anyPrincipal }, nil, spec)
	}
	mux.Handle("GET /openapi.json", limit(spec))
	if opts.Gatherer != nil {
		var metrics http.Handler = promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{})
		if opts.ProtectMetrics && opts.Auth != nil {
			metrics = HTTPAuth(opts.Auth, func(*http.Request) auth.Role { return auth.RoleAdmin }, nil, metrics)
		}
		mux.Handle("GET /metrics", limit(metrics))
	}
	for path, h := range opts.Extra {
		mux.Handle(path, capBody(h, opts.MaxBodyBytes))
	}
	mux.Handle("/", limit(requireJSON(gw)))
	if opts.Direct != nil {
		direct, err := directReadHandlers(ctx, *opts.Direct, muxOpts, marshaler, gw)
		if err != nil {
			return nil, fmt.Errorf("api: register direct reads: %w", err)
		}
		for pattern, h := range direct {
			mux.Handle(pattern, limit(requireJSON(h)))
		}
	}
	return mux, nil
}

// capBody caps request bodies at max bytes; the handler answers the
// overflow (http.MaxBytesError) in its own shape.
func capBody(next http.Handler, max int64) http.Handler {
	if max <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, max)
		next.ServeHTTP(w, r)
	})
}

// limitBody answers 413 for bodies over max and caps the rest.
func limitBody(next http.Handler, max int64) http.Handler {
	if max <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			writeGatewayError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body: %d bytes exceeds the limit of %d bytes", r.ContentLength, max))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		next.ServeHTTP(w, r)
	})
}

// writeGatewayError writes an error in the gateway's JSON shape (the
// native REST API's contract: "code" is the gRPC status code).
func writeGatewayError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"code":%d,"message":%q}`+"\n", grpcCodeForHTTP(code), strings.ToValidUTF8(msg, "?"))
}

// WriteHTTPError writes the error body of the plain HTTP endpoints (the
// Cisco-compatible paths, /metrics, /openapi.json):
// {"code": <HTTP status>, "message": "..."}; the code is the response's
// own HTTP status, never a gRPC code.
func WriteHTTPError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, strings.ToValidUTF8(msg, "?")})
}

// ErrorWriter writes an error answer in one front end's shape.
type ErrorWriter func(w http.ResponseWriter, code int, msg string)

func grpcCodeForHTTP(code int) int {
	switch code {
	case http.StatusRequestEntityTooLarge:
		return 8 // RESOURCE_EXHAUSTED
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		return 3 // INVALID_ARGUMENT
	case http.StatusUnauthorized:
		return 16 // UNAUTHENTICATED
	case http.StatusForbidden:
		return 7 // PERMISSION_DENIED
	}
	return 2 // UNKNOWN
}
