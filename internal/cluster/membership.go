package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/seed-7bfc04c2/dialtone/internal/cluster/clusterpb"
)

// nodeMeta is what each node gossips about itself.
type nodeMeta struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft"`
	GRPCAddr string `json:"grpc"`
	HTTPAddr string `json:"http"`
	// Leaving is set by a node that is leaving the cluster for good, so the
	// leader does not add it back while its removal is under way.
	Leaving bool `json:"leaving,omitempty"`
}

// metaDelegate serves this node's metadata and turns membership events into
// a wake-up for the reconciler.
type metaDelegate struct {
	mu     sync.Mutex
	meta   nodeMeta
	events chan struct{}

	// handlers route user messages by their first byte (MessageType).
	handlersMu sync.RWMutex
	handlers   map[MessageType]func(msg []byte)

	// peers is our copy of the member list, taken in memberlist's event
	// callbacks (which run under memberlist's node lock). memberlist updates
	// the *Node values that Members() returns in place, so reading them
	// elsewhere races.
	peersMu sync.RWMutex
	peers   map[string]peer
}

// peer is a copy of one memberlist node.
type peer struct {
	name  string
	addr  string // gossip host:port
	state memberlist.NodeStateType
	// decoded is the node's metadata, decoded once here rather than on
	// every lookup (a follower looks the leader up on each forwarded
	// write); ok is false when it did not decode or names no node.
	decoded nodeMeta
	ok      bool
}

func (d *metaDelegate) track(n *memberlist.Node) {
	p := peer{
		name:  n.Name,
		addr:  net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
		state: n.State,
	}
	p.ok = json.Unmarshal(n.Meta, &p.decoded) == nil && p.decoded.ID != ""
	d.peersMu.Lock()
	if d.peers == nil {
		d.peers = map[string]peer{}
	}
	d.peers[p.name] = p
	d.peersMu.Unlock()
}

func (d *metaDelegate) snapshot() []peer {
	d.peersMu.RLock()
	defer d.peersMu.RUnlock()
	out := make([]peer, 0, len(d.peers))
	for _, p := range d.peers {
		out = append(out, p)
	}
	return out
}

func (d *metaDelegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, _ := json.Marshal(d.meta)
	if len(b) > limit {
		return nil
	}
	return b
}

// NotifyMsg routes a user message to the handler of its type. memberlist
// reuses msg after the call: handlers must copy what they keep.
func (d *metaDelegate) NotifyMsg(msg []byte) {
	if len(msg) == 0 {
		return
	}
	d.handlersMu.RLock()
	h := d.handlers[MessageType(msg[0])]
	d.handlersMu.RUnlock()
	if h != nil {
		h(msg[1:])
	}
}

