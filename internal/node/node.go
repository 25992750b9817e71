// Package node is Dialtone's composition root: it wires one node's state
// machine, cluster membership, port usage, alerting, dialer engine, gRPC
// and HTTP servers from the configuration, and owns their lifecycle. Start
// builds every subsystem in dependency order, then runs the background
// work and the leader-only work (the dialer engine, started when the node
// acts as leader and stopped when it no longer does: runLeaderTasks), then
// serves. Shutdown is ordered and idempotent.
package node

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/auth"
	"github.com/seed-7bfc04c2/dialtone/internal/cluster"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/dialer"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/portusage/alerting"
	"github.com/seed-7bfc04c2/dialtone/internal/server"
	"github.com/seed-7bfc04c2/dialtone/internal/server/cvp"
	"github.com/seed-7bfc04c2/dialtone/internal/server/ssg"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
	"github.com/seed-7bfc04c2/dialtone/internal/tlsconf"
)

// Options configure one node.
type Options struct {
	Config config.Config
	NodeID string
	Logger *slog.Logger
	// Gatherer adds process-wide metrics (Go runtime, Raft internals) to
	// this node's /metrics.
	Gatherer prometheus.Gatherer
	// Backend overrides the call backend chosen by [telephony] (tests use
	// an in-process simulated media platform).
	Backend telephony.Backend
	// SendLog, when set, gets the dialer's line per call written
	// (dialer.Options.SendLog; `serve --send-log`).
	SendLog io.Writer
}

// Node is one running Dialtone node.
type Node struct {
	log *slog.Logger
	reg *prometheus.Registry

	grpcLn, httpLn net.Listener
	backendCloser  io.Closer // the call backend's; may be nil
	fsm            *fsm.FSM
	cluster        *cluster.Cluster
	portUsage      *portUsage
	alerts         *alerting.Evaluator
	dialer         *dialer.Engine
	grpc           *grpc.Server
	gwConn         *grpc.ClientConn // the REST gateway's connection to grpc
	authn          *auth.Authenticator
	http           *http.Server

	// ctx ends the node's own goroutines (leader tasks, alerts, relay,
	// sweeper, servers), which wg counts.
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	done     chan struct{}
	stopOnce sync.Once
	stopErr  error
}

