package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Interceptors count and time every RPC and turn a panic into Internal
// instead of a crashed node.
type Interceptors struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	log      *slog.Logger
}

// NewInterceptors registers the RPC metrics on reg.
func NewInterceptors(reg prometheus.Registerer, log *slog.Logger) *Interceptors {
	i := &Interceptors{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialtone_rpc_requests_total",
			Help: "RPCs served (REST calls included), by method and gRPC code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dialtone_rpc_duration_seconds",
			Help:    "RPC latency by method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method"}),
		log: log,
	}
	reg.MustRegister(i.requests, i.latency)
	return i
}

// Unary is the unary server interceptor.
func (i *Interceptors) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			i.log.Error("panic in RPC handler", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
		i.requests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
		i.latency.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
	}()
	return handler(ctx, req)
}

// Stream is the stream server interceptor: it counts and times each stream
// (from open to close) and turns a panic into Internal.
func (i *Interceptors) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			i.log.Error("panic in stream handler", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
		i.requests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
		i.latency.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
	}()
	return handler(srv, ss)
}
