package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// FSM is the replicated state machine the cluster drives. Besides raft.FSM it
// reports how far it has applied the log, so reads can wait for an index.
type FSM interface {
	raft.FSM
	AppliedIndex() uint64
	WaitForIndex(ctx context.Context, index uint64) error
}

// Peer is one server of the initial (bootstrap) configuration.
type Peer struct {
	ID       string
	RaftAddr string
}

// Config configures one node's cluster membership.
type Config struct {
	NodeID  string
	DataDir string
	// RaftAddr is the TCP address Raft binds to and advertises. Port 0 picks
	// a free port (tests).
	RaftAddr string
	// GossipAddr is the host:port memberlist binds to and advertises.
	GossipAddr string
	// GRPCAddr and HTTPAddr are advertised to peers in gossip metadata.
	GRPCAddr string
	HTTPAddr string

	// InitialVoters bootstraps a fresh cluster: a node listed here with no
	// Raft state bootstraps with exactly this set.
	InitialVoters []Peer
	// BootstrapExpect, when InitialVoters is empty, bootstraps a fresh
	// cluster once this many nodes (this one included) see each other.
	BootstrapExpect int
	// Join lists gossip addresses to join at start (retried until one works).
	Join []string

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// ApplyTimeout bounds a write that has no deadline of its own,
	// including the wait for an election.
	ApplyTimeout time.Duration
	// LocalApplyTimeout bounds how long a write forwarded to the leader
	// waits for this node to apply it before answering (read-your-writes
	// on the node that took the write); default 2s.
	LocalApplyTimeout time.Duration
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64

	// DialOptions are added to every internal gRPC connection (credentials).
	DialOptions []grpc.DialOption
	// GossipKey, when set (16, 24 or 32 bytes), encrypts and authenticates
	// every gossip message (memberlist's AES-GCM keyring): a process
	// without it can neither join the membership (and so never becomes a
	// voter) nor inject relayed messages.
	GossipKey []byte
	// RaftKey, when set, authenticates every Raft connection in both
	// directions (see raftStream): a process without it can neither send
	// nor receive Raft RPCs.
	RaftKey []byte
	// RaftServerTLS and RaftClientTLS, when set, wrap Raft connections in
	// TLS (accepting and dialling).
	RaftServerTLS, RaftClientTLS *tls.Config

	Logger *slog.Logger

	// Now is the time the leader stamps on the entries it proposes (the
	// state machine's only clock); nil: time.Now. Tests shift it with the
	// dialer's clock (dialer.test_clock_offset).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = 500 * time.Millisecond
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = 500 * time.Millisecond
	}
	if c.LeaderLeaseTimeout == 0 {
		// A leader steps down (and its dialer stops sending) after this
		// long without a quorum's contact: long enough to ride out a
		// starved scheduler, and below HeartbeatTimeout, before which no
		// follower votes for a successor (the dialer's fence relies on it).
		c.LeaderLeaseTimeout = c.HeartbeatTimeout * 4 / 5
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = 10 * time.Second
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 2 * time.Minute
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Cluster is one node's view of and participation in the cluster.
type Cluster struct {
	cfg    Config
	log    *slog.Logger
	fsm    FSM
	raft   *raft.Raft
	trans  *raft.NetworkTransport
	stream *raftStream
	store  *raftboltdb.BoltStore
	ml     *memberlist.Memberlist
	meta   *metaDelegate
	events chan struct{} // membership changed: wake the reconciler

	// removedMu guards removed: when this node, leading, removed a server
	// (see removeHold).
	removedMu sync.Mutex
	removed   map[string]time.Time

	connsMu sync.Mutex
	conns   map[string]*grpc.ClientConn

	leaderMu      sync.RWMutex
	leaderReady   bool   // barrier done in the current term
	leaderTerms   uint64 // times this node has become ready to lead
	leaderChanged chan struct{}
	// leaderSeen is closed and replaced whenever Raft observes a new
	// leader (or none): forwarded calls watch it to give up on a leader
	// that was replaced while they waited on it.
	leaderSeenMu sync.Mutex
	leaderSeen   chan struct{}
	lease        lease // see lease.go

	ctx      context.Context // cancelled at shutdown
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
}

// Open creates the stores and the transports, starts Raft and gossip, and
// bootstraps or joins as configured. It returns once the node is running;
// a leader may not be known yet.
func Open(cfg Config, fsm FSM) (*Cluster, error) {
	cfg.setDefaults()
	if cfg.NodeID == "" {
		return nil, errors.New("cluster: node id is required")
	}
	c := &Cluster{
		cfg:           cfg,
		log:           cfg.Logger,
		fsm:           fsm,
		events:        make(chan struct{}, 1),
		conns:         make(map[string]*grpc.ClientConn),
		leaderChanged: make(chan struct{}),
		leaderSeen:    make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.openRaft(); err != nil {
		c.cancel()
		c.closeStores()
		return nil, err
	}
	if err := c.openGossip(); err != nil {
		_ = c.raft.Shutdown().Error()
		c.cancel()
		c.closeStores()
		return nil, err
	}
	c.wg.Add(1)
	go c.bootstrapAndJoin()
	return c, nil
}

func (c *Cluster) openRaft() error {
	dir := filepath.Join(c.cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cluster: data dir: %w", err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(dir, "raft.db"),
		// The freelist is rebuilt on open; not syncing it makes each commit cheaper.
		BoltOptions: &bbolt.Options{NoFreelistSync: true, Timeout: 5 * time.Second},
	})
	if err != nil {
		return fmt.Errorf("cluster: open raft store: %w", err)
	}
	c.store = store
	logs, err := raft.NewLogCache(1024, store)
	if err != nil {
		return fmt.Errorf("cluster: log cache: %w", err)
	}
	hl := hcLogger(c.log, "raft", hclog.Warn)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hl)
	if err != nil {
		return fmt.Errorf("cluster: snapshot store: %w", err)
	}
	addr, err := net.ResolveTCPAddr("tcp", c.cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("cluster: raft address %q: %w", c.cfg.RaftAddr, err)
	}
	var advertise net.Addr
	if addr.Port != 0 && !addr.IP.IsUnspecified() {
		advertise = addr
	}
	ln, err := net.Listen("tcp", c.cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("cluster: raft listener: %w", err)
	}
	stream := newRaftStream(ln, advertise, c.cfg.RaftKey, c.cfg.RaftServerTLS, c.cfg.RaftClientTLS)
	c.stream = stream
	if a, ok := stream.Addr().(*net.TCPAddr); !ok || a.IP.IsUnspecified() {
		_ = ln.Close()
		return fmt.Errorf("cluster: raft address %q is not advertisable: give a host address", c.cfg.RaftAddr)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hl,
	})
	c.trans = trans

	notify := make(chan bool, 8)
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.cfg.NodeID)
	rc.Logger = hl
	rc.HeartbeatTimeout = c.cfg.HeartbeatTimeout
	rc.ElectionTimeout = c.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = c.cfg.LeaderLeaseTimeout
	rc.SnapshotThreshold = c.cfg.SnapshotThreshold
	rc.SnapshotInterval = c.cfg.SnapshotInterval
	rc.TrailingLogs = c.cfg.TrailingLogs
	rc.MaxAppendEntries = 1024
	rc.BatchApplyCh = true
	rc.NotifyCh = notify

	has, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		return fmt.Errorf("cluster: inspect raft state: %w", err)
	}
	r, err := raft.NewRaft(rc, c.fsm, logs, store, snaps, trans)
	if err != nil {
		_ = trans.Close()
		return fmt.Errorf("cluster: start raft: %w", err)
	}
	c.raft = r
	if !has && c.isInitialVoter() {
		var servers []raft.Server
		for _, p := range c.cfg.InitialVoters {
			a := p.RaftAddr
			if p.ID == c.cfg.NodeID {
				a = string(trans.LocalAddr())
			}
			servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(a)})
		}
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("cluster: bootstrap: %w", err)
		}
		c.log.Info("bootstrapped a new cluster", "voters", len(servers))
	}
	c.wg.Add(1)
	go c.watchLeadership(notify)
	obs := make(chan raft.Observation, 16)
	r.RegisterObserver(raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	}))
	c.wg.Add(1)
	go c.watchLeaderObservations(obs)
	return nil
}

