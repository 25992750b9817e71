package server

import (
	"context"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/auth"
	"github.com/seed-7bfc04c2/dialtone/internal/cluster"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

func TestValidateThresholdDefaultsAndErrors(t *testing.T) {
	cases := []struct {
		th        *pb.Threshold
		clear     float64
		badFields []string
	}{
		{&pb.Threshold{Id: "a", Metric: MetricInUsePercentOfEntitlement, Direction: DirectionAbove, Value: 90}, 85, nil},
		{&pb.Threshold{Id: "a", Metric: MetricInUsePercentOfEntitlement, Direction: DirectionAbove, Value: 3}, 0, nil},
		{&pb.Threshold{Id: "a", Metric: MetricInUsePercentOfTotal, Direction: DirectionBelow, Value: 10}, 15, nil},
		{&pb.Threshold{Id: "a", Metric: MetricInUsePercentOfTotal, Direction: DirectionBelow, Value: 98}, 100, nil},
		{&pb.Threshold{Id: "a", Metric: MetricAvailablePorts, Direction: DirectionBelow, Value: 10}, 11, nil},
		{&pb.Threshold{Id: "a", Metric: MetricAvailablePorts, Direction: DirectionAbove, Value: 10, ClearValue: 4}, 4, nil},
		{&pb.Threshold{Id: "a", Metric: MetricInUsePercentOfEntitlement, Direction: DirectionAbove, Value: 120}, 115, nil}, // oversubscription
		{&pb.Threshold{Id: "a", Metric: MetricAvailablePorts, Direction: DirectionAbove, Value: 0}, 0, []string{"threshold.value"}},
		{&pb.Threshold{Id: "a", Metric: MetricInUsePercentOfTotal, Direction: DirectionBelow, Value: 100}, 0, []string{"threshold.value"}},
		{&pb.Threshold{Id: "a", Metric: MetricInUsePercentOfTotal, Direction: DirectionAbove, Value: 50, ClearValue: 50}, 0, []string{"threshold.clear_value"}},
		{&pb.Threshold{Id: "a", Metric: MetricInUsePercentOfTotal, Direction: DirectionAbove, Value: 50, ClearValue: -1}, 0, []string{"threshold.clear_value"}},
		{&pb.Threshold{Metric: "x", Direction: "y", WebhookUrl: "mailto:a@b"}, 0, []string{"threshold.id", "threshold.metric", "threshold.direction", "threshold.webhook_url"}},
	}
	for i, c := range cases {
		got, errs := ValidateThreshold("threshold", c.th)
		if len(errs) != len(c.badFields) {
			t.Errorf("case %d: errors %v, want fields %v", i, errs, c.badFields)
			continue
		}
		for j, f := range c.badFields {
			if errs[j].Field != f {
				t.Errorf("case %d: error %d is %v, want field %s", i, j, errs[j], f)
			}
		}
		if len(errs) == 0 && got.ClearValue != c.clear {
			t.Errorf("case %d: clear_value %v, want %v", i, got.ClearValue, c.clear)
		}
	}
	if _, errs := ValidateThreshold("threshold", nil); len(errs) != 1 {
		t.Error("nil threshold accepted")
	}
}

// localRepl applies straight to an FSM; lost makes the next Apply report
// leadership lost after applying (an unknown outcome).
type localRepl struct {
	f     *fsm.FSM
	index uint64
	lost  int
}

func (r *localRepl) Apply(_ context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, uint64, error) {
	r.index++
	b, err := fsm.Encode(cmd)
	if err != nil {
		return nil, 0, err
	}
	res := r.f.Apply(rawLog(r.index, b)).(*fsmpb.ApplyResult)
	if r.lost > 0 {
		r.lost--
		return nil, 0, cluster.ErrLeadershipLost
	}
	return res, r.index, nil
}
func (r *localRepl) ReadIndex(context.Context) (uint64, error) { return r.index, nil }
func (r *localRepl) WaitApplied(context.Context, uint64) error { return nil }
func (r *localRepl) NodeID() string                            { return "n1" }
func (r *localRepl) IsLeader() bool                            { return true }
func (r *localRepl) LastContactMs() int64                      { return 0 }

func TestPortSettingsScopingAndReplay(t *testing.T) {
	f := fsm.New()
	repl := &localRepl{f: f}
	s := NewPortSettings(f, repl, nil, PortSettingsOptions{})
	ops := auth.NewContext(context.Background(), &auth.Principal{Name: "ops", Tenants: []string{"*"}, Roles: []auth.Role{auth.RoleAdmin}})
	acme := auth.NewContext(context.Background(), &auth.Principal{Name: "acme-admin", Tenants: []string{"acme"}, Roles: []auth.Role{auth.RoleAdmin, auth.RoleRead}})
	viewer := auth.NewContext(context.Background(), &auth.Principal{Name: "v", Tenants: []string{"acme"}, Roles: []auth.Role{auth.RoleRead}})

	if err := s.SetEntitlementPorts(ops, "globex", 10); err != nil {
		t.Fatal(err)
	}
	if err := s.SetEntitlementPorts(acme, "globex", 10); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("other tenant: %v", err)
	}
	if err := s.SetEntitlementPorts(viewer, "acme", 10); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("read-only: %v", err)
	}
	if err := s.SetEntitlementPorts(acme, "acme", 20); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.ListEntitlements(acme, &pb.ListEntitlementsRequest{}); len(l.Entitlements) != 1 || l.Entitlements[0].Tenant != "acme" {
		t.Fatalf("acme sees %v", l.Entitlements)
	}
	if l := s.EntitlementList(); len(l) != 2 || l[0].Tenant != "acme" || l[1].LicensedPorts != 10 {
		t.Fatalf("EntitlementList = %v", l)
	}

	deployment := &pb.Threshold{Id: "floor", Metric: MetricAvailablePorts, Direction: DirectionBelow, Value: 5}
	if _, err := s.SetThreshold(acme, &pb.SetThresholdRequest{Threshold: deployment}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("scoped principal set a deployment threshold: %v", err)
	}
	if _, err := s.SetThreshold(ops, &pb.SetThresholdRequest{Threshold: deployment}); err != nil {
		t.Fatal(err)
	}
	// acme cannot take over the id, nor delete it (it looks absent).
	hijack := &pb.Threshold{Id: "floor", Tenant: "acme", Metric: MetricAvailablePorts, Direction: DirectionBelow, Value: 5}
	if _, err := s.SetThreshold(acme, &pb.SetThresholdRequest{Threshold: hijack}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("hijack: %v", err)
	}
	if _, err := s.DeleteThreshold(acme, &pb.DeleteThresholdRequest{Id: "floor"}); status.Code(err) != codes.NotFound {
		t.Fatalf("delete other's: %v", err)
	}
	if l, _ := s.ListThresholds(acme, &pb.ListThresholdsRequest{}); len(l.Thresholds) != 0 {
		t.Fatalf("acme sees %v", l.Thresholds)
	}
	// A delete whose first try had an unknown outcome (applied, then
	// leadership lost) is retried and succeeds although the retry finds
	// nothing to delete.
	repl.lost = 1
	if _, err := s.DeleteThreshold(ops, &pb.DeleteThresholdRequest{Id: "floor"}); err != nil {
		t.Fatalf("replayed delete: %v", err)
	}
	if _, err := s.DeleteThreshold(ops, &pb.DeleteThresholdRequest{Id: "floor"}); status.Code(err) != codes.NotFound {
		t.Fatalf("delete missing: %v", err)
	}
}

func rawLog(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Type: raft.LogCommand, Data: data}
}
