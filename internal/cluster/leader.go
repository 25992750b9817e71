package cluster

import (
	"context"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// ApplyLeader commits cmd only if this node is the leader; it never
// forwards. Leader-only work (the dialer engine) uses it so that a command
// proposed by a deposed leader cannot reach its successor and be applied
// after the successor has reconciled the state (for example an attempt
// start the old leader will never dial). It fails with ErrNotLeader on a
// follower.
func (c *Cluster) ApplyLeader(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, uint64, error) {
	return c.applyLocal(ctx, cmd)
}
