package server

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/auth"
	"github.com/seed-7bfc04c2/dialtone/internal/dialer"
	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

func TestPacingFromPublic(t *testing.T) {
	p, fe := PacingFromPublic("acme", &pb.Pacing{
		Caps: 12.5, PortLoadFactor: 90, BatchSizeMode: "Fixed", BatchSize: 40, QueueLowWatermark: 30,
		SlotCalculation: "EQUAL", EqualPriorityNewAndOld: true,
		NextRetryInterval: "5000ms", CleanInterval: "3m", Retention: "1h30m",
	})
	want := &fsmpb.Pacing{
		Tenant: "acme", Caps: 12.5, PortLoadFactor: 90, BatchSizeMode: "Fixed", BatchSize: 40, QueueLowWatermark: 30,
		SlotCalculation: "EQUAL", EqualPriorityNewAndOld: true,
		NextRetryIntervalMs: 5000, CleanIntervalMs: 180_000, RetentionMs: 5_400_000,
	}
	if len(fe) > 0 || !proto.Equal(p, want) {
		t.Fatalf("got %v %v", p, fe)
	}
	// Back: stored durations as the clients write them, inherited ones empty.
	back := PacingToPublic(want)
	if back.NextRetryInterval != "5s" || back.CleanInterval != "180s" || back.Retention != "5400s" {
		t.Fatalf("PacingToPublic = %v", back)
	}
	if s := PacingToPublic(&fsmpb.Pacing{Caps: 1}); s.NextRetryInterval != "" || s.Retention != "" {
		t.Fatalf("inherited durations shown: %v", s)
	}
	// The settings may name their tenant.
	if _, fe := PacingFromPublic("acme", &pb.Pacing{Tenant: "acme"}); len(fe) > 0 {
		t.Fatalf("own tenant: %v", fe)
	}
	if _, fe := PacingFromPublic("", &pb.Pacing{Tenant: GlobalPacingTenant}); len(fe) > 0 {
		t.Fatalf("_global: %v", fe)
	}
	// Nil settings: an empty entry.
	if p, fe := PacingFromPublic("", nil); len(fe) > 0 || !proto.Equal(p, &fsmpb.Pacing{}) {
		t.Fatalf("nil settings: %v %v", p, fe)
	}

	cases := []struct {
		s      *pb.Pacing
		fields string
	}{
		{&pb.Pacing{Caps: 200001}, "pacing.caps"},
		{&pb.Pacing{NextRetryInterval: "10"}, "pacing.next_retry_interval"},
		{&pb.Pacing{NextRetryInterval: "50ms"}, "pacing.next_retry_interval"},
		{&pb.Pacing{CleanInterval: "1500us"}, "pacing.clean_interval"},
		{&pb.Pacing{Retention: "721h"}, "pacing.retention"},
		{&pb.Pacing{BatchSize: 3}, "pacing.batch_size"},
		{&pb.Pacing{Tenant: "globex"}, "pacing.tenant"},
		{&pb.Pacing{Tenant: "_global"}, "pacing.tenant"},
		// In the message's field order whatever the check order.
		{&pb.Pacing{Retention: "x", Caps: -1, BatchSizeMode: "y", NextRetryInterval: "1ns"},
			"pacing.caps,pacing.batch_size_mode,pacing.next_retry_interval,pacing.retention"},
	}
	for _, c := range cases {
		_, fe := PacingFromPublic("acme", c.s)
		var got []string
		for _, e := range fe {
			got = append(got, e.Field)
		}
		if strings.Join(got, ",") != c.fields {
			t.Errorf("%v: fields %v, want %s", c.s, fe, c.fields)
		}
	}
}

