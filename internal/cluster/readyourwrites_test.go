package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
)

// TestAwaitLocalIsBounded: a forwarded write whose entry this node has not
// applied answers ErrNotAppliedLocally after LocalApplyTimeout, saying
// which index and what the node has applied; an applied index answers at
// once.
func TestAwaitLocalIsBounded(t *testing.T) {
	c := &Cluster{cfg: Config{NodeID: "n2", LocalApplyTimeout: 100 * time.Millisecond}, fsm: fsm.New(), ctx: context.Background()}
	start := time.Now()
	err := c.awaitLocal(context.Background(), 7)
	if !errors.Is(err, ErrNotAppliedLocally) || !strings.Contains(err.Error(), "index 7 committed, node n2 has applied 0") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
		t.Fatalf("waited %s, want about 100ms", d)
	}
	if err := c.awaitLocal(context.Background(), 0); err != nil {
		t.Fatalf("index 0: %v", err)
	}
	// The caller's deadline bounds the wait too.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	c.cfg.LocalApplyTimeout = time.Minute
	start = time.Now()
	if err := c.awaitLocal(ctx, 7); !errors.Is(err, ErrNotAppliedLocally) || time.Since(start) > time.Second {
		t.Fatalf("ctx deadline: %v after %s", err, time.Since(start))
	}
}