// watchLeaderObservations wakes the watchers of leaderSeen on every
// leader observation.
func (c *Cluster) watchLeaderObservations(obs <-chan raft.Observation) {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-obs:
			c.leaderSeenMu.Lock()
			close(c.leaderSeen)
			c.leaderSeen = make(chan struct{})
			c.leaderSeenMu.Unlock()
		}
	}
}

// leaderSeenCh is closed at the next leader observation.
func (c *Cluster) leaderSeenCh() <-chan struct{} {
	c.leaderSeenMu.Lock()
	defer c.leaderSeenMu.Unlock()
	return c.leaderSeen
}

func (c *Cluster) isInitialVoter() bool {
	for _, p := range c.cfg.InitialVoters {
		if p.ID == c.cfg.NodeID {
			return true
		}
	}
	return false
}

// RaftAddr is the address Raft advertises.
func (c *Cluster) RaftAddr() string { return string(c.trans.LocalAddr()) }

// GossipAddr is the address memberlist advertises.
func (c *Cluster) GossipAddr() string {
	n := c.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), fmt.Sprint(n.Port))
}

// NodeID is this node's id.
func (c *Cluster) NodeID() string { return c.cfg.NodeID }

// Raft exposes the raft instance for metrics and tests.
func (c *Cluster) Raft() *raft.Raft { return c.raft }

