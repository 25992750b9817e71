package node

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// fakeLeadership is a leadership the test moves by hand.
type fakeLeadership struct {
	mu      sync.Mutex
	leading bool
	term    uint64
	changed chan struct{}
}

func newFakeLeadership() *fakeLeadership { return &fakeLeadership{changed: make(chan struct{})} }

func (f *fakeLeadership) Leadership() (bool, uint64, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leading, f.term, f.changed
}

// set moves to leading (a new term when it starts leading, or when
// newTerm) and wakes the watcher.
func (f *fakeLeadership) set(leading, newTerm bool) {
	f.mu.Lock()
	if leading && (!f.leading || newTerm) {
		f.term++
	}
	f.leading = leading
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// taskLog records the terms in which a task ran and checks that no two
// runs overlap.
type taskLog struct {
	t       *testing.T
	l       *fakeLeadership
	mu      sync.Mutex
	running int
	started []uint64 // the term current at each start
	stopped int
}

func (g *taskLog) task(ctx context.Context) {
	_, term, _ := g.l.Leadership()
	g.mu.Lock()
	g.running++
	if g.running > 1 {
		g.t.Error("a leader task runs twice at once")
	}
	g.started = append(g.started, term)
	g.mu.Unlock()
	<-ctx.Done()
	g.mu.Lock()
	g.running--
	g.stopped++
	g.mu.Unlock()
}

func (g *taskLog) state() (running, starts, stopped int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running, len(g.started), g.stopped
}

func TestRunLeaderTasks(t *testing.T) {
	type step struct {
		leading, newTerm bool
		// What the task log must reach after the step.
		running, starts, stopped int
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"never leads", []step{{false, false, 0, 0, 0}}},
		{"leads, then loses", []step{{true, false, 1, 1, 0}, {false, false, 0, 1, 1}}},
		{"leads twice", []step{{true, false, 1, 1, 0}, {false, false, 0, 1, 1}, {true, false, 1, 2, 1}}},
		// A loss and regain the watcher never saw as a loss still restarts
		// the tasks: the old term's must not run on into the new one.
		{"new term unseen", []step{{true, false, 1, 1, 0}, {true, true, 1, 2, 1}}},
		// The loss after a wake without change shows whether the wake
		// restarted the tasks (it would make 2 starts and 2 stops).
		{"same term, spurious wake", []step{{true, false, 1, 1, 0}, {true, false, 1, 1, 0}, {false, false, 0, 1, 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newFakeLeadership()
			g := &taskLog{t: t, l: l}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				runLeaderTasks(ctx, l, slog.New(slog.NewTextHandler(io.Discard, nil)), g.task)
			}()
			for i, s := range tc.steps {
				l.set(s.leading, s.newTerm)
				deadline := time.Now().Add(5 * time.Second)
				for {
					r, st, sp := g.state()
					if r == s.running && st == s.starts && sp == s.stopped {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("step %d: running %d, starts %d, stopped %d; want %d, %d, %d", i, r, st, sp, s.running, s.starts, s.stopped)
					}
					time.Sleep(time.Millisecond)
				}
			}
			// Stopping the node stops the tasks of the current term and
			// waits for them.
			cancel()
			<-done
			if r, _, _ := g.state(); r != 0 {
				t.Fatalf("%d tasks still running after runLeaderTasks returned", r)
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			for i := 1; i < len(g.started); i++ {
				if g.started[i] == g.started[i-1] {
					t.Errorf("tasks started twice in term %d", g.started[i])
				}
			}
		})
	}
}