// Start builds and starts a node. Addresses with port 0 bind free ports
// (tests); the actual addresses are advertised to peers.
//
// It is one sequence: build every subsystem in dependency order, each
// given what it needs; then run the background work and the leader tasks;
// then serve. Nothing is wired after it is built.
func Start(opts Options) (_ *Node, err error) {
	cfg := opts.Config
	nc, err := cfg.Node(opts.NodeID)
	if err != nil {
		return nil, err
	}
	log := cmp.Or(opts.Logger, slog.Default()).With("node", nc.ID)
	n := &Node{log: log, reg: prometheus.NewRegistry(), done: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			_ = n.stop(context.Background(), true)
		}
	}()

	// Listeners first: peers learn their addresses.
	if n.grpcLn, err = net.Listen("tcp", cmp.Or(nc.GRPCBind, nc.GRPC)); err != nil {
		return nil, fmt.Errorf("node: grpc listener: %w", err)
	}
	if n.httpLn, err = net.Listen("tcp", cmp.Or(nc.HTTPBind, nc.HTTP)); err != nil {
		return nil, fmt.Errorf("node: http listener: %w", err)
	}
	advGRPC, advHTTP := advertised(n.grpcLn, nc.GRPCBind, nc.GRPC), advertised(n.httpLn, nc.HTTPBind, nc.HTTP)

	authn, err := auth.New(n.ctx, authConfig(cfg.Auth), log)
	if err != nil {
		return nil, err
	}
	n.authn = authn
	if !authn.Enabled() {
		log.Warn("auth.mode is none: every caller may do everything; use only for development")
	}
	if d := cfg.Dialer.TestClockOffset.Duration; d != 0 {
		log.Warn("dialer.test_clock_offset is set: this node's dialer and the entries it stamps run on a shifted clock; for tests only", "offset", d)
	}
	sec, err := newSecurity(cfg)
	if err != nil {
		return nil, err
	}
	// The port-usage cache comes first: the SIP backend's IVR pools read
	// the media servers' free ports from it.
	cache, cacheMetrics := newPortUsageCache(cfg.PortUsage, n.reg)
	backend, backendCloser, err := callBackend(cfg, nc, log, n.reg, opts.Backend, mediaServerPorts{cache: cache})
	if err != nil {
		return nil, err
	}
	n.backendCloser = backendCloser

	// Replicated state and the cluster (Raft and gossip start here).
	n.fsm = fsm.New()
	if n.cluster, err = cluster.Open(clusterConfig(cfg, nc, advGRPC, advHTTP, sec, log), n.fsm); err != nil {
		return nil, err
	}
	n.reg.MustRegister(newRaftCollector(n.cluster, n.fsm))

	// Port usage and its settings: the alert evaluator over the cache
	// (every node evaluates, only the leader notifies); the settings
	// service (entitlements and thresholds go through Raft); the Publish
	// service and the relay to the peers.
	if n.alerts, err = alerting.New(alerting.Options{
		Settings:   n.fsm,
		Usage:      cache,
		IsLeader:   n.cluster.IsLeader,
		Registerer: n.reg,
		Logger:     log,
		NodeID:     nc.ID,
	}); err != nil {
		return nil, fmt.Errorf("node: alerting: %w", err)
	}
	portSettings := server.NewPortSettings(n.fsm, n.cluster, n.alerts, server.PortSettingsOptions{})
	n.portUsage = newPortUsage(nc.ID, cache, cacheMetrics, n.cluster, portSettings)

	// The dialer engine: a leader task (see below).
	stated, _ := backend.(statedPorts)
	n.dialer = newDialer(cfg, n.fsm, n.cluster, dialerPorts{cache: cache, stated: stated}, backend, n.reg, log, opts.SendLog)

	// The gRPC services and the HTTP front ends over them.
	requests := server.NewRequests(n.fsm, n.cluster, server.Options{
		MaxRecords:  cfg.Limits.MaxRecords,
		MaxBulk:     cfg.Limits.MaxBulk,
		ReadTimeout: cfg.Limits.ReadTimeout.Duration,
	})
	icp := server.NewInterceptors(n.reg, log)
	authz := server.NewAuthz(authn, sec.secret)
	// One list for the gRPC server and the in-process hot reads.
	unary := []grpc.UnaryServerInterceptor{icp.Unary, authz.Unary}
	n.grpc = grpc.NewServer(append(sec.serverOptions(),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(icp.Stream, authz.Stream),
		grpc.MaxRecvMsgSize(int(cfg.Limits.MaxBodyBytes)+4096))...)
	pb.RegisterRequestServiceServer(n.grpc, requests)
	pb.RegisterClusterServiceServer(n.grpc, server.NewCluster(n.cluster, n.fsm, n.leaveAndStop))
	pb.RegisterPortUsageServiceServer(n.grpc, n.portUsage.service)
	pb.RegisterPortSettingsServiceServer(n.grpc, portSettings)
	pb.RegisterDialerServiceServer(n.grpc, server.NewDialer(n.fsm, n.cluster, n.cluster, n.dialer, server.DialerOptions{ReadTimeout: cfg.Limits.ReadTimeout.Duration}))
	n.cluster.RegisterGRPC(n.grpc)

	if n.gwConn, err = grpc.NewClient(n.grpcLn.Addr().String(),
		grpc.WithTransportCredentials(sec.creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(int(cfg.Limits.MaxBodyBytes)+4096))); err != nil {
		return nil, fmt.Errorf("node: gateway connection: %w", err)
	}
	gatherers := prometheus.Gatherers{n.reg}
	if opts.Gatherer != nil {
		gatherers = append(gatherers, opts.Gatherer)
	}
	// The operator's console reads and writes through the gateway's
	// connection with each viewer's credential.
	ui := newConsole(n.gwConn, authn, n.cluster)
	handler, err := server.NewHTTPHandler(n.ctx, n.gwConn, server.HTTPOptions{
		Ready:          n.ready,
		Gatherer:       gatherers,
		MaxBodyBytes:   cfg.Limits.MaxBodyBytes,
		Extra:          mergeHandlers(protocolHandlers(authn, requests, cfg), cvpHandlers(authn, n.portUsage.service, portSettings, cvp.Options{DefaultTenant: cfg.PortUsage.DefaultTenant}), consoleHandlers(ui)),
		Auth:           authn,
		ProtectMetrics: cfg.Auth.ProtectMetrics,
		ProtectOpenAPI: cfg.Auth.ProtectOpenAPI,
		Direct:         &server.DirectReads{Requests: requests, PortUsage: n.portUsage.service, Interceptors: unary},
	})
	if err != nil {
		return nil, err
	}
	// Its own copy: serving TLS sets NextProtos, and Raft shares serverTLS.
	n.http = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, TLSConfig: sec.serverTLS.Clone()}

	// Run: background work on every node, leader-only work while this node
	// leads (after the barrier of its term), then serve.
	n.run(n.alerts.Run)
	n.run(n.portUsage.relay.Run)
	n.run(func(ctx context.Context) { cache.RunSweeper(ctx, sweepInterval) })
	n.run(func(ctx context.Context) { runLeaderTasks(ctx, n.cluster, log, n.dialer.Run) })
	n.run(ui.Run)
	n.run(func(context.Context) {
		if err := n.grpc.Serve(n.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			log.Error("grpc server stopped", "err", err)
		}
	})
	n.run(func(context.Context) {
		serve := func() error { return n.http.Serve(n.httpLn) }
		if sec.serverTLS != nil {
			serve = func() error { return n.http.ServeTLS(n.httpLn, "", "") }
		}
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	})
	log.Info("node started", "http", n.HTTPAddr(), "grpc", n.GRPCAddr(), "raft", n.cluster.RaftAddr(), "gossip", n.cluster.GossipAddr())
	return n, nil
}

