package node

import (
	"context"
	"log/slog"
	"sync"
)

// leadership is what runLeaderTasks watches (cluster.Cluster).
type leadership interface {
	// Leadership reports whether this node acts as leader (it leads and a
	// barrier has applied every earlier entry), a number that differs for
	// every period it leads, and a channel closed at the next change.
	Leadership() (leading bool, term uint64, changed <-chan struct{})
}

// runLeaderTasks runs the node's leader-only work until ctx ends, as
// Nomad's monitorLeadership does: each time this node starts acting as
// leader it starts every task (establishLeadership), and when it stops
// leading, or leads again in a new term it was not seen to lose, it
// cancels them and waits for them to return (revokeLeadership) before
// anything else. So no task of an old term runs beside one of a new term.
func runLeaderTasks(ctx context.Context, l leadership, log *slog.Logger, tasks ...func(context.Context)) {
	var (
		revoke func()
		term   uint64
	)
	defer func() {
		if revoke != nil {
			revoke()
		}
	}()
	for {
		leading, t, changed := l.Leadership()
		if revoke != nil && (!leading || t != term) {
			revoke()
			revoke = nil
		}
		if leading && revoke == nil {
			revoke, term = establishLeadership(ctx, log, tasks), t
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// establishLeadership starts tasks and returns what stops them: it cancels
// their context and waits for every one to return.
func establishLeadership(ctx context.Context, log *slog.Logger, tasks []func(context.Context)) (revoke func()) {
	log.Info("starting leader tasks", "tasks", len(tasks))
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, task := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			task(ctx)
		}()
	}
	return func() {
		cancel()
		wg.Wait()
		log.Info("stopped leader tasks")
	}
}
