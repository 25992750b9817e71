package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotAppliedLocally means a write was committed (its outcome is known:
// it took effect) but this node, which took it from the client and
// forwarded it to the leader, had not applied it within
// Config.LocalApplyTimeout. Reads on this node may not show it yet; it
// does not need to be retried.
var ErrNotAppliedLocally = errors.New("write committed but not yet applied on this node")

// defaultLocalApplyTimeout bounds the read-your-writes wait of a forwarded
// write (Config.LocalApplyTimeout).
const defaultLocalApplyTimeout = 2 * time.Second

// awaitLocal waits until this node's state machine has applied index, the
// log index of a write this node forwarded to the leader, so that the
// client that wrote through this node reads its own write here as soon as
// the answer arrives (a follower otherwise applies the entry some
// milliseconds after the leader answered). The wait is bounded by
// LocalApplyTimeout and by ctx.
func (c *Cluster) awaitLocal(ctx context.Context, index uint64) error {
	if index == 0 || c.fsm.AppliedIndex() >= index {
		return nil
	}
	timeout := c.cfg.LocalApplyTimeout
	if timeout <= 0 {
		timeout = defaultLocalApplyTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.fsm.WaitForIndex(wctx, index); err != nil {
		if c.ctx.Err() != nil {
			return fmt.Errorf("%w: index %d committed; %w", ErrNotAppliedLocally, index, ErrShutdown)
		}
		return fmt.Errorf("%w: index %d committed, node %s has applied %d after waiting %s; it will show here shortly (read with min_index=%d)",
			ErrNotAppliedLocally, index, c.cfg.NodeID, c.fsm.AppliedIndex(), timeout, index)
	}
	return nil
}
