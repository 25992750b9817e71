// Package node is Dialtone's composition root: it wires one node's state
// machine, cluster membership, gRPC and HTTP servers from the configuration,
// and owns their lifecycle: ordered start, and an ordered, idempotent
// shutdown.
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
}

// Node is one running Dialtone node.
type Node struct {
	log     *slog.Logger
	fsm     *fsm.FSM
	cluster *cluster.Cluster
	grpc    *grpc.Server
	http    *http.Server
	gwConn  *grpc.ClientConn
	grpcLn  net.Listener
	httpLn  net.Listener
	reg     *prometheus.Registry

	// Port usage (node/portusage.go).
	portUsage    *portUsage
	licensesMu   sync.RWMutex
	portLicenses cvp.Licenses

	// Port-usage alert evaluator (package alerting).
	alerts *alerting.Evaluator

	// The dialer engine (node/dialer.go), a leader task, and what closes
	// its call backend (may be nil).
	dialer        *dialer.Engine
	backendCloser io.Closer
	statedPorts   statedPorts // nil unless the backend states its capacity
	// dialerStats feeds GetDialerStatus (api/dialer.go); nil: the call
	// answers Unavailable on this node.
	dialerStats server.DialerStats

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	done     chan struct{}
	stopOnce sync.Once
	stopErr  error
}

