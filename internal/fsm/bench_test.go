package fsm

import (
	"fmt"
	"sync"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// createLogs returns n create entries of perEntry records each, starting at
// log index first, with ids prefix-i-j (so later entries sort after earlier
// ones, like UUIDv7).
func createLogs(b *testing.B, prefix string, first uint64, n, perEntry int) []*raft.Log {
	logs := make([]*raft.Log, n)
	for i := range logs {
		reqs := make([]*fsmpb.Request, perEntry)
		for j := range reqs {
			r := newReq(fmt.Sprintf("%s-%08x-%04x", prefix, i, j), fmt.Sprintf("tenant-%d", i%4), fmt.Sprintf("profile-%d", j%8), 3, 3_600_000)
			reqs[j] = withKey(r, fmt.Sprintf("%s-key-%d-%d", prefix, i, j))
		}
		logs[i] = cmdLog(b, first+uint64(i), t0+int64(i), createMax(10_000_000, reqs...))
	}
	return logs
}

func benchmarkApplyCreate(b *testing.B, f *FSM, perEntry int) {
	// Encode outside the timed loop: only Apply is measured.
	logs := createLogs(b, "0190a8c2", f.AppliedIndex()+1, b.N, perEntry)
	b.ReportAllocs()
	b.ResetTimer()
	for _, l := range logs {
		if res := f.Apply(l).(*fsmpb.ApplyResult); res.Items[perEntry-1].Code != fsmpb.Code_CODE_OK {
			b.Fatal(res.Items[perEntry-1])
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*perEntry)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkApplyCreate1(b *testing.B)   { benchmarkApplyCreate(b, New(), 1) }
func BenchmarkApplyCreate100(b *testing.B) { benchmarkApplyCreate(b, New(), 100) }

// largeSnapshot is a snapshot of an FSM holding 200,000 records, built once
// per test binary run.
var largeSnapshot = sync.OnceValue(func() []byte {
	b := &testing.B{} // only used for cmdLog's Helper/Fatal, which do not fire
	f := New()
	logs := createLogs(b, "0190a8c1", 1, 2000, 100)
	for i := 0; i < len(logs); i += 100 {
		f.ApplyBatch(logs[i : i+100])
	}
	if f.Count() != 200_000 {
		panic(fmt.Sprintf("large FSM holds %d records", f.Count()))
	}
	return snapshotBytes(b, f)
})

// BenchmarkApplyCreate100Large applies 100-record creates to an FSM that
// already holds 200,000 records, so costs that grow with the state show.
func BenchmarkApplyCreate100Large(b *testing.B) {
	snap := largeSnapshot()
	f := New()
	if err := f.Restore(readCloser(snap)); err != nil {
		b.Fatal(err)
	}
	benchmarkApplyCreate(b, f, 100)
}

// BenchmarkApplyBatchCreate100Large is BenchmarkApplyCreate100Large with
// the entries handed over 32 at a time through ApplyBatch, as raft does
// under load. One op is one entry (100 records).
func BenchmarkApplyBatchCreate100Large(b *testing.B) {
	const batch = 32
	snap := largeSnapshot()
	f := New()
	if err := f.Restore(readCloser(snap)); err != nil {
		b.Fatal(err)
	}
	logs := createLogs(b, "0190a8c2", f.AppliedIndex()+1, b.N, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < len(logs); i += batch {
		res := f.ApplyBatch(logs[i:min(i+batch, len(logs))])
		if it := res[len(res)-1].(*fsmpb.ApplyResult).Items[99]; it.Code != fsmpb.Code_CODE_OK {
			b.Fatal(it)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkListPage pages through 40,000 records of one tenant, over 4
// profiles and, interleaved by id within each profile, the states PENDING,
// INITIATED, IN_PROGRESS and PROCESSED. One op is one page of 100; the
// pages walk the whole result and start again.
func BenchmarkListPage(b *testing.B) {
	f := New()
	h := &harness{t: b, f: f}
	for e := 0; e < 400; e++ {
		reqs := make([]*fsmpb.Request, 100)
		var claimed []string
		var starts []*fsmpb.AttemptStart
		var results []*fsmpb.AttemptResult
		for j := range reqs {
			id := fmt.Sprintf("0190a8c5-%08x-%04x", e, j)
			reqs[j] = newReq(id, "t", fmt.Sprintf("p%d", j%4), 3, 3_600_000)
			st := fsmpb.State((j/4)%4 + 1)
			if st >= fsmpb.State_INITIATED {
				claimed = append(claimed, id)
			}
			if st >= fsmpb.State_IN_PROGRESS {
				starts = append(starts, &fsmpb.AttemptStart{Id: id, CallUuid: "c" + id})
			}
			if st == fsmpb.State_PROCESSED {
				results = append(results, &fsmpb.AttemptResult{Id: id, CallUuid: "c" + id, Outcome: fsmpb.OutcomeClass_OUTCOME_PERMANENT, Reason: "Vacant"})
			}
		}
		h.mustOK(t0, create(reqs...))
		h.mustOK(t0, ClaimCommand(claimed))
		h.mustOK(t0, StartAttemptsCommand(starts))
		h.mustOK(t0, RecordResultsCommand(results))
	}
	for _, q := range []ListQuery{
		{Tenant: "t", IVRProfile: "p1", State: fsmpb.State_IN_PROGRESS},
		{Tenant: "t", IVRProfile: "p1"},
		{Tenant: "t", State: fsmpb.State_IN_PROGRESS},
		{Tenant: "t"},
	} {
		name := q.IVRProfile + "/" + q.State.String()
		b.Run(name, func(b *testing.B) {
			q.Limit = 100
			b.ReportAllocs()
			for b.Loop() {
				page, next := f.List(q)
				if len(page) == 0 {
					b.Fatal("empty page")
				}
				q.After = next
			}
		})
	}
}