// run runs f in a goroutine that the node owns: f gets n.ctx and Shutdown
// waits for it.
func (n *Node) run(f func(context.Context)) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f(n.ctx)
	}()
}

// advertised is the address peers reach a listener at: the configured
// address when the listener binds elsewhere (a wildcard), else what it
// bound (port 0 resolved).
func advertised(ln net.Listener, bind, configured string) string {
	if bind != "" {
		return configured
	}
	return ln.Addr().String()
}

// security is the node's transport security: plaintext unless
// tls.cert_file is set; then the listeners serve TLS and every call this
// node makes (to its peers, and to its own gRPC server for the REST
// gateway) verifies against ca_file. secret (may be empty) authenticates
// the peers to each other.
type security struct {
	secret               string
	serverTLS, clientTLS *tls.Config
	creds                credentials.TransportCredentials // of this node's calls
}

func newSecurity(cfg config.Config) (security, error) {
	secret, err := cfg.ClusterSecret()
	if err != nil {
		return security{}, err
	}
	s := security{secret: secret, creds: insecure.NewCredentials()}
	if cfg.TLS.Enabled() {
		if s.serverTLS, err = tlsconf.Server(cfg.TLS.CertFile, cfg.TLS.KeyFile); err != nil {
			return security{}, err
		}
		if s.clientTLS, err = tlsconf.Client(cfg.TLS.CAFile); err != nil {
			return security{}, err
		}
		s.creds = credentials.NewTLS(s.clientTLS)
	}
	return s, nil
}

func (s security) serverOptions() []grpc.ServerOption {
	if s.serverTLS == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(s.serverTLS))}
}

// dialOptions are those of every call to a peer.
func (s security) dialOptions() []grpc.DialOption {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(s.creds)}
	if s.secret != "" {
		opts = append(opts, server.ClusterSecretDialOption(s.secret))
	}
	return opts
}

