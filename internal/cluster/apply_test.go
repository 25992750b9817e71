package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// singleNode opens a one-voter cluster over f on free loopback ports and
// waits until it acts as leader.
func singleNode(t *testing.T, f FSM) *Cluster {
	t.Helper()
	c, err := Open(Config{
		NodeID:           "n1",
		DataDir:          t.TempDir(),
		RaftAddr:         "127.0.0.1:0",
		GossipAddr:       "127.0.0.1:0",
		InitialVoters:    []Peer{{ID: "n1"}},
		HeartbeatTimeout: 100 * time.Millisecond,
		ElectionTimeout:  100 * time.Millisecond,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	for deadline := time.Now().Add(10 * time.Second); !c.IsLeader(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no leadership within 10 s")
		}
	}
	return c
}

// TestApplyEncodesThroughFSM: the leader proposes only what fsm.EncodeAt
// accepts, stamped with its clock; a bumped version or an unknown command
// is refused before it reaches the log, and changes nothing.
func TestApplyEncodesThroughFSM(t *testing.T) {
	f := fsm.New()
	c := singleNode(t, f)
	leading, term, _ := c.Leadership()
	if !leading || term == 0 {
		t.Fatalf("Leadership() = %v, %d after IsLeader", leading, term)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	create := &fsmpb.Command{Body: &fsmpb.Command_Create{Create: &fsmpb.CreateRequests{
		Requests: []*fsmpb.Request{{Id: "a", Tenant: "t1", MaxAttempts: 1, TtlMs: 60_000}},
	}}}
	before := time.Now().UnixMilli()
	res, idx, err := c.Apply(ctx, create)
	if err != nil || res.GetItems()[0].GetCode() != fsmpb.Code_CODE_OK {
		t.Fatalf("create: %v, %v", res, err)
	}
	r, ok := f.Get("a")
	if !ok || r.CreatedUnixMs < before || r.CreatedUnixMs > time.Now().UnixMilli() {
		t.Fatalf("record %v: not stamped with the leader's clock", r)
	}

	for _, tc := range []struct {
		name string
		cmd  *fsmpb.Command
		want error
	}{
		{"bumped version", &fsmpb.Command{Version: fsm.CommandVersion + 1, Body: &fsmpb.Command_Claim{Claim: &fsmpb.ClaimRequests{Ids: []string{"a"}}}}, fsm.ErrCommandVersion},
		{"no body", &fsmpb.Command{}, fsm.ErrUnknownCommand},
	} {
		if _, _, err := c.Apply(ctx, tc.cmd); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	if f.AppliedIndex() != idx {
		t.Errorf("applied index %d after refused commands, want %d", f.AppliedIndex(), idx)
	}
	if r, _ := f.Get("a"); r.State != fsmpb.State_PENDING {
		t.Errorf("record changed by a refused command: %v", r)
	}
}
