package server

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/seed-7bfc04c2/dialtone/internal/cluster"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// scriptedProposer answers each Apply with the next error of its script
// (nil: success, at the call's index); past the end it repeats the last.
type scriptedProposer struct {
	mu     sync.Mutex
	script []error
	calls  int
}

func (p *scriptedProposer) Apply(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.script[min(p.calls, len(p.script)-1)]
	p.calls++
	if err != nil {
		return nil, 0, err
	}
	return &fsmpb.ApplyResult{Items: []*fsmpb.ItemResult{{Id: "x"}}}, uint64(p.calls), nil
}

func TestApplyReplaying(t *testing.T) {
	lost := cluster.ErrLeadershipLost
	tests := []struct {
		name     string
		script   []error
		timeout  time.Duration // 0: 5 s
		wantCode codes.Code    // codes.OK: success
		// calls: exact, or at least that many when atLeast.
		calls    int
		atLeast  bool
		replayed bool
	}{
		{name: "first try", script: []error{nil}, calls: 1},
		{name: "lost twice then committed", script: []error{lost, lost, nil}, calls: 3, replayed: true},
		{name: "not retried: no leader", script: []error{cluster.ErrNoLeader, nil}, wantCode: codes.Unavailable, calls: 1},
		{name: "not retried: shutdown", script: []error{cluster.ErrShutdown, nil}, wantCode: codes.Unavailable, calls: 1},
		{name: "not retried: other", script: []error{errors.New("disk full"), nil}, wantCode: codes.Internal, calls: 1},
		{name: "lost then another error", script: []error{lost, cluster.ErrNoLeader}, wantCode: codes.Unavailable, calls: 2, replayed: true},
		{name: "lost until the deadline", script: []error{lost}, timeout: 150 * time.Millisecond, wantCode: codes.Unavailable, calls: 3, atLeast: true, replayed: true},
		{name: "deadline during the call", script: []error{context.DeadlineExceeded}, wantCode: codes.DeadlineExceeded, calls: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			timeout := cmp.Or(tc.timeout, 5*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			p := &scriptedProposer{script: tc.script}
			res, idx, replayed, err := applyReplaying(ctx, p, &fsmpb.Command{})
			if got := status.Code(err); got != tc.wantCode {
				t.Fatalf("code %s (%v), want %s", got, err, tc.wantCode)
			}
			if tc.wantCode == codes.OK && (res == nil || idx != uint64(p.calls)) {
				t.Errorf("result %v at %d after %d calls", res, idx, p.calls)
			}
			if tc.atLeast && p.calls < tc.calls || !tc.atLeast && p.calls != tc.calls {
				t.Errorf("%d calls, want %d (at least: %v)", p.calls, tc.calls, tc.atLeast)
			}
			if replayed != tc.replayed {
				t.Errorf("replayed %v, want %v", replayed, tc.replayed)
			}
		})
	}
}
