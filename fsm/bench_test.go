package fsm

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/seed-7bfc04c2/dialtone/fsm/fsmpb"
)

func benchmarkApplyCreate(b *testing.B, perEntry int) {
	// Encode outside the timed loop: only Apply is measured.
	logs := make([]*raft.Log, b.N)
	for i := range logs {
		reqs := make([]*fsmpb.Request, perEntry)
		for j := range reqs {
			r := newReq(fmt.Sprintf("0190a8c2-%08x-%04x", i, j), fmt.Sprintf("tenant-%d", i%4), fmt.Sprintf("profile-%d", j%8), 3, 3_600_000)
			reqs[j] = withKey(r, fmt.Sprintf("key-%d-%d", i, j))
		}
		logs[i] = cmdLog(b, uint64(i+1), t0+int64(i), createMax(10_000_000, reqs...))
	}
	f := New()
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

func BenchmarkApplyCreate1(b *testing.B)   { benchmarkApplyCreate(b, 1) }
func BenchmarkApplyCreate100(b *testing.B) { benchmarkApplyCreate(b, 100) }