func (d *metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *metaDelegate) LocalState(join bool) []byte                { return nil }
func (d *metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

func (d *metaDelegate) wake() {
	select {
	case d.events <- struct{}{}:
	default:
	}
}
func (d *metaDelegate) NotifyJoin(n *memberlist.Node)   { d.track(n); d.wake() }
func (d *metaDelegate) NotifyLeave(n *memberlist.Node)  { d.track(n); d.wake() }
func (d *metaDelegate) NotifyUpdate(n *memberlist.Node) { d.track(n); d.wake() }

func (c *Cluster) openGossip() error {
	host, portStr, err := net.SplitHostPort(c.cfg.GossipAddr)
	if err != nil {
		return fmt.Errorf("cluster: gossip address %q: %w", c.cfg.GossipAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("cluster: gossip port %q: %w", portStr, err)
	}
	c.meta = &metaDelegate{
		meta: nodeMeta{
			ID:       c.cfg.NodeID,
			RaftAddr: c.RaftAddr(),
			GRPCAddr: c.cfg.GRPCAddr,
			HTTPAddr: c.cfg.HTTPAddr,
		},
		events: c.events,
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.cfg.NodeID
	mc.BindAddr = host
	mc.BindPort = port
	mc.AdvertisePort = port
	mc.Delegate = c.meta
	mc.Events = c.meta
	mc.Logger = stdLogger(c.log, "memberlist")
	// Loopback and LAN clusters: detect failures within about a second.
	mc.ProbeInterval = 500 * time.Millisecond
	mc.ProbeTimeout = 250 * time.Millisecond
	mc.GossipInterval = 100 * time.Millisecond
	if len(c.cfg.GossipKey) > 0 {
		mc.SecretKey = c.cfg.GossipKey
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("cluster: start gossip: %w", err)
	}
	c.ml = ml
	return nil
}

// members returns gossip members with their decoded metadata.
func (c *Cluster) members() []Member {
	var out []Member
	for _, p := range c.meta.snapshot() {
		if !p.ok {
			continue
		}
		m := p.decoded
		out = append(out, Member{
			ID:         m.ID,
			GossipAddr: p.addr,
			Status:     stateName(p.state),
			RaftAddr:   m.RaftAddr,
			GRPCAddr:   m.GRPCAddr,
			HTTPAddr:   m.HTTPAddr,
			leaving:    m.Leaving,
		})
	}
	slices.SortFunc(out, func(a, b Member) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "unknown"
}

// Member is one gossip member and its advertised addresses.
type Member struct {
	ID         string
	GossipAddr string
	Status     string
	RaftAddr   string
	GRPCAddr   string
	HTTPAddr   string
	leaving    bool
}

// Members lists the gossip members this node knows of.
func (c *Cluster) Members() []Member { return c.members() }

// member finds a member's metadata by node id.
func (c *Cluster) member(id string) (Member, bool) {
	for _, m := range c.members() {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// Join joins the gossip pool through any of addrs.
func (c *Cluster) Join(addrs []string) (int, error) {
	n, err := c.ml.Join(addrs)
	if err != nil && n == 0 {
		return 0, fmt.Errorf("cluster: join %v: %w", addrs, err)
	}
	return n, nil
}

// bootstrapAndJoin joins the configured gossip peers (retrying until one
// answers) and, for bootstrap_expect, bootstraps once enough nodes are seen.
func (c *Cluster) bootstrapAndJoin() {
	defer c.wg.Done()
	var peers []string
	for _, a := range c.cfg.Join {
		if a != c.GossipAddr() {
			peers = append(peers, a)
		}
	}
	backoff := 100 * time.Millisecond
	for len(peers) > 0 {
		if n, err := c.ml.Join(peers); err == nil || n > 0 {
			c.log.Info("joined gossip", "contacted", n)
			break
		}
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	if c.cfg.BootstrapExpect > 0 && len(c.cfg.InitialVoters) == 0 {
		c.bootstrapExpect()
	}
}

func (c *Cluster) bootstrapExpect() {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		cfg := c.raft.GetConfiguration()
		if err := cfg.Error(); err == nil && len(cfg.Configuration().Servers) > 0 {
			return // already part of a cluster
		}
		var alive []Member
		for _, m := range c.members() {
			if m.Status == "alive" {
				alive = append(alive, m)
			}
		}
		if len(alive) >= c.cfg.BootstrapExpect {
			// Every node sees the same sorted set, so every node proposes the
			// same configuration.
			var servers []raft.Server
			for _, m := range alive[:c.cfg.BootstrapExpect] {
				servers = append(servers, raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddr)})
			}
			err := c.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
			if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
				c.log.Error("bootstrap_expect bootstrap failed", "err", err)
			} else {
				c.log.Info("bootstrapped from bootstrap_expect", "voters", len(servers))
			}
			return
		}
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reconcileLoop runs on the leader: every alive gossip member that is not a
// Raft server becomes a voter. It never removes anyone.
func (c *Cluster) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		c.reconcile()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.events:
		}
	}
}

func (c *Cluster) reconcile() {
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	known := map[raft.ServerID]raft.ServerAddress{}
	for _, s := range f.Configuration().Servers {
		known[s.ID] = s.Address
	}
	for _, m := range c.members() {
		if m.Status != "alive" || m.leaving || m.RaftAddr == "" || c.recentlyRemoved(m.ID) {
			continue
		}
		if addr, ok := known[raft.ServerID(m.ID)]; ok && addr == raft.ServerAddress(m.RaftAddr) {
			continue
		}
		err := c.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, 5*time.Second).Error()
		if err != nil {
			c.log.Warn("adding voter failed", "id", m.ID, "err", err)
			continue
		}
		c.log.Info("added voter", "id", m.ID, "raft", m.RaftAddr)
	}
}

// removeHold is how long the reconciler leaves alone a server this node
// removed. A leaving node marks itself leaving in gossip before it asks
// for its removal, but the mark may reach the leader after the request:
// the reconciler then saw an alive, not-leaving member missing from the
// configuration and added it back at once, and the node left while still
// a voter (seen in the chaos suite's membership round). A node removed
// for good that comes back is added again after the hold.
const removeHold = 30 * time.Second

// recentlyRemoved reports whether this node removed id within removeHold.
func (c *Cluster) recentlyRemoved(id string) bool {
	c.removedMu.Lock()
	defer c.removedMu.Unlock()
	at, ok := c.removed[id]
	if ok && time.Since(at) >= removeHold {
		delete(c.removed, id)
		ok = false
	}
	return ok
}

func (c *Cluster) voterCount() int {
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	n := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}

// RemoveServer removes a server from the Raft configuration, through the
// leader. Use it for a server that is gone for good.
func (c *Cluster) RemoveServer(ctx context.Context, id string) error {
	return c.onLeader(ctx, func(ctx context.Context) error {
		return c.removeLocal(id)
	}, func(ctx context.Context, cl clusterpb.InternalClient) error {
		_, err := cl.RemoveServer(ctx, &clusterpb.RemoveServerRequest{Id: id})
		return err
	})
}

func (c *Cluster) removeLocal(id string) error {
	if c.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("cluster: configuration: %w", err)
	}
	found := false
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("%w: %s", ErrUnknownServer, id)
	}
	// Held before the removal: the reconciler must not see the server
	// gone from the configuration while it is still alive in gossip
	// without its leaving flag (which may not have reached this node).
	c.removedMu.Lock()
	if c.removed == nil {
		c.removed = map[string]time.Time{}
	}
	c.removed[id] = time.Now()
	c.removedMu.Unlock()
	if err := c.raft.RemoveServer(raft.ServerID(id), 0, 5*time.Second).Error(); err != nil {
		return mapRaftErr(err)
	}
	c.log.Info("removed server", "id", id)
	return nil
}

