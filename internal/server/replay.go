package server

import (
	"context"
	"errors"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/cluster"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// proposer is what applyReplaying needs of a Replicator.
type proposer interface {
	Apply(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, uint64, error)
}

// Backoff between proposals after a lost leadership: the first wait, then
// doubling up to the cap. An election takes about one election timeout.
const (
	replayBackoff    = 20 * time.Millisecond
	replayMaxBackoff = 500 * time.Millisecond
)

// applyReplaying commits cmd, which must be safe to replay, through repl.
// When leadership is lost while it is in flight (cluster.ErrLeadershipLost:
// the entry may or may not have been committed) it proposes cmd again,
// with backoff, until it gets an answer or ctx ends. replayed reports that
// it did, so the answer may be that of a replay (a delete that finds its
// item already gone). Any other error ends it at once. Errors are gRPC
// statuses (replError).
func applyReplaying(ctx context.Context, repl proposer, cmd *fsmpb.Command) (res *fsmpb.ApplyResult, index uint64, replayed bool, err error) {
	backoff := replayBackoff
	for {
		res, index, err = repl.Apply(ctx, cmd)
		if err == nil {
			return res, index, replayed, nil
		}
		if !errors.Is(err, cluster.ErrLeadershipLost) || ctx.Err() != nil {
			return nil, 0, replayed, replError(err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, 0, replayed, replError(err)
		case <-t.C:
		}
		replayed = true
		backoff = min(2*backoff, replayMaxBackoff)
	}
}