// clusterConfig is the cluster's configuration for node nc.
func clusterConfig(cfg config.Config, nc config.Node, advGRPC, advHTTP string, sec security, log *slog.Logger) cluster.Config {
	var voters []cluster.Peer
	for _, id := range cfg.Cluster.InitialVoters {
		peer, _ := cfg.Node(id)
		voters = append(voters, cluster.Peer{ID: id, RaftAddr: peer.Raft})
	}
	return cluster.Config{
		NodeID:             nc.ID,
		DataDir:            cfg.NodeDataDir(nc),
		RaftAddr:           nc.Raft,
		GossipAddr:         nc.Gossip,
		GRPCAddr:           advGRPC,
		HTTPAddr:           advHTTP,
		InitialVoters:      voters,
		BootstrapExpect:    cfg.Cluster.BootstrapExpect,
		Join:               cfg.JoinAddrs(nc),
		HeartbeatTimeout:   cfg.Cluster.HeartbeatTimeout.Duration,
		ElectionTimeout:    cfg.Cluster.ElectionTimeout.Duration,
		LeaderLeaseTimeout: cfg.Cluster.LeaderLeaseTimeout.Duration,
		ApplyTimeout:       cfg.Cluster.ApplyTimeout.Duration,
		SnapshotThreshold:  cfg.Cluster.SnapshotThreshold,
		SnapshotInterval:   cfg.Cluster.SnapshotInterval.Duration,
		TrailingLogs:       cfg.Cluster.TrailingLogs,
		DialOptions:        sec.dialOptions(),
		GossipKey:          derivedKey("gossip", sec.secret),
		RaftKey:            derivedKey("raft", sec.secret),
		RaftServerTLS:      sec.serverTLS,
		RaftClientTLS:      sec.clientTLS,
		Logger:             log,
		Now:                clockOf(cfg).Now,
	}
}

// protocolHandlers are the HTTP front ends other than REST (the SSG
// endpoint), each behind the same authentication as the RPCs. They name
// their tenant in the TenantName query parameter; reads need the read role
// (GET), everything else submit.
func protocolHandlers(authn *auth.Authenticator, requests *server.Requests, cfg config.Config) map[string]http.Handler {
	// Protocol front ends register here by path, e.g. handlers["/SSG"].
	handlers := map[string]http.Handler{
		"/SSG": ssg.NewHandler(requests, ssg.Options{
			MaxBulk:      cfg.Limits.MaxBulk,
			MaxBodyBytes: cfg.Limits.MaxBodyBytes,
		}),
	}
	roleFor := func(r *http.Request) auth.Role {
		if r.Method == http.MethodGet {
			return auth.RoleRead
		}
		return auth.RoleSubmit
	}
	tenantOf := func(r *http.Request) string { return r.URL.Query().Get("TenantName") }
	for path, h := range handlers {
		handlers[path] = server.HTTPAuthErrors(authn, roleFor, tenantOf, ssg.WriteHTTPError, h)
	}
	return handlers
}

// mergeHandlers joins handler maps by path (later maps win).
func mergeHandlers(ms ...map[string]http.Handler) map[string]http.Handler {
	out := map[string]http.Handler{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func authConfig(c config.Auth) auth.Config {
	out := auth.Config{
		Mode: auth.Mode(c.Mode),
		JWT: auth.JWTConfig{
			JWKSURL:         c.JWT.JWKSURL,
			RefreshInterval: c.JWT.RefreshInterval.Duration,
			PublicKeyFile:   c.JWT.PublicKeyFile,
			Issuer:          c.JWT.Issuer,
			Audience:        c.JWT.Audience,
			TenantsClaim:    c.JWT.TenantsClaim,
			RolesClaim:      c.JWT.RolesClaim,
			Leeway:          c.JWT.Leeway.Duration,
		},
	}
	for _, u := range c.Users {
		au := auth.User{Name: u.Name, PasswordHash: u.PasswordHash, Tenants: u.Tenants}
		for _, r := range u.Roles {
			au.Roles = append(au.Roles, auth.Role(r))
		}
		out.Users = append(out.Users, au)
	}
	return out
}

// ready: a member of a cluster with a known leader.
func (n *Node) ready() (bool, string) {
	st := n.cluster.Status()
	member := false
	for _, s := range st.Servers {
		if s.ID == st.NodeID {
			member = true
		}
	}
	switch {
	case !member:
		return false, "not a member of a cluster yet"
	case st.LeaderID == "":
		return false, "no leader"
	}
	return true, "ready: leader " + st.LeaderID
}

// HTTPAddr is the address the HTTP server listens on.
func (n *Node) HTTPAddr() string { return n.httpLn.Addr().String() }

// GRPCAddr is the address the gRPC server listens on.
func (n *Node) GRPCAddr() string { return n.grpcLn.Addr().String() }

// Cluster is the node's cluster membership.
func (n *Node) Cluster() *cluster.Cluster { return n.cluster }

// FSM is the node's replicated state.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// Done is closed when the node has stopped (after Shutdown or a Leave).
func (n *Node) Done() <-chan struct{} { return n.done }

// leaveAndStop stops the node after a successful Leave. It runs in the
// background because the Leave RPC must first answer its caller.
func (n *Node) leaveAndStop() {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			n.log.Warn("shutdown after leave", "err", err)
		}
	}()
}