// watchLeadership starts leader work after a barrier when this node becomes
// leader, and stops it when leadership is lost.
func (c *Cluster) watchLeadership(notify <-chan bool) {
	defer c.wg.Done()
	var stop func()
	for {
		select {
		case <-c.ctx.Done():
			if stop != nil {
				stop()
			}
			return
		case leader := <-notify:
			if stop != nil {
				stop()
				stop = nil
			}
			if leader {
				stop = c.startLeading()
			} else {
				c.setLeaderReady(false)
			}
		}
	}
}

func (c *Cluster) startLeading() func() {
	ctx, cancel := context.WithCancel(c.ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.keepLease(ctx)
	}()
	go func() {
		defer wg.Done()
		// Apply every entry of earlier terms before acting as leader.
		retry := 10 * time.Millisecond
		for ctx.Err() == nil {
			err := futureError(ctx, c.raft.Barrier(c.cfg.ApplyTimeout))
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrRaftShutdown) {
				return
			}
			// A leadership transfer in progress fails every barrier at
			// once until it ends: back off instead of spinning.
			c.log.Warn("leader barrier failed; retrying", "err", err, "in", retry)
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
			retry = min(2*retry, time.Second)
		}
		if ctx.Err() != nil {
			return
		}
		c.log.Info("acting as leader", "term", c.raft.CurrentTerm())
		c.setLeaderReady(true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.reconcileLoop(ctx)
		}()
	}()
	return func() {
		c.setLeaderReady(false)
		cancel()
		wg.Wait()
		c.log.Info("stopped leader work")
	}
}

func (c *Cluster) setLeaderReady(v bool) {
	c.leaderMu.Lock()
	c.leaderReady = v
	if v {
		c.leaderTerms++
	}
	close(c.leaderChanged)
	c.leaderChanged = make(chan struct{})
	c.leaderMu.Unlock()
}

// IsLeader reports whether this node is the leader and has applied every
// entry of earlier terms.
func (c *Cluster) IsLeader() bool {
	leading, _, _ := c.Leadership()
	return leading
}

// Leadership is IsLeader for callers that run leader-only work: leading
// as IsLeader, term a number that differs for every period this node
// leads (so a caller that missed a loss and a regain between two looks
// still sees that the leadership changed), and changed a channel closed
// at the next change.
func (c *Cluster) Leadership() (leading bool, term uint64, changed <-chan struct{}) {
	c.leaderMu.RLock()
	defer c.leaderMu.RUnlock()
	return c.leaderReady && c.raft.State() == raft.Leader, c.leaderTerms, c.leaderChanged
}

// Close stops abruptly, as a crash would (no leadership transfer, no gossip
// leave), but closes files so the data dir can be reopened. For tests that
// kill nodes in-process.
func (c *Cluster) Close() error {
	c.stopOnce.Do(func() {
		if c.ml != nil {
			_ = c.ml.Shutdown()
		}
		c.stopErr = c.stop()
	})
	return c.stopErr
}

// Shutdown stops the node's cluster work in order: hand leadership to
// another voter if this node leads, leave gossip, stop Raft, close the
// stores. The Raft vote is kept: a restarted node resumes its place.
// Safe to call more than once.
func (c *Cluster) Shutdown(ctx context.Context) error {
	c.stopOnce.Do(func() {
		if c.raft.State() == raft.Leader && c.voterCount() > 1 {
			if err := c.transfer(ctx, ""); err != nil {
				c.log.Warn("leadership transfer at shutdown failed", "err", err)
			}
		}
		if c.ml != nil {
			if err := c.ml.Leave(time.Second); err != nil {
				// Expected when the peers are stopping too.
				c.log.Debug("gossip leave", "err", err)
			}
			_ = c.ml.Shutdown()
		}
		c.stopErr = c.stop()
	})
	return c.stopErr
}

// stop shuts Raft down and releases everything after gossip has stopped.
func (c *Cluster) stop() error {
	c.cancel()
	err := c.raft.Shutdown().Error()
	c.wg.Wait()
	c.connsMu.Lock()
	for _, cc := range c.conns {
		_ = cc.Close()
	}
	c.conns = map[string]*grpc.ClientConn{}
	c.connsMu.Unlock()
	if cerr := c.trans.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if cerr := c.closeStores(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

func (c *Cluster) closeStores() error {
	if c.store == nil {
		return nil
	}
	err := c.store.Close()
	c.store = nil
	return err
}

// conn returns a pooled internal gRPC connection to addr.
func (c *Cluster) conn(addr string) (*grpc.ClientConn, error) {
	c.connsMu.Lock()
	defer c.connsMu.Unlock()
	if cc, ok := c.conns[addr]; ok {
		return cc, nil
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, c.cfg.DialOptions...)
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: dial %s: %w", addr, err)
	}
	c.conns[addr] = cc
	return cc, nil
}
