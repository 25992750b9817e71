package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/seed-7bfc04c2/dialtone/internal/cluster/clusterpb"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Apply commits cmd through the leader and returns the state machine's
// result and the entry's log index. On a follower the command is forwarded
// to the leader; while no leader is known the call waits, until ctx's
// deadline or the configured ApplyTimeout. It returns once this node has
// applied the entry too, or, after LocalApplyTimeout, with the result, the
// index and ErrNotAppliedLocally (the write took effect). Forwarded commands may be
// delivered more than once after a transport failure, so commands must be
// safe to replay.
func (c *Cluster) Apply(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, uint64, error) {
	var (
		res *fsmpb.ApplyResult
		idx uint64
	)
	err := c.onLeader(ctx, func(ctx context.Context) error {
		var err error
		res, idx, err = c.applyLocal(ctx, cmd)
		return err
	}, func(ctx context.Context, cl clusterpb.InternalClient) error {
		resp, err := c.forward(ctx, cl, cmd)
		if err != nil {
			return err
		}
		res, idx = resp.GetResult(), resp.GetIndex()
		return nil
	})
	if err == nil {
		// Read-your-writes on the node that took the write
		// (readyourwrites.go); the leader applied it before answering.
		err = c.awaitLocal(ctx, idx)
	}
	return res, idx, err
}

// forward sends cmd to the leader as the log entry it will propose
// (ApplyEntry), encoded here so that the leader only stamps its time on
// it; a leader that predates ApplyEntry gets the command (Apply).
func (c *Cluster) forward(ctx context.Context, cl clusterpb.InternalClient, cmd *fsmpb.Command) (*clusterpb.ApplyResponse, error) {
	entry, err := fsm.EncodeAt(cmd, 0) // the leader's time replaces 0
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err) // not sent
	}
	resp, err := cl.ApplyEntry(ctx, &clusterpb.ApplyEntryRequest{Entry: entry})
	if status.Code(err) == codes.Unimplemented {
		return cl.Apply(ctx, &clusterpb.ApplyRequest{Command: cmd})
	}
	return resp, err
}

// applyLocal applies on this node, which must be the leader.
func (c *Cluster) applyLocal(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, uint64, error) {
	return c.applyStamped(ctx, func(now int64) ([]byte, error) { return fsm.EncodeAt(cmd, now) })
}

// applyEntryLocal applies a forwarded entry (ApplyEntry) on this node,
// which must be the leader.
func (c *Cluster) applyEntryLocal(ctx context.Context, entry []byte) (*fsmpb.ApplyResult, uint64, error) {
	return c.applyStamped(ctx, func(now int64) ([]byte, error) { return fsm.Restamp(entry, now) })
}

// applyStamped proposes the entry stamp makes at the leader's time (the
// state machine never reads a clock; the fsm package owns everything else
// about the entry's encoding), if this node leads.
func (c *Cluster) applyStamped(ctx context.Context, stamp func(nowUnixMs int64) ([]byte, error)) (*fsmpb.ApplyResult, uint64, error) {
	if c.raft.State() != raft.Leader {
		return nil, 0, ErrNotLeader
	}
	data, err := stamp(c.cfg.Now().UnixMilli())
	if err != nil {
		return nil, 0, fmt.Errorf("cluster: %w", err)
	}
	return c.applyData(ctx, data)
}

// applyData proposes an encoded entry and waits for its result.
func (c *Cluster) applyData(ctx context.Context, data []byte) (*fsmpb.ApplyResult, uint64, error) {
	timeout := c.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, 0, context.DeadlineExceeded
		}
	}
	f := c.raft.Apply(data, timeout)
	if err := futureError(ctx, f); err != nil {
		if ctx.Err() != nil {
			// The outcome is unknown, as after a lost leadership.
			return nil, 0, fmt.Errorf("cluster: apply: outcome unknown: %w", ctx.Err())
		}
		return nil, 0, mapRaftErr(err)
	}
	switch r := f.Response().(type) {
	case *fsmpb.ApplyResult:
		return r, f.Index(), nil
	case error:
		return nil, f.Index(), fmt.Errorf("cluster: apply: %w", r)
	default:
		return nil, f.Index(), fmt.Errorf("cluster: apply: unexpected response %T", r)
	}
}