// Start builds and starts a node. Addresses with port 0 bind free ports
// (tests); the actual addresses are advertised to peers.
func Start(opts Options) (_ *Node, err error) {
	cfg := opts.Config
	nc, err := cfg.Node(opts.NodeID)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("node", nc.ID)
	n := &Node{log: log, fsm: fsm.New(), reg: prometheus.NewRegistry(), done: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.cancel()
			n.closeListeners()
			if n.cluster != nil {
				_ = n.cluster.Shutdown(context.Background())
			}
			n.closeBackend()
		}
	}()

	if n.grpcLn, err = net.Listen("tcp", cmp.Or(nc.GRPCBind, nc.GRPC)); err != nil {
		return nil, fmt.Errorf("node: grpc listener: %w", err)
	}
	if n.httpLn, err = net.Listen("tcp", cmp.Or(nc.HTTPBind, nc.HTTP)); err != nil {
		return nil, fmt.Errorf("node: http listener: %w", err)
	}
	// Peers reach this node at the configured address when the listener
	// binds elsewhere (a wildcard), else at what it bound (port 0 resolved).
	advGRPC, advHTTP := n.grpcLn.Addr().String(), n.httpLn.Addr().String()
	if nc.GRPCBind != "" {
		advGRPC = nc.GRPC
	}
	if nc.HTTPBind != "" {
		advHTTP = nc.HTTP
	}

	authn, err := auth.New(n.ctx, authConfig(cfg.Auth), log)
	if err != nil {
		return nil, err
	}
	if !authn.Enabled() {
		log.Warn("auth.mode is none: every caller may do everything; use only for development")
	}
	secret, err := cfg.ClusterSecret()
	if err != nil {
		return nil, err
	}
	// Transport security: plaintext unless tls.cert_file is set; then the
	// listeners serve TLS and every call this node makes (to its peers and
	// to its own gRPC server, for the REST gateway) verifies against ca_file.
	transport := insecure.NewCredentials()
	var serverOpts []grpc.ServerOption
	var serverTLS, clientTLS *tls.Config
	if cfg.TLS.Enabled() {
		if serverTLS, err = tlsconf.Server(cfg.TLS.CertFile, cfg.TLS.KeyFile); err != nil {
			return nil, err
		}
		if clientTLS, err = tlsconf.Client(cfg.TLS.CAFile); err != nil {
			return nil, err
		}
		transport = credentials.NewTLS(clientTLS)
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(serverTLS)))
	}
	dialOpts := []grpc.DialOption{grpc.WithTransportCredentials(transport)}
	if secret != "" {
		dialOpts = append(dialOpts, server.ClusterSecretDialOption(secret))
	}

	backend, backendCloser, err := callBackend(cfg, nc, log, n.reg, opts.Backend)
	if err != nil {
		return nil, err
	}
	n.backendCloser = backendCloser
	n.statedPorts, _ = backend.(statedPorts)
	dialerReady := make(chan struct{})
	var dialerTask func(context.Context)
	n.dialer, dialerTask = n.newDialer(cfg, backend, dialerReady)
	n.dialerStats = n.dialer

	var voters []cluster.Peer
	for _, id := range cfg.Cluster.InitialVoters {
		peer, _ := cfg.Node(id)
		voters = append(voters, cluster.Peer{ID: id, RaftAddr: peer.Raft})
	}
	n.cluster, err = cluster.Open(cluster.Config{
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
		DialOptions:        dialOpts,
		LeaderTasks:        []func(context.Context){dialerTask},
		GossipKey:          derivedKey("gossip", secret),
		RaftKey:            derivedKey("raft", secret),
		RaftServerTLS:      serverTLS,
		RaftClientTLS:      clientTLS,
		Logger:             log,
	}, n.fsm)
	if err != nil {
		return nil, err
	}

	icp := server.NewInterceptors(n.reg, log)
	n.reg.MustRegister(newRaftCollector(n.cluster, n.fsm))
	authz := server.NewAuthz(authn, secret)
	serverOpts = append(serverOpts, grpc.ChainUnaryInterceptor(icp.Unary, authz.Unary), grpc.MaxRecvMsgSize(int(cfg.Limits.MaxBodyBytes)+4096))
	serverOpts = append(serverOpts, grpc.ChainStreamInterceptor(icp.Stream, authz.Stream))
	n.grpc = grpc.NewServer(serverOpts...)
	requests := server.NewRequests(n.fsm, n.cluster, server.Options{
		MaxRecords:  cfg.Limits.MaxRecords,
		MaxBulk:     cfg.Limits.MaxBulk,
		ReadTimeout: cfg.Limits.ReadTimeout.Duration,
	})
	pb.RegisterRequestServiceServer(n.grpc, requests)
	pb.RegisterClusterServiceServer(n.grpc, server.NewCluster(n.cluster, n.fsm, n.leaveAndStop))
	n.cluster.RegisterGRPC(n.grpc)

	// Port usage: the in-memory cache, the Publish stream and reads, the
	// relay to the peers over gossip user messages.
	n.portUsage = n.startPortUsage(cfg, nc.ID)
	close(dialerReady)

	// Port-usage settings and alerts (api/portsettings.go, package
	// alerting): entitlements and thresholds go through Raft; every node
	// evaluates the alerts every second over the port-usage cache, and only
	// the leader notifies. The evaluator stops with n.ctx.
	var alertUsage alerting.Usage = alerting.NoUsage{}
	if n.portUsage != nil && n.portUsage.cache != nil {
		alertUsage = n.portUsage.cache
	}
	n.alerts, err = alerting.New(alerting.Options{
		Settings:   n.fsm,
		Usage:      alertUsage,
		IsLeader:   n.cluster.IsLeader,
		Registerer: n.reg,
		Logger:     log,
		NodeID:     nc.ID,
	})
	if err != nil {
		return nil, fmt.Errorf("node: alerting: %w", err)
	}
	portSettings := server.NewPortSettings(n.fsm, n.cluster, n.alerts, server.PortSettingsOptions{})
	pb.RegisterPortSettingsServiceServer(n.grpc, portSettings)
	pb.RegisterDialerServiceServer(n.grpc, server.NewDialer(n.fsm, n.cluster, n.cluster, n.dialerStats, server.DialerOptions{ReadTimeout: cfg.Limits.ReadTimeout.Duration}))
	n.SetPortLicenses(portSettings)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.alerts.Run(n.ctx)
	}()

	n.gwConn, err = grpc.NewClient(n.grpcLn.Addr().String(),
		grpc.WithTransportCredentials(transport),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(int(cfg.Limits.MaxBodyBytes)+4096)))
	if err != nil {
		return nil, fmt.Errorf("node: gateway connection: %w", err)
	}
	gatherers := prometheus.Gatherers{n.reg}
	if opts.Gatherer != nil {
		gatherers = append(gatherers, opts.Gatherer)
	}
	handler, err := server.NewHTTPHandler(n.ctx, n.gwConn, server.HTTPOptions{
		Ready:          n.ready,
		Gatherer:       gatherers,
		MaxBodyBytes:   cfg.Limits.MaxBodyBytes,
		Extra:          mergeHandlers(protocolHandlers(authn, requests, cfg), n.cvpHandlers(authn)),
		Auth:           authn,
		ProtectMetrics: cfg.Auth.ProtectMetrics,
		ProtectOpenAPI: cfg.Auth.ProtectOpenAPI,
	})
	if err != nil {
		return nil, err
	}
	n.http = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, TLSConfig: serverTLS}

	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		if err := n.grpc.Serve(n.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			log.Error("grpc server stopped", "err", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		serve := func() error { return n.http.Serve(n.httpLn) }
		if serverTLS != nil {
			serve = func() error { return n.http.ServeTLS(n.httpLn, "", "") }
		}
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	}()
	log.Info("node started", "http", n.HTTPAddr(), "grpc", n.GRPCAddr(), "raft", n.cluster.RaftAddr(), "gossip", n.cluster.GossipAddr())
	return n, nil
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
// calls finish), hand over leadership, leave gossip, stop Raft and close the
// stores. It is idempotent and safe to call concurrently.
func (n *Node) Shutdown(ctx context.Context) error {
	n.stopOnce.Do(func() {
		var errs []error
		if err := n.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
		// Unary calls finish; long-lived streams (port-usage publishers)
		// never would, so after a short grace they are cut and their
		// publishers fail over to another node.
		stopped := make(chan struct{})
		go func() { n.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
		case <-time.After(grpcGrace):
		}
		n.grpc.Stop()
		<-stopped
		n.cancel()
		if err := n.cluster.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("cluster: %w", err))
		}
		_ = n.gwConn.Close()
		n.wg.Wait()
		n.closeBackend()
		n.stopErr = errors.Join(errs...)
		n.log.Info("node stopped")
		close(n.done)
	})
	<-n.done
	return n.stopErr
}

func (n *Node) closeBackend() {
	if n.backendCloser != nil {
		_ = n.backendCloser.Close()
	}
}

func (n *Node) closeListeners() {
	if n.grpcLn != nil {
		_ = n.grpcLn.Close()
	}
	if n.httpLn != nil {
		_ = n.httpLn.Close()
	}
}

// Close stops the node abruptly, as a crash would: connections are cut, no
// leadership transfer, no gossip leave. Files are closed so the data dir can
// be reopened by a new node. For failure tests.
func (n *Node) Close() {
	n.stopOnce.Do(func() {
		n.grpc.Stop()
		_ = n.http.Close()
		n.cancel()
		_ = n.cluster.Close()
		_ = n.gwConn.Close()
		n.wg.Wait()
		n.closeBackend()
		close(n.done)
	})
	<-n.done
}