// pacing.Validate and the API agree on tenant names.
func TestPacingTenantPatternMatchesAPI(t *testing.T) {
	for _, name := range []string{"acme", "a", "A.b_c-9", "9lives", strings.Repeat("x", 64), strings.Repeat("x", 65),
		"-x", "_global", ".x", "a b", "a/b", "é", "a\n", "acme*"} {
		apiOK := ValidateTenant(name) == nil
		pacingOK := pacing.Validate(&fsmpb.Pacing{Tenant: name}) == nil
		if apiOK != pacingOK {
			t.Errorf("%q: api %v, pacing %v", name, apiOK, pacingOK)
		}
	}
}

func TestEffectivePacingToPublic(t *testing.T) {
	e := EffectivePacingToPublic(pacing.Resolve(&fsmpb.Pacing{BatchSizeMode: pacing.BatchFixed, BatchSize: 50}, &fsmpb.Pacing{Tenant: "a", BatchSizeMode: pacing.BatchAvailablePorts}))
	if e.BatchSize != 0 || e.BatchSizeMode != pacing.BatchAvailablePorts || e.Retention != "0s" || e.NextRetryInterval != "10s" || e.CleanInterval != "180s" || e.Caps != pacing.DefaultCAPS {
		t.Fatalf("effective = %v", e)
	}
}

func TestDialerPacingScopingAndReplay(t *testing.T) {
	f := fsm.New()
	repl := &localRepl{f: f}
	s := NewDialer(f, repl, nil, nil, DialerOptions{})
	ops := auth.NewContext(context.Background(), &auth.Principal{Name: "ops", Tenants: []string{"*"}, Roles: []auth.Role{auth.RoleAdmin, auth.RoleRead}})
	acme := auth.NewContext(context.Background(), &auth.Principal{Name: "acme-admin", Tenants: []string{"acme"}, Roles: []auth.Role{auth.RoleAdmin, auth.RoleRead}})
	odd := auth.NewContext(context.Background(), &auth.Principal{Name: "odd", Tenants: []string{"_global"}, Roles: []auth.Role{auth.RoleAdmin, auth.RoleRead}})
	viewer := auth.NewContext(context.Background(), &auth.Principal{Name: "v", Tenants: []string{"acme"}, Roles: []auth.Role{auth.RoleRead}})

	set := func(ctx context.Context, tenant string, caps float64) error {
		_, err := s.SetPacing(ctx, &pb.SetPacingRequest{Tenant: tenant, Pacing: &pb.Pacing{Caps: caps}})
		return err
	}
	if err := set(ops, "_global", 300); err != nil {
		t.Fatal(err)
	}
	if err := set(acme, "_global", 1); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("scoped principal set the global entry: %v", err)
	}
	// A principal whose tenant list names "_global" is still not "*".
	if err := set(odd, "_global", 1); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("tenant \"_global\" set the global entry: %v", err)
	}
	if err := set(acme, "globex", 1); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("other tenant: %v", err)
	}
	if err := set(viewer, "acme", 1); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("read-only: %v", err)
	}
	if err := set(acme, "acme", 20); err != nil {
		t.Fatal(err)
	}
	if err := set(ops, "globex", 5); err != nil {
		t.Fatal(err)
	}

	got, err := s.GetPacing(viewer, &pb.GetPacingRequest{Tenant: "acme"})
	if err != nil || got.Pacing.Effective.Caps != 20 || got.NodeId != "n1" {
		t.Fatalf("viewer get: %v %v", got, err)
	}
	if _, err := s.GetPacing(viewer, &pb.GetPacingRequest{Tenant: "_global"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("viewer read the global entry: %v", err)
	}
	l, _ := s.ListPacing(viewer, &pb.ListPacingRequest{})
	if len(l.Entries) != 1 || l.Entries[0].Tenant != "acme" || l.GlobalCaps != 300 {
		t.Fatalf("viewer list: %v", l)
	}
	l, _ = s.ListPacing(context.Background(), &pb.ListPacingRequest{Consistency: "linearizable"})
	if len(l.Entries) != 3 || l.Entries[0].Tenant != "_global" || l.Entries[2].Effective.Caps != 5 {
		t.Fatalf("unrestricted list: %v", l)
	}

	// A delete whose first try had an unknown outcome is retried and
	// succeeds although the retry finds nothing to delete.
	repl.lost = 1
	if _, err := s.DeletePacing(acme, &pb.DeletePacingRequest{Tenant: "acme"}); err != nil {
		t.Fatalf("replayed delete: %v", err)
	}
	if _, err := s.DeletePacing(acme, &pb.DeletePacingRequest{Tenant: "acme"}); status.Code(err) != codes.NotFound {
		t.Fatalf("delete missing: %v", err)
	}
	if _, ok := f.Pacing("acme"); ok {
		t.Fatal("acme still stored")
	}
	// A set replayed after an unknown outcome stores the entry once.
	repl.lost = 1
	if err := set(ops, "acme", 9); err != nil {
		t.Fatalf("replayed set: %v", err)
	}
	if p, _ := f.Pacing("acme"); p.GetCaps() != 9 || len(f.Pacings()) != 3 {
		t.Fatalf("after replayed set: %v %d", p, len(f.Pacings()))
	}
}

