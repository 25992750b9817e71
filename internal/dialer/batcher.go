package dialer

import (
	"context"
	"sync"
)

// batcher group-commits items: while one Raft entry is being committed,
// new items gather, and the next entry carries all of them (up to max).
// So the commit rate is bounded by Raft latency, not the item rate.
type batcher[T any] struct {
	max    int
	commit func(ctx context.Context, items []T) // applies one entry; reports per item itself

	mu      sync.Mutex
	pending []T
	wake    chan struct{}
}

func newBatcher[T any](maxItems int, commit func(ctx context.Context, items []T)) *batcher[T] {
	return &batcher[T]{max: maxItems, commit: commit, wake: make(chan struct{}, 1)}
}

func (b *batcher[T]) add(items ...T) {
	if len(items) == 0 {
		return
	}
	b.mu.Lock()
	b.pending = append(b.pending, items...)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// run commits until ctx ends; what is pending then is dropped (the engine
// is stopping and its successor reconciles the state).
func (b *batcher[T]) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		}
		for ctx.Err() == nil {
			b.mu.Lock()
			n := min(len(b.pending), b.max)
			if n == 0 {
				b.mu.Unlock()
				break
			}
			items := make([]T, n)
			copy(items, b.pending)
			b.pending = append(b.pending[:0], b.pending[n:]...)
			b.mu.Unlock()
			b.commit(ctx, items)
		}
	}
}