// Leave takes this node out of the cluster for good: it marks itself as
// leaving in gossip, hands over leadership if it leads, has the leader remove
// it from the Raft configuration, and leaves gossip. The caller then shuts
// the node down.
func (c *Cluster) Leave(ctx context.Context) error {
	c.meta.mu.Lock()
	c.meta.meta.Leaving = true
	c.meta.mu.Unlock()
	if err := c.ml.UpdateNode(time.Second); err != nil {
		c.log.Warn("gossip update", "err", err)
	}
	if c.raft.State() == raft.Leader {
		if c.voterCount() <= 1 {
			return errors.New("cluster: the only voter cannot leave")
		}
		if err := c.transfer(ctx, ""); err != nil {
			return fmt.Errorf("cluster: leave: %w", err)
		}
	}
	if err := c.RemoveServer(ctx, c.cfg.NodeID); err != nil && !errors.Is(err, ErrUnknownServer) {
		return fmt.Errorf("cluster: leave: %w", err)
	}
	if err := c.ml.Leave(time.Second); err != nil {
		c.log.Warn("gossip leave", "err", err)
	}
	c.log.Info("left the cluster")
	return nil
}

// TransferLeadership hands leadership to target (any up-to-date voter when
// empty). It must run on the leader; it returns the new leader's id.
func (c *Cluster) TransferLeadership(ctx context.Context, target string) (string, error) {
	if c.raft.State() != raft.Leader {
		return "", ErrNotLeader
	}
	if err := c.transfer(ctx, target); err != nil {
		return "", err
	}
	// The new leader is known once its first heartbeat arrives.
	for {
		if _, id := c.raft.LeaderWithID(); id != "" && string(id) != c.cfg.NodeID {
			return string(id), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (c *Cluster) transfer(ctx context.Context, target string) error {
	var f raft.Future
	if target == "" {
		f = c.raft.LeadershipTransfer()
	} else {
		var addr raft.ServerAddress
		cf := c.raft.GetConfiguration()
		if err := cf.Error(); err != nil {
			return err
		}
		for _, s := range cf.Configuration().Servers {
			if string(s.ID) == target {
				addr = s.Address
			}
		}
		if addr == "" {
			return fmt.Errorf("%w: %s", ErrUnknownServer, target)
		}
		f = c.raft.LeadershipTransferToServer(raft.ServerID(target), addr)
	}
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("leadership transfer: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// MessageType prefixes every node-to-node user message so subsystems can
// share the gossip transport.
type MessageType byte

// Message types.
const (
	// MsgPortUsage carries relayed port-usage reports.
	MsgPortUsage MessageType = 1
)

// SetMessageHandler routes user messages of type t to h (nil removes it).
// h runs on memberlist's packet goroutine: it must be quick and must copy
// the payload if it keeps it.
func (c *Cluster) SetMessageHandler(t MessageType, h func(payload []byte)) {
	d := c.meta
	d.handlersMu.Lock()
	defer d.handlersMu.Unlock()
	if d.handlers == nil {
		d.handlers = map[MessageType]func([]byte){}
	}
	if h == nil {
		delete(d.handlers, t)
		return
	}
	d.handlers[t] = h
}

// SendToPeers sends payload, prefixed with t, as one best-effort (UDP)
// message to every alive member but this node. It returns the number of
// peers sent to. Keep payloads under about 1,300 bytes (one datagram on a
// LAN); delivery is not guaranteed.
func (c *Cluster) SendToPeers(t MessageType, payload []byte) int {
	msg := make([]byte, 1+len(payload))
	msg[0] = byte(t)
	copy(msg[1:], payload)
	n := 0
	for _, p := range c.meta.snapshot() {
		if p.name == c.cfg.NodeID || p.state == memberlist.StateDead || p.state == memberlist.StateLeft {
			continue
		}
		if err := c.ml.SendToAddress(memberlist.Address{Addr: p.addr, Name: p.name}, msg); err != nil {
			c.log.Debug("user message", "to", p.name, "err", err)
			continue
		}
		n++
	}
	return n
}
