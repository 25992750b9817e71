package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/tlsconf"
)

// Cluster is a running Dialtone cluster, in this process or in others.
type Cluster interface {
	// Config is the configuration every node was started with (nodes
	// added later included).
	Config() config.Config
	// IDs are every node's id, running or not, in configuration order.
	IDs() []string
	// Running are the ids of the nodes running now.
	Running() []string
	// HTTPAddr and GRPCAddr are node id's client addresses.
	HTTPAddr(id string) string
	GRPCAddr(id string) string
	// Conn is a gRPC connection to node id (TLS when the configuration
	// enables it, plus Options.DialOptions), owned by the cluster.
	Conn(id string) (*grpc.ClientConn, error)
	// Leader is the leader the running nodes name now, if it runs.
	Leader(ctx context.Context) (string, error)
	// WaitLeader waits until every running node names the same running
	// leader and returns it.
	WaitLeader(ctx context.Context) (string, error)
	// WaitServers waits until every running node sees a leader and n Raft
	// servers (a cluster formed, a node added or removed).
	WaitServers(ctx context.Context, n int) error
	// Stop stops node id cleanly (leadership handed over, gossip left).
	Stop(ctx context.Context, id string) error
	// Kill stops node id as a crash would.
	Kill(id string) error
	// Restart starts node id again on its addresses and data directory,
	// stopping it first if it runs.
	Restart(ctx context.Context, id string) error
	// Close stops every node and releases what the cluster holds.
	// Idempotent.
	Close() error
}

// ErrNoLeader: no running node names a running leader.
var ErrNoLeader = errors.New("cluster: no leader")

// Options configure a cluster. The zero value is three nodes with the
// default configuration in a temporary directory.
type Options struct {
	// Nodes is the node count (ids n1..nN, all initial voters); 3 when 0.
	Nodes int
	// Dir holds the data directories (and, for processes, the
	// configuration file and logs). A temporary directory, removed by
	// Close, when empty.
	Dir string
	// Edit changes the generated configuration (auth, TLS, telephony,
	// timing, limits) before it is validated.
	Edit func(*config.Config)
	// DialOptions are added to the connections Conn makes (e.g. per-RPC
	// credentials when auth is on).
	DialOptions []grpc.DialOption
	// Poll is how often the Wait methods look; 20 ms when 0.
	Poll time.Duration
}

// Config builds the configuration a cluster of o would run: free loopback
// ports, initial voters n1..nN, data under dir, o.Edit applied, validated.
func (o Options) Config(dir string) (config.Config, error) {
	n := o.Nodes
	if n == 0 {
		n = 3
	}
	cfg := config.Default()
	cfg.Cluster.DataDir = dir
	for i := 1; i <= n; i++ {
		nb, err := NodeBlock(fmt.Sprintf("n%d", i))
		if err != nil {
			return config.Config{}, err
		}
		cfg.Nodes = append(cfg.Nodes, nb)
		cfg.Cluster.InitialVoters = append(cfg.Cluster.InitialVoters, nb.ID)
	}
	if o.Edit != nil {
		o.Edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		return config.Config{}, fmt.Errorf("cluster: generated config: %w", err)
	}
	return cfg, nil
}

// handedOut holds every port FreeAddr returned in this process: the kernel
// may offer a port again once its probe listener is closed, before the node
// it was meant for binds it. Process-wide because clusters of one test
// binary run in parallel. The value is the reservation's lock file, kept
// open (and so locked) until the process exits.
var handedOut sync.Map

// Ports are drawn from below Linux's ephemeral range (32768-60999): a port
// the kernel hands to outgoing connections can be taken by one while its
// node is down, and a restarted node then fails to bind it.
const (
	portLow  = 20000
	portHigh = 32000
)

// reserve takes port's lock file in a directory every test process shares,
// so that two test binaries (go test runs packages in parallel) never hand
// out the same port: a probe in one process can otherwise pass just before
// a node of the other binds the port, and that node then fails with
// "address already in use". flock is released by the kernel when the
// process exits, however it exits.
func reserve(port int) (*os.File, bool) {
	dir := filepath.Join(os.TempDir(), "dialtone-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, true // no shared directory: fall back to the probe alone
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false // another test process holds it
	}
	return f, true
}

// FreeAddr is a loopback TCP address that was free and that no earlier
// call in this process, nor any live test process, returned.
func FreeAddr() (string, error) {
	for range 200 {
		port := portLow + rand.IntN(portHigh-portLow)
		a := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if _, dup := handedOut.Load(a); dup {
			continue
		}
		lock, ok := reserve(port)
		if !ok {
			continue
		}
		if _, dup := handedOut.LoadOrStore(a, lock); dup {
			if lock != nil {
				lock.Close()
			}
			continue
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			continue // in use by another process; stays reserved so it is not tried again
		}
		l.Close()
		return a, nil
	}
	return "", errors.New("cluster: no fresh free port after 200 tries")
}

// freeGossipAddr is a FreeAddr whose port is free for UDP too, as
// memberlist needs.
func freeGossipAddr() (string, error) {
	for range 50 {
		a, err := FreeAddr()
		if err != nil {
			return "", err
		}
		if u, err := net.ListenPacket("udp", a); err == nil {
			u.Close()
			return a, nil
		}
	}
	return "", errors.New("cluster: no free gossip port")
}

