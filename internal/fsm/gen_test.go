package fsm

import (
	"fmt"
	"math/rand/v2"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// byteSource feeds the command generator: seeded randomness for the replay
// tests, fuzz input for FuzzApply.
type byteSource interface{ next() byte }

type randSource struct{ r *rand.Rand }

func (s randSource) next() byte { return byte(s.r.UintN(256)) }

type sliceSource struct {
	b []byte
	i int
}

func (s *sliceSource) next() byte {
	if s.i >= len(s.b) {
		return 0
	}
	s.i++
	return s.b[s.i-1]
}

func (s *sliceSource) done() bool { return s.i >= len(s.b) }

// gen builds plausible command sequences over a small pool of ids, so that
// commands often hit existing records in every state.
type gen struct {
	src   byteSource
	now   int64
	calls int
	// lookup, when set, lets record-results commands usually name the
	// current call (otherwise they would almost always be stale).
	lookup func(id string) (*fsmpb.Request, bool)
}

const genIDs = 12

func (g *gen) id() string { return fmt.Sprintf("id-%02d", int(g.src.next())%genIDs) }

func (g *gen) ids() []string {
	out := make([]string, 1+int(g.src.next())%3)
	for i := range out {
		out[i] = g.id()
	}
	return out
}

// settingTenant is one of a few tenants, sometimes "" (refused by Apply).
func (g *gen) settingTenant() string {
	if k := g.src.next() % 6; k > 0 {
		return fmt.Sprintf("t%d", k-1)
	}
	return ""
}

// thresholdID is one of a few ids, sometimes "" (refused by Apply).
func (g *gen) thresholdID() string {
	if k := g.src.next() % 7; k > 0 {
		return fmt.Sprintf("th-%d", k-1)
	}
	return ""
}

func (g *gen) tenant() string { return fmt.Sprintf("t%d", g.src.next()%2) }

// command returns the next command; time only moves forward.
func (g *gen) command() *fsmpb.Command {
	g.now += int64(g.src.next()) * 100
	cmd := &fsmpb.Command{NowUnixMs: g.now}
	switch g.src.next() % 15 {
	case 0:
		c := &fsmpb.CreateRequests{}
		if g.src.next()%2 == 1 {
			c.MaxRecords = 8
		}
		for n := 1 + int(g.src.next())%4; n > 0; n-- {
			r := &fsmpb.Request{
				Id:          g.id(),
				Tenant:      g.tenant(),
				IvrProfile:  fmt.Sprintf("p%d", g.src.next()%3),
				Token:       fmt.Sprintf("tok%d", g.src.next()%2),
				MaxAttempts: uint32(g.src.next() % 4),
				TtlMs:       int64(g.src.next()) * 200,
			}
			if k := g.src.next() % 4; k > 0 {
				r.IdempotencyKey = fmt.Sprintf("k%d", k)
			}
			if g.src.next()%4 == 0 {
				r.CustomData = []*fsmpb.KeyValue{{Key: "a", Value: "b"}}
				r.Cpd = &fsmpb.Cpd{Detect: "human"}
			}
			r.Fingerprint = Fingerprint(r)
			c.Requests = append(c.Requests, r)
		}
		cmd.Body = &fsmpb.Command_Create{Create: c}
	case 1:
		cmd.Body = &fsmpb.Command_Cancel{Cancel: &fsmpb.CancelRequests{Tenant: g.tenant(), Ids: g.ids()}}
	case 2:
		cmd.Body = &fsmpb.Command_Claim{Claim: &fsmpb.ClaimRequests{Ids: g.ids()}}
	case 3:
		s := &fsmpb.StartAttempts{}
		for _, id := range g.ids() {
			g.calls++
			s.Starts = append(s.Starts, &fsmpb.AttemptStart{Id: id, CallUuid: fmt.Sprintf("call-%d", g.calls)})
		}
		if g.src.next()%2 == 0 {
			cmd.Body = &fsmpb.Command_StartAttempts{StartAttempts: s}
		} else {
			cmd.Body = &fsmpb.Command_BatchStartAttempts{BatchStartAttempts: &fsmpb.BatchStartAttempts{Starts: s.Starts}}
		}
	case 4:
		rr := &fsmpb.RecordResults{}
		for _, id := range g.ids() {
			call := "stale"
			if g.lookup != nil && g.src.next()%8 != 0 {
				if r, ok := g.lookup(id); ok {
					call = r.LastCallUuid
				}
			}
			rr.Results = append(rr.Results, &fsmpb.AttemptResult{
				Id:              id,
				CallUuid:        call,
				Outcome:         fsmpb.OutcomeClass(g.src.next() % 7),
				Reason:          fmt.Sprintf("reason-%d", g.src.next()%3),
				NextRetryUnixMs: g.now + int64(g.src.next())*100 - 5000,
			})
		}
		if g.src.next()%2 == 0 {
			cmd.Body = &fsmpb.Command_RecordResults{RecordResults: rr}
		} else {
			// With notification marks, which only PROCESSED records take.
			cmd.Body = &fsmpb.Command_BatchRecordResults{BatchRecordResults: &fsmpb.BatchRecordResults{Results: rr.Results, Notified: g.ids()}}
		}
	case 5:
		cmd.Body = &fsmpb.Command_MarkNotified{MarkNotified: &fsmpb.MarkNotified{Ids: g.ids()}}
	case 6:
		cmd.Body = &fsmpb.Command_Purge{Purge: &fsmpb.PurgeRequests{Ids: g.ids()}}
	case 7:
		cmd.Body = &fsmpb.Command_Requeue{Requeue: &fsmpb.RequeueRequests{Ids: g.ids()}}
	case 8:
		cmd.Body = &fsmpb.Command_Expire{Expire: &fsmpb.ExpireRequests{Ids: g.ids()}}
	case 9:
		c := &fsmpb.SetEntitlement{Entitlement: &fsmpb.Entitlement{Tenant: g.settingTenant(), LicensedPorts: uint32(g.src.next()) * 10}}
		if g.src.next()%2 == 1 {
			c.MaxEntitlements = 3
		}
		cmd.Body = &fsmpb.Command_SetEntitlement{SetEntitlement: c}
	case 10:
		cmd.Body = &fsmpb.Command_DeleteEntitlement{DeleteEntitlement: &fsmpb.DeleteEntitlement{Tenant: g.settingTenant()}}
	case 11:
		metrics := []string{"in_use_percent_of_entitlement", "in_use_percent_of_total", "available_ports"}
		c := &fsmpb.SetThreshold{Threshold: &fsmpb.Threshold{
			Id:         g.thresholdID(),
			Tenant:     fmt.Sprintf("t%d", g.src.next()%3), // t2 stands for "" below
			Metric:     metrics[int(g.src.next())%len(metrics)],
			Direction:  []string{"above", "below"}[g.src.next()%2],
			Value:      float64(g.src.next()) / 2,
			ClearValue: float64(g.src.next()) / 2,
		}}
		if c.Threshold.Tenant == "t2" {
			c.Threshold.Tenant = ""
		}
		if g.src.next()%2 == 1 {
			c.Threshold.WebhookUrl = "https://hooks.example/alert"
		}
		if g.src.next()%2 == 1 {
			c.MaxThresholds = 4
		}
		cmd.Body = &fsmpb.Command_SetThreshold{SetThreshold: c}
	case 12:
		cmd.Body = &fsmpb.Command_DeleteThreshold{DeleteThreshold: &fsmpb.DeleteThreshold{Id: g.thresholdID()}}
	case 13:
		// settingTenant's "" is the global entry here, which is valid.
		p := &fsmpb.Pacing{
			Tenant:            g.settingTenant(),
			Caps:              float64(g.src.next()) / 4,
			PortLoadFactor:    uint32(g.src.next() % 101),
			BatchSizeMode:     []string{"", "TotalPorts", "AvailablePorts", "Fixed"}[g.src.next()%4],
			QueueLowWatermark: uint32(g.src.next() % 101),
			SlotCalculation:   []string{"", "PROPORTIONATE", "EQUAL"}[g.src.next()%3],
			RetentionMs:       int64(g.src.next()) * 1000,
		}
		if p.BatchSizeMode == "Fixed" {
			p.BatchSize = 1 + uint32(g.src.next())
		}
		if g.src.next()%2 == 1 {
			p.EqualPriorityNewAndOld = true
			p.NextRetryIntervalMs = 100 + int64(g.src.next())*10
			p.CleanIntervalMs = 1000 + int64(g.src.next())*100
		}
		c := &fsmpb.SetPacing{Pacing: p}
		if g.src.next()%16 == 0 {
			c.Pacing = nil // refused by Apply
		}
		cmd.Body = &fsmpb.Command_SetPacing{SetPacing: c}
	case 14:
		cmd.Body = &fsmpb.Command_DeletePacing{DeletePacing: &fsmpb.DeletePacing{Tenant: g.settingTenant()}}
	}
	return cmd
}

// itemCount is the number of items cmd should get results for.
func itemCount(cmd *fsmpb.Command) int {
	switch b := cmd.Body.(type) {
	case *fsmpb.Command_Create:
		return len(b.Create.Requests)
	case *fsmpb.Command_Cancel:
		return len(b.Cancel.Ids)
	case *fsmpb.Command_Claim:
		return len(b.Claim.Ids)
	case *fsmpb.Command_StartAttempts:
		return len(b.StartAttempts.Starts)
	case *fsmpb.Command_BatchStartAttempts:
		return len(b.BatchStartAttempts.Starts)
	case *fsmpb.Command_BatchRecordResults:
		return len(b.BatchRecordResults.Results) + len(b.BatchRecordResults.Notified)
	case *fsmpb.Command_RecordResults:
		return len(b.RecordResults.Results)
	case *fsmpb.Command_MarkNotified:
		return len(b.MarkNotified.Ids)
	case *fsmpb.Command_Purge:
		return len(b.Purge.Ids)
	case *fsmpb.Command_Requeue:
		return len(b.Requeue.Ids)
	case *fsmpb.Command_Expire:
		return len(b.Expire.Ids)
	case *fsmpb.Command_SetEntitlement, *fsmpb.Command_DeleteEntitlement,
		*fsmpb.Command_SetThreshold, *fsmpb.Command_DeleteThreshold,
		*fsmpb.Command_SetPacing, *fsmpb.Command_DeletePacing:
		return 1
	}
	return -1
}
