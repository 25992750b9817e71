package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/seed-7bfc04c2/dialtone/internal/cluster/clusterpb"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// singleNode opens a one-voter cluster over f on free loopback ports and
// waits until it acts as leader; opts adjust the configuration first.
func singleNode(t *testing.T, f FSM, opts ...func(*Config)) *Cluster {
	t.Helper()
	cfg := Config{
		NodeID:           "n1",
		DataDir:          t.TempDir(),
		RaftAddr:         "127.0.0.1:0",
		GossipAddr:       "127.0.0.1:0",
		InitialVoters:    []Peer{{ID: "n1"}},
		HeartbeatTimeout: 100 * time.Millisecond,
		ElectionTimeout:  100 * time.Millisecond,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := Open(cfg, f)
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

// oldLeader is the internal service of a leader that predates
// ApplyEntry: it answers Unimplemented to it, as gRPC does for a method
// the server does not register.
type oldLeader struct {
	clusterpb.UnimplementedInternalServer
	s *internalServer
}

func (o oldLeader) Apply(ctx context.Context, req *clusterpb.ApplyRequest) (*clusterpb.ApplyResponse, error) {
	return o.s.Apply(ctx, req)
}

// TestForwardedEntry: a follower's write reaches the leader as the
// encoded entry (ApplyEntry), which the leader stamps with its own clock
// without decoding it; a leader without ApplyEntry gets the command
// instead; an entry the leader cannot propose is refused over the wire
// and changes nothing.
func TestForwardedEntry(t *testing.T) {
	leaderNow := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	f := fsm.New()
	c := singleNode(t, f, func(cfg *Config) { cfg.Now = func() time.Time { return leaderNow } })
	serve := func(register func(grpc.ServiceRegistrar)) clusterpb.InternalClient {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		register(srv)
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cc.Close() })
		return clusterpb.NewInternalClient(cc)
	}
	current := serve(c.RegisterGRPC)
	old := serve(func(s grpc.ServiceRegistrar) {
		clusterpb.RegisterInternalServer(s, oldLeader{s: &internalServer{c: c}})
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	create := func(id string) *fsmpb.Command {
		return fsm.CreateCommand([]*fsmpb.Request{{Id: id, Tenant: "t1", MaxAttempts: 1, TtlMs: 60_000}}, 0)
	}
	for _, tc := range []struct {
		name string
		cl   clusterpb.InternalClient
	}{{"ApplyEntry", current}, {"Apply to an older leader", old}} {
		id := "req-" + tc.name
		resp, err := c.forward(ctx, tc.cl, create(id))
		if err != nil || resp.GetResult().GetItems()[0].GetCode() != fsmpb.Code_CODE_OK {
			t.Fatalf("%s: %v, %v", tc.name, resp, err)
		}
		r, ok := f.Get(id)
		if !ok || r.CreatedUnixMs != leaderNow.UnixMilli() {
			t.Fatalf("%s: record %v: not stamped with the leader's clock %d", tc.name, r, leaderNow.UnixMilli())
		}
	}

	applied := f.AppliedIndex()
	// A forwarded entry the leader cannot propose (a newer follower's
	// body): refused on the leader, nothing reaches the log.
	entry, err := fsm.EncodeAt(create("never"), 0)
	if err != nil {
		t.Fatal(err)
	}
	entry = protowire.AppendBytes(protowire.AppendTag(entry, 99, protowire.BytesType), nil)
	_, err = current.ApplyEntry(ctx, &clusterpb.ApplyEntryRequest{Entry: entry})
	if status.Code(err) != codes.Internal {
		t.Fatalf("unknown envelope field: %v, want Internal", err)
	}
	if _, ok := f.Get("never"); ok || f.AppliedIndex() != applied {
		t.Fatalf("a refused entry changed the state (applied %d, was %d)", f.AppliedIndex(), applied)
	}
}