// NodeBlock is a [[node]] block for id on free loopback ports.
func NodeBlock(id string) (config.Node, error) {
	nb := config.Node{ID: id}
	for _, p := range []*string{&nb.HTTP, &nb.GRPC, &nb.Raft} {
		a, err := FreeAddr()
		if err != nil {
			return config.Node{}, err
		}
		*p = a
	}
	g, err := freeGossipAddr()
	if err != nil {
		return config.Node{}, err
	}
	nb.Gossip = g
	return nb, nil
}

// nodeView is what one node says about the cluster.
type nodeView struct {
	leader  string
	servers int
}

// members is what both implementations share: the configuration, the
// connections, and the waits over a per-node status.
type members struct {
	opts Options
	poll time.Duration
	// status asks running node id for its view.
	status  func(ctx context.Context, id string) (nodeView, error)
	running func() []string

	mu    sync.Mutex
	cfg   config.Config
	conns map[string]*grpc.ClientConn
}

func newMembers(o Options, cfg config.Config) members {
	return members{opts: o, cfg: cfg, poll: cmpOr(o.Poll, 20*time.Millisecond), conns: map[string]*grpc.ClientConn{}}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (m *members) Config() config.Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	cfg := m.cfg
	cfg.Nodes = slices.Clone(m.cfg.Nodes)
	return cfg
}

func (m *members) IDs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, nb := range m.cfg.Nodes {
		out = append(out, nb.ID)
	}
	return out
}

func (m *members) node(id string) config.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	nb, _ := m.cfg.Node(id)
	return nb
}

func (m *members) HTTPAddr(id string) string { return m.node(id).HTTP }
func (m *members) GRPCAddr(id string) string { return m.node(id).GRPC }

func (m *members) Conn(id string) (*grpc.ClientConn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.conns[id]; ok {
		return c, nil
	}
	nb, err := m.cfg.Node(id)
	if err != nil {
		return nil, err
	}
	transport := insecure.NewCredentials()
	if m.cfg.TLS.Enabled() {
		tc, err := tlsconf.Client(m.cfg.TLS.CAFile)
		if err != nil {
			return nil, err
		}
		transport = credentials.NewTLS(tc)
	}
	c, err := grpc.NewClient(nb.GRPC, append([]grpc.DialOption{grpc.WithTransportCredentials(transport)}, m.opts.DialOptions...)...)
	if err != nil {
		return nil, err
	}
	m.conns[id] = c
	return c, nil
}

func (m *members) closeConns() {
	m.mu.Lock()
	conns := m.conns
	m.conns = map[string]*grpc.ClientConn{}
	m.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// views asks every running node; a node that does not answer has no view.
func (m *members) views(ctx context.Context) (map[string]nodeView, []string) {
	running := m.running()
	out := map[string]nodeView{}
	for _, id := range running {
		if v, err := m.status(ctx, id); err == nil {
			out[id] = v
		}
	}
	return out, running
}

func (m *members) Leader(ctx context.Context) (string, error) {
	views, running := m.views(ctx)
	for _, v := range views {
		if v.leader != "" && slices.Contains(running, v.leader) {
			return v.leader, nil
		}
	}
	return "", ErrNoLeader
}

func (m *members) WaitLeader(ctx context.Context) (string, error) {
	var leader string
	err := m.wait(ctx, "an agreed leader", func(views map[string]nodeView, running []string) error {
		leader = ""
		for _, id := range running {
			v, ok := views[id]
			switch {
			case !ok:
				return fmt.Errorf("%s does not answer", id)
			case v.leader == "" || !slices.Contains(running, v.leader):
				return fmt.Errorf("%s names leader %q", id, v.leader)
			case leader != "" && v.leader != leader:
				return fmt.Errorf("%s names %s, another %s", id, v.leader, leader)
			}
			leader = v.leader
		}
		if leader == "" {
			return errors.New("no node runs")
		}
		return nil
	})
	return leader, err
}

func (m *members) WaitServers(ctx context.Context, n int) error {
	return m.wait(ctx, fmt.Sprintf("%d servers", n), func(views map[string]nodeView, running []string) error {
		for _, id := range running {
			v, ok := views[id]
			if !ok || v.leader == "" || v.servers != n {
				return fmt.Errorf("%s sees leader %q and %d servers", id, v.leader, v.servers)
			}
		}
		return nil
	})
}

// wait polls cond over the running nodes' views until it holds or ctx ends.
func (m *members) wait(ctx context.Context, what string, cond func(map[string]nodeView, []string) error) error {
	for {
		views, running := m.views(ctx)
		err := cond(views, running)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for %s: %w (%w)", what, err, ctx.Err())
		case <-time.After(m.poll):
		}
	}
}

// dataDir is o.Dir, or a fresh temporary directory that remove deletes.
func dataDir(o Options, pattern string) (dir string, remove func(), err error) {
	if o.Dir != "" {
		return o.Dir, func() {}, nil
	}
	dir, err = os.MkdirTemp("", pattern)
	if err != nil {
		return "", nil, err
	}
	return dir, func() { _ = os.RemoveAll(dir) }, nil
}

// GRPCAddrs are every node's gRPC address, in configuration order.
func GRPCAddrs(c Cluster) []string {
	var out []string
	for _, id := range c.IDs() {
		out = append(out, c.GRPCAddr(id))
	}
	return out
}

// HTTPAddrs are every node's HTTP address, in configuration order.
func HTTPAddrs(c Cluster) []string {
	var out []string
	for _, id := range c.IDs() {
		out = append(out, c.HTTPAddr(id))
	}
	return out
}
