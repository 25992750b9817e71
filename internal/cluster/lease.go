package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// ErrLeaseExpired means this node is (or was) the Raft leader but no
// quorum acknowledged it within LeaderLeaseTimeout: another node may be
// electing itself, so leader-only side effects outside Raft (placing a
// call) must not happen.
var ErrLeaseExpired = errors.New("leader lease expired")

// The leader lease fences work that leaves the cluster (a call sent to a
// media platform) and so cannot be undone by Raft: it is allowed only while
// a quorum acknowledged this node as leader less than LeaderLeaseTimeout
// ago. keepLease runs VerifyLeader in a loop on the leader and records the
// start of the last round that succeeded. Every follower of that quorum
// heard from this leader after that moment, and a hashicorp/raft follower
// neither votes for another candidate while it knows a leader nor forgets
// its leader before HeartbeatTimeout without contact; any quorum that
// elects a successor includes one of them. So no other node can lead
// before that moment + HeartbeatTimeout, and LeaderLeaseTimeout ≤
// HeartbeatTimeout (the configuration enforces it) keeps the lease inside
// that bound, on this node's monotonic clock alone. (A leadership transfer
// this node starts itself is the exception; it stops its leader work
// first.)
type lease struct {
	mu   sync.Mutex
	term uint64
	at   time.Time // start of the last acknowledged round
}

// keepLease renews the lease until ctx ends (leadership lost or node
// stopping): a round every LeaderLeaseTimeout/5, back to back when a round
// takes longer.
func (c *Cluster) keepLease(ctx context.Context) {
	every := max(c.cfg.LeaderLeaseTimeout/5, time.Millisecond)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		term := c.raft.CurrentTerm()
		start := time.Now()
		// Raft leaves a queued future unanswered at shutdown: wait with ctx.
		err := futureError(ctx, c.raft.VerifyLeader())
		switch {
		case err == nil:
			c.lease.mu.Lock()
			c.lease.term, c.lease.at = term, start
			c.lease.mu.Unlock()
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
			return
		}
		t.Reset(max(every-time.Since(start), 0))
	}
}

// CheckLease returns nil when this node is the leader, has applied every
// entry of earlier terms, and holds a lease acknowledged by a quorum no
// longer than LeaderLeaseTimeout ago; ErrNotLeader or ErrLeaseExpired
// otherwise. It is cheap (no I/O): the dialer calls it immediately before
// every call it sends.
func (c *Cluster) CheckLease() error {
	if !c.IsLeader() {
		return ErrNotLeader
	}
	c.lease.mu.Lock()
	term, at := c.lease.term, c.lease.at
	c.lease.mu.Unlock()
	if at.IsZero() || term != c.raft.CurrentTerm() {
		return fmt.Errorf("%w: none acknowledged in this term", ErrLeaseExpired)
	}
	if age := time.Since(at); age > c.cfg.LeaderLeaseTimeout {
		return fmt.Errorf("%w: last acknowledged %s ago (lease %s)", ErrLeaseExpired, age.Round(time.Millisecond), c.cfg.LeaderLeaseTimeout)
	}
	return nil
}

// Isolate cuts (on) or restores this node's Raft traffic in both
// directions, as a network partition from its peers would, leaving
// everything else (gossip, gRPC, the media platform) reachable. For tests
// of fencing; nothing in production calls it.
func (c *Cluster) Isolate(on bool) { c.stream.isolate(on) }