// ---- GetDialerStatus forwarding over real gRPC servers ----

type fakeStats struct{ st dialer.Stats }

func (f fakeStats) Stats() dialer.Stats { return f.st }

// roleRepl is a Replicator that only answers NodeID and IsLeader.
type roleRepl struct {
	Replicator
	id     string
	leader bool
}

func (r roleRepl) NodeID() string { return r.id }
func (r roleRepl) IsLeader() bool { return r.leader }

type connTo struct {
	cc  *grpc.ClientConn
	err error
}

func (c connTo) LeaderConn() (*grpc.ClientConn, error) { return c.cc, c.err }

const testSecret = "0123456789abcdef-secret"

// serveDialer runs d behind the authorisation interceptor with basic users
// and the cluster secret, and returns a connection to it that carries the
// secret (as the cluster's internal connections do).
func serveDialer(t *testing.T, d *Dialer) *grpc.ClientConn {
	t.Helper()
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	authn, err := auth.New(context.Background(), auth.Config{Mode: auth.ModeBasic, Users: []auth.User{
		{Name: "viewer", PasswordHash: hash("view-pw"), Tenants: []string{"acme"}, Roles: []auth.Role{auth.RoleRead}},
	}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(NewAuthz(authn, testSecret).Unary))
	pb.RegisterDialerServiceServer(srv, d)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), ClusterSecretDialOption(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// incoming is the context a handler sees for a call with these
// credentials, after the interceptor authenticated the principal.
func incoming(t *testing.T, user, pw string, p *auth.Principal) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	md := metadata.Pairs("authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pw)))
	ctx = metadata.NewIncomingContext(ctx, md)
	if p != nil {
		ctx = auth.NewContext(ctx, p)
	}
	return ctx
}

func TestDialerStatusForwarding(t *testing.T) {
	stats := dialer.Stats{Running: true, GlobalCAPS: 300, Tenants: []dialer.TenantStats{
		{Tenant: "acme", Queued: 7, QueuedProfile: map[string]int{"App": 7}, InProgress: 3, PortBudget: 45, PortsTotal: 50, PortsInUse: 5,
			CAPS: 20, AttemptsPerSec: 19.5, Outcomes: map[string]uint64{"OUTCOME_SUCCESS": 11}, NotifyPending: 2, NotifyRetries: 1, LimitedBy: "ports"},
		{Tenant: "globex", Queued: 1},
	}}
	leaderConn := serveDialer(t, NewDialer(nil, roleRepl{id: "n1", leader: true}, nil, fakeStats{stats}, DialerOptions{}))
	follower := NewDialer(nil, roleRepl{id: "n2"}, connTo{cc: leaderConn}, nil, DialerOptions{})
	viewer := &auth.Principal{Name: "viewer", Tenants: []string{"acme"}, Roles: []auth.Role{auth.RoleRead}}

	// The follower forwards with the caller's credentials; the leader
	// authenticates them (the connection adds the cluster secret) and
	// shows only the viewer's tenant.
	st, err := follower.GetDialerStatus(incoming(t, "viewer", "view-pw", viewer), &pb.GetDialerStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := &pb.DialerStatus{NodeId: "n1", Running: true, GlobalCaps: 300, Tenants: []*pb.DialerTenantStatus{{
		Tenant: "acme", Queued: 7, QueuedProfile: map[string]uint32{"App": 7}, InProgress: 3, PortBudget: 45, PortsTotal: 50, PortsInUse: 5,
		Caps: 20, AttemptsPerSec: 19.5, Outcomes: map[string]uint64{"OUTCOME_SUCCESS": 11}, NotifyPending: 2, NotifyRetries: 1, LimitedBy: "ports",
	}}}
	if !proto.Equal(st, want) {
		t.Fatalf("forwarded status:\n%v\nwant\n%v", st, want)
	}
	// Wrong credentials are refused by the leader, not waved through by
	// the secret.
	if _, err := follower.GetDialerStatus(incoming(t, "viewer", "wrong", viewer), &pb.GetDialerStatusRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong password forwarded: %v", err)
	}
	// Without a principal (auth mode none on the follower) nothing is
	// filtered on the follower; the leader still authenticates.
	if _, err := follower.GetDialerStatus(context.Background(), &pb.GetDialerStatusRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no credentials forwarded: %v", err)
	}

	// No leader known.
	lost := NewDialer(nil, roleRepl{id: "n2"}, connTo{err: errors.New("no cluster leader")}, nil, DialerOptions{})
	if _, err := lost.GetDialerStatus(context.Background(), &pb.GetDialerStatusRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("no leader: %v", err)
	}
	// A forwarded call reaching a node that no longer leads is not
	// forwarded again.
	stale := serveDialer(t, NewDialer(nil, roleRepl{id: "n3"}, connTo{cc: leaderConn}, nil, DialerOptions{}))
	ctx := metadata.AppendToOutgoingContext(context.Background(), forwardedHeader, "n2",
		"authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("viewer:view-pw")))
	_, err = pb.NewDialerServiceClient(stale).GetDialerStatus(ctx, &pb.GetDialerStatusRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "n3 is not the leader") {
		t.Fatalf("forwarded twice: %v", err)
	}
	// The leader without an engine.
	idle := NewDialer(nil, roleRepl{id: "n1", leader: true}, nil, nil, DialerOptions{})
	if _, err := idle.GetDialerStatus(context.Background(), &pb.GetDialerStatusRequest{}); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "dialer not running on this node (n1)") {
		t.Fatalf("no engine: %v", err)
	}
}

// Every public RPC has a role deliberately (a missing one is refused).
func TestEveryPublicMethodHasARole(t *testing.T) {
	for _, sd := range []grpc.ServiceDesc{pb.RequestService_ServiceDesc, pb.ClusterService_ServiceDesc,
		pb.PortUsageService_ServiceDesc, pb.PortSettingsService_ServiceDesc, pb.DialerService_ServiceDesc} {
		var names []string
		for _, m := range sd.Methods {
			names = append(names, m.MethodName)
		}
		for _, s := range sd.Streams {
			names = append(names, s.StreamName)
		}
		for _, n := range names {
			if _, ok := methodRoles["/"+sd.ServiceName+"/"+n]; !ok {
				t.Errorf("%s/%s has no role", sd.ServiceName, n)
			}
		}
	}
	for m, want := range map[string]auth.Role{
		pb.DialerService_GetPacing_FullMethodName: auth.RoleRead, pb.DialerService_ListPacing_FullMethodName: auth.RoleRead,
		pb.DialerService_GetDialerStatus_FullMethodName: auth.RoleRead,
		pb.DialerService_SetPacing_FullMethodName:       auth.RoleAdmin, pb.DialerService_DeletePacing_FullMethodName: auth.RoleAdmin,
	} {
		if methodRoles[m] != want {
			t.Errorf("%s needs %q, want %q", m, methodRoles[m], want)
		}
	}
}