// derivedKey derives the key for one use (gossip encryption, Raft
// connection authentication) from the cluster secret; nil without one (auth
// mode none, a trusted development network). The gossip derivation is the
// one earlier releases used, so a rolling upgrade keeps gossip working.
func derivedKey(use, secret string) []byte {
	if secret == "" {
		return nil
	}
	k := sha256.Sum256([]byte("dialtone " + use + " key\x00" + secret))
	return k[:]
}

// grpcGrace is how long Shutdown lets gRPC calls finish before cutting
// them.
const grpcGrace = 2 * time.Second

// Shutdown stops the node in order: stop taking client traffic (in-flight
// calls finish), stop the leader tasks and background work, hand over
// leadership, leave gossip, stop Raft, close the stores and the call
// backend. It is idempotent and safe to call concurrently.
func (n *Node) Shutdown(ctx context.Context) error {
	n.stopOnce.Do(func() { n.stopErr = n.stop(ctx, true) })
	<-n.done
	return n.stopErr
}

// Close stops the node abruptly, as a crash would: connections are cut, no
// leadership transfer, no gossip leave. Files are closed so the data dir can
// be reopened by a new node. For failure tests.
func (n *Node) Close() {
	n.stopOnce.Do(func() { n.stopErr = n.stop(context.Background(), false) })
	<-n.done
}

// stop stops what Start built, in the reverse order: client traffic; the
// node's goroutines (leader tasks, alerts, relay, sweeper); the cluster;
// the call backend. graceful lets calls finish, waits for the goroutines
// before the cluster stops (so the relay's last flush and a stopping
// dialer still have it), and hands over leadership; otherwise everything
// is cut as in a crash. It copes with a partly built node (a failed
// Start).
func (n *Node) stop(ctx context.Context, graceful bool) error {
	defer close(n.done)
	var errs []error
	if n.http != nil {
		if !graceful {
			_ = n.http.Close()
		} else if err := n.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
	}
	if n.grpc != nil {
		if graceful {
			gracefulStop(ctx, n.grpc)
		}
		n.grpc.Stop()
	}
	n.closeListeners() // those no server took yet
	n.cancel()
	if graceful {
		n.wg.Wait()
	}
	if n.cluster != nil {
		var err error
		if graceful {
			err = n.cluster.Shutdown(ctx)
		} else {
			err = n.cluster.Close()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster: %w", err))
		}
	}
	if n.gwConn != nil {
		_ = n.gwConn.Close()
	}
	n.wg.Wait()
	if n.authn != nil {
		n.authn.Close() // waits for the JWKS refresher
	}
	if n.backendCloser != nil {
		_ = n.backendCloser.Close()
	}
	n.log.Info("node stopped")
	return errors.Join(errs...)
}

// gracefulStop lets unary calls finish; long-lived streams (port-usage
// publishers) never would, so after a short grace they are cut and their
// publishers fail over to another node.
func gracefulStop(ctx context.Context, s *grpc.Server) {
	stopped := make(chan struct{})
	go func() { s.GracefulStop(); close(stopped) }()
	t := time.NewTimer(grpcGrace)
	defer t.Stop()
	select {
	case <-stopped:
		return
	case <-ctx.Done():
	case <-t.C:
	}
	s.Stop()
	<-stopped
}

func (n *Node) closeListeners() {
	if n.grpcLn != nil {
		_ = n.grpcLn.Close()
	}
	if n.httpLn != nil {
		_ = n.httpLn.Close()
	}
}
