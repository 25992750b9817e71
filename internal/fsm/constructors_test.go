package fsm

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Every command body has a constructor, and each constructor fills its
// body's fields from its arguments (and nothing else).
func TestCommandConstructors(t *testing.T) {
	reqs := []*fsmpb.Request{{Id: "r1", Tenant: "acme"}}
	ids := []string{"a", "b"}
	starts := []*fsmpb.AttemptStart{{Id: "a", CallUuid: "u"}}
	results := []*fsmpb.AttemptResult{{Id: "a", CallUuid: "u", Outcome: fsmpb.OutcomeClass_OUTCOME_BUSY, Reason: "DestinationBusy", NextRetryUnixMs: 7}}
	ent := &fsmpb.Entitlement{Tenant: "acme", LicensedPorts: 5}
	th := &fsmpb.Threshold{Id: "t1", Tenant: "acme"}
	pac := &fsmpb.Pacing{Tenant: "acme", Caps: 3}
	defers := []*fsmpb.DeferItem{{Id: "a", UntilUnixMs: 9, Reason: "outside_window"}}
	chunk := &fsmpb.SuppressionChunk{Tenant: "acme", Numbers: []uint64{5, 6}}
	ends := []*fsmpb.EndItem{{Id: "a", Reason: "Suppressed"}}
	win := &fsmpb.CallingWindow{Tenant: "acme", Weekly: []*fsmpb.DaySpan{{Weekday: 1, OpenMinute: 480, CloseMinute: 1260}}}
	fc := &fsmpb.FreqCap{Tenant: "acme", MaxAttempts: 3, PeriodMs: 60_000}
	cases := []struct {
		got, want *fsmpb.Command
	}{
		{CreateCommand(reqs, 9), &fsmpb.Command{Body: &fsmpb.Command_Create{Create: &fsmpb.CreateRequests{Requests: reqs, MaxRecords: 9}}}},
		{CancelCommand("acme", ids), &fsmpb.Command{Body: &fsmpb.Command_Cancel{Cancel: &fsmpb.CancelRequests{Tenant: "acme", Ids: ids}}}},
		{ClaimCommand(ids), &fsmpb.Command{Body: &fsmpb.Command_Claim{Claim: &fsmpb.ClaimRequests{Ids: ids}}}},
		{StartAttemptsCommand(starts), &fsmpb.Command{Body: &fsmpb.Command_StartAttempts{StartAttempts: &fsmpb.StartAttempts{Starts: starts}}}},
		{BatchRecordResultsCommand(nil, []string{"a"}), &fsmpb.Command{Body: &fsmpb.Command_BatchRecordResults{BatchRecordResults: &fsmpb.BatchRecordResults{Notified: []string{"a"}}}}},
		{BatchStartAttemptsCommand(starts), &fsmpb.Command{Body: &fsmpb.Command_BatchStartAttempts{BatchStartAttempts: &fsmpb.BatchStartAttempts{Starts: starts}}}},
		{RecordResultsCommand(results), &fsmpb.Command{Body: &fsmpb.Command_RecordResults{RecordResults: &fsmpb.RecordResults{Results: results}}}},
		{MarkNotifiedCommand(ids), &fsmpb.Command{Body: &fsmpb.Command_MarkNotified{MarkNotified: &fsmpb.MarkNotified{Ids: ids}}}},
		{PurgeCommand(ids), &fsmpb.Command{Body: &fsmpb.Command_Purge{Purge: &fsmpb.PurgeRequests{Ids: ids}}}},
		{RequeueCommand(ids), &fsmpb.Command{Body: &fsmpb.Command_Requeue{Requeue: &fsmpb.RequeueRequests{Ids: ids}}}},
		{ExpireCommand(ids), &fsmpb.Command{Body: &fsmpb.Command_Expire{Expire: &fsmpb.ExpireRequests{Ids: ids}}}},
		{SetEntitlementCommand(ent, 4), &fsmpb.Command{Body: &fsmpb.Command_SetEntitlement{SetEntitlement: &fsmpb.SetEntitlement{Entitlement: ent, MaxEntitlements: 4}}}},
		{DeleteEntitlementCommand("acme"), &fsmpb.Command{Body: &fsmpb.Command_DeleteEntitlement{DeleteEntitlement: &fsmpb.DeleteEntitlement{Tenant: "acme"}}}},
		{SetThresholdCommand(th, 6), &fsmpb.Command{Body: &fsmpb.Command_SetThreshold{SetThreshold: &fsmpb.SetThreshold{Threshold: th, MaxThresholds: 6}}}},
		{DeleteThresholdCommand("t1"), &fsmpb.Command{Body: &fsmpb.Command_DeleteThreshold{DeleteThreshold: &fsmpb.DeleteThreshold{Id: "t1"}}}},
		{SetPacingCommand(pac), &fsmpb.Command{Body: &fsmpb.Command_SetPacing{SetPacing: &fsmpb.SetPacing{Pacing: pac}}}},
		{DeferCommand(defers), &fsmpb.Command{Body: &fsmpb.Command_Defer{Defer: &fsmpb.DeferRequests{Items: defers}}}},
		{EndCommand(ends), &fsmpb.Command{Body: &fsmpb.Command_End{End: &fsmpb.EndRequests{Items: ends}}}},
		{SetCallingWindowCommand(win), &fsmpb.Command{Body: &fsmpb.Command_SetCallingWindow{SetCallingWindow: &fsmpb.SetCallingWindow{Window: win}}}},
		{DeleteCallingWindowCommand("acme", "p"), &fsmpb.Command{Body: &fsmpb.Command_DeleteCallingWindow{DeleteCallingWindow: &fsmpb.DeleteCallingWindow{Tenant: "acme", IvrProfile: "p"}}}},
		{AddSuppressionsCommand(chunk), &fsmpb.Command{Body: &fsmpb.Command_AddSuppressions{AddSuppressions: &fsmpb.AddSuppressions{Chunk: chunk}}}},
		{RemoveSuppressionsCommand("acme", []uint64{5}), &fsmpb.Command{Body: &fsmpb.Command_RemoveSuppressions{RemoveSuppressions: &fsmpb.RemoveSuppressions{Tenant: "acme", Numbers: []uint64{5}}}}},
		{DialogUpdatesCommand([]*fsmpb.DialogUpdate{{Id: "a", CallUuid: "u", Dialog: &fsmpb.DialogState{Leg: "callee"}}}), &fsmpb.Command{Body: &fsmpb.Command_DialogUpdates{DialogUpdates: &fsmpb.DialogUpdates{Updates: []*fsmpb.DialogUpdate{{Id: "a", CallUuid: "u", Dialog: &fsmpb.DialogState{Leg: "callee"}}}}}}},
		{DeletePacingCommand("acme"), &fsmpb.Command{Body: &fsmpb.Command_DeletePacing{DeletePacing: &fsmpb.DeletePacing{Tenant: "acme"}}}},
		{FreqSetCapCommand(fc), &fsmpb.Command{Body: &fsmpb.Command_FreqSetCap{FreqSetCap: &fsmpb.FreqSetCap{Cap: fc}}}},
		{FreqDeleteCapCommand("acme"), &fsmpb.Command{Body: &fsmpb.Command_FreqDeleteCap{FreqDeleteCap: &fsmpb.FreqDeleteCap{Tenant: "acme"}}}},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		body := c.got.ProtoReflect().WhichOneof(c.got.ProtoReflect().Descriptor().Oneofs().ByName("body"))
		if body == nil {
			t.Fatalf("%v: no body", c.got)
		}
		name := string(body.Name())
		covered[name] = true
		if !proto.Equal(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", name, c.got, c.want)
		}
		if c.got.Version != 0 || c.got.NowUnixMs != 0 {
			t.Errorf("%s: constructor set version %d, time %d; they are stamped when proposed", name, c.got.Version, c.got.NowUnixMs)
		}
	}
	fields := (&fsmpb.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("body").Fields()
	for i := range fields.Len() {
		if n := string(fields.Get(i).Name()); !covered[n] {
			t.Errorf("command body %s has no constructor", n)
		}
	}
}