// futureError waits for f's error, or for ctx to end (then ctx's error).
// Raft does not answer a future still queued when leadership is lost or
// the node shuts down (barriers and applies carry no shutdown channel), so
// waiting on f alone may never return; the goroutine left waiting then
// ends with the process.
func futureError(ctx context.Context, f raft.Future) error {
	errc := make(chan error, 1)
	go func() { errc <- f.Error() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mapRaftErr turns raft errors into the package's sentinel errors.
func mapRaftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
		// Never entered the log: safe to retry elsewhere.
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w: %v", ErrLeadershipLost, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %v", ErrShutdown, err)
	}
	return err
}

// onLeader runs local on this node when it leads, or remote against the
// leader's internal service, retrying while there is no (reachable) leader
// until the deadline.
func (c *Cluster) onLeader(ctx context.Context, local func(context.Context) error, remote func(context.Context, clusterpb.InternalClient) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.ApplyTimeout)
		defer cancel()
	}
	backoff := 10 * time.Millisecond
	var last error
	for {
		if c.ctx.Err() != nil {
			return ErrShutdown
		}
		var err error
		retry := false
		if c.raft.State() == raft.Leader {
			err = local(ctx)
			retry = errors.Is(err, ErrNotLeader)
		} else if addr, ok := c.leaderGRPC(); !ok {
			err, retry = ErrNoLeader, true
		} else if cc, derr := c.conn(addr); derr != nil {
			err, retry = derr, true
		} else {
			// A leader cut off from the cluster may never answer: give up on
			// it as soon as another leader is known, and retry there.
			// Forwarded commands are safe to replay (see Apply).
			rctx, cancel := context.WithCancel(ctx)
			moved := c.cancelOnLeaderMove(rctx, cancel, addr)
			err = remote(rctx, clusterpb.NewInternalClient(cc))
			cancel()
			if <-moved && err != nil && ctx.Err() == nil {
				err, retry = fmt.Errorf("%w: the leader changed while the call was forwarded to %s", ErrLeadershipLost, addr), true
			} else if err != nil {
				err, retry = fromStatus(err)
			}
		}
		if err == nil || !retry {
			return err
		}
		last = err
		select {
		case <-ctx.Done():
			if errors.Is(last, ErrNotLeader) {
				last = ErrNoLeader
			}
			return fmt.Errorf("%w (%w)", last, ctx.Err())
		case <-c.ctx.Done():
			return ErrShutdown
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// cancelOnLeaderMove calls cancel when a leader other than the one at addr
// is known (or this node leads) before ctx ends, and then answers true on
// the returned channel; false when ctx ended first.
func (c *Cluster) cancelOnLeaderMove(ctx context.Context, cancel context.CancelFunc, addr string) <-chan bool {
	moved := make(chan bool, 1)
	go func() {
		for {
			seen := c.leaderSeenCh() // before the check: no observation is missed
			if a, ok := c.leaderGRPC(); (ok && a != addr) || c.raft.State() == raft.Leader {
				cancel()
				moved <- true
				return
			}
			select {
			case <-ctx.Done():
				moved <- false
				return
			case <-seen:
			}
		}
	}()
	return moved
}

// leaderGRPC returns the leader's internal gRPC address from gossip.
func (c *Cluster) leaderGRPC() (string, bool) {
	_, id := c.raft.LeaderWithID()
	if id == "" || string(id) == c.cfg.NodeID {
		return "", false
	}
	m, ok := c.member(string(id))
	if !ok || m.GRPCAddr == "" {
		return "", false
	}
	return m.GRPCAddr, true
}

// LeaderConn returns a connection to the current leader's gRPC server, for
// calls only the leader can answer (its dialer engine's statistics). It is
// the pooled internal connection: it carries the configured DialOptions
// (transport credentials and the cluster secret) and must not be closed.
// On the leader it is a connection to this node's own server. It fails
// with ErrNoLeader when no leader is known, ErrShutdown when stopping.
func (c *Cluster) LeaderConn() (*grpc.ClientConn, error) {
	if c.ctx.Err() != nil {
		return nil, ErrShutdown
	}
	addr, ok := c.leaderGRPC()
	if !ok {
		if c.raft.State() != raft.Leader || c.cfg.GRPCAddr == "" {
			return nil, ErrNoLeader
		}
		addr = c.cfg.GRPCAddr
	}
	return c.conn(addr)
}

// ReadIndex returns an index that covers every write acknowledged before the
// call: the leader confirms it still leads and answers its applied index.
// Waiting for this node to apply that index (WaitApplied) then makes a local
// read linearizable.
func (c *Cluster) ReadIndex(ctx context.Context) (uint64, error) {
	var idx uint64
	err := c.onLeader(ctx, func(ctx context.Context) error {
		var err error
		idx, err = c.readIndexLocal()
		return err
	}, func(ctx context.Context, cl clusterpb.InternalClient) error {
		resp, err := cl.ReadIndex(ctx, &clusterpb.ReadIndexRequest{})
		if err != nil {
			return err
		}
		idx = resp.GetIndex()
		return nil
	})
	return idx, err
}

func (c *Cluster) readIndexLocal() (uint64, error) {
	if !c.IsLeader() {
		// Not leader, or a new leader whose barrier has not yet applied
		// the earlier terms: its commit index may be behind.
		return 0, ErrNotLeader
	}
	// Every acknowledged write was applied to the leader's state machine
	// before it was acknowledged, so the leader's applied index covers them
	// all. (The commit index would not do: it counts no-op and
	// configuration entries that never reach a state machine.)
	idx := c.fsm.AppliedIndex()
	if err := c.raft.VerifyLeader().Error(); err != nil {
		return 0, mapRaftErr(err)
	}
	return idx, nil
}

// WaitApplied blocks until this node's state machine has applied index.
func (c *Cluster) WaitApplied(ctx context.Context, index uint64) error {
	return c.fsm.WaitForIndex(ctx, index)
}

// RegisterGRPC registers the internal service on s.
func (c *Cluster) RegisterGRPC(s grpc.ServiceRegistrar) {
	clusterpb.RegisterInternalServer(s, &internalServer{c: c})
}

type internalServer struct {
	clusterpb.UnimplementedInternalServer
	c *Cluster
}

func (s *internalServer) Apply(ctx context.Context, req *clusterpb.ApplyRequest) (*clusterpb.ApplyResponse, error) {
	if req.GetCommand() == nil {
		return nil, toStatus(errors.New("missing command"))
	}
	res, idx, err := s.c.applyLocal(ctx, req.GetCommand())
	if err != nil {
		return nil, toStatus(err)
	}
	return &clusterpb.ApplyResponse{Index: idx, Result: res}, nil
}

func (s *internalServer) ApplyEntry(ctx context.Context, req *clusterpb.ApplyEntryRequest) (*clusterpb.ApplyResponse, error) {
	res, idx, err := s.c.applyEntryLocal(ctx, req.GetEntry())
	if err != nil {
		return nil, toStatus(err)
	}
	return &clusterpb.ApplyResponse{Index: idx, Result: res}, nil
}

func (s *internalServer) ReadIndex(ctx context.Context, _ *clusterpb.ReadIndexRequest) (*clusterpb.ReadIndexResponse, error) {
	idx, err := s.c.readIndexLocal()
	if err != nil {
		return nil, toStatus(err)
	}
	return &clusterpb.ReadIndexResponse{Index: idx}, nil
}

func (s *internalServer) RemoveServer(ctx context.Context, req *clusterpb.RemoveServerRequest) (*clusterpb.RemoveServerResponse, error) {
	if err := s.c.removeLocal(req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	return &clusterpb.RemoveServerResponse{}, nil
}
