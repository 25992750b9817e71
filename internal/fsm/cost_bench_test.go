package fsm

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Per-attempt and per-record cost (BENCHMARKS.md, issue 18).

// benchmarkAttemptCycle runs whole attempts through an FSM that already
// holds 200,000 records: start, a successful result and the notification
// mark, in entries of 100 attempts as the dialer's batchers commit them.
// One op is one attempt (all its entries). starts builds the entries that
// start the attempts of ids.
func benchmarkAttemptCycle(b *testing.B, starts func(ids []string, calls []string) []*fsmpb.Command) {
	const per = 100
	snap := largeSnapshot()
	f := New()
	if err := f.Restore(readCloser(snap)); err != nil {
		b.Fatal(err)
	}
	n := (b.N + per - 1) / per
	idx := f.AppliedIndex() + 1
	now := t0 + 1_000_000
	for _, l := range createLogs(b, "0190a8c3", idx, n, per) {
		f.Apply(l)
	}
	idx = f.AppliedIndex() + 1
	var logs []*raft.Log
	for i := 0; i < n; i++ {
		ids := make([]string, per)
		calls := make([]string, per)
		results := make([]*fsmpb.AttemptResult, per)
		for j := range ids {
			ids[j] = fmt.Sprintf("0190a8c3-%08x-%04x", i, j)
			calls[j] = fmt.Sprintf("call-%d-%d", i, j)
			results[j] = &fsmpb.AttemptResult{Id: ids[j], CallUuid: calls[j], Outcome: fsmpb.OutcomeClass_OUTCOME_SUCCESS, Reason: "TreatmentApplied"}
		}
		cmds := append(starts(ids, calls), RecordResultsCommand(results), MarkNotifiedCommand(ids))
		for _, c := range cmds {
			logs = append(logs, cmdLog(b, idx, now+2000, c))
			idx++
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for _, l := range logs {
		for _, it := range f.Apply(l).(*fsmpb.ApplyResult).Items {
			if it.Code != fsmpb.Code_CODE_OK {
				b.Fatal(it)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(n*per), "cpu-ns/attempt")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*per), "ns/attempt")
	b.ReportMetric(float64(len(logs))/float64(n), "entries/100attempts")
}

// BenchmarkAttemptCycle: claim, start, result, notified (the four
// commands of the dialer before issue 18) against the batch start (claim
// and start in one update), result, notified.
func BenchmarkAttemptCycle(b *testing.B) {
	b.Run("claim+start", func(b *testing.B) {
		benchmarkAttemptCycle(b, func(ids, calls []string) []*fsmpb.Command {
			starts := make([]*fsmpb.AttemptStart, len(ids))
			for i := range ids {
				starts[i] = &fsmpb.AttemptStart{Id: ids[i], CallUuid: calls[i]}
			}
			return []*fsmpb.Command{ClaimCommand(ids), StartAttemptsCommand(starts)}
		})
	})
	b.Run("batch-start", func(b *testing.B) {
		benchmarkAttemptCycle(b, func(ids, calls []string) []*fsmpb.Command {
			starts := make([]*fsmpb.AttemptStart, len(ids))
			for i := range ids {
				starts[i] = &fsmpb.AttemptStart{Id: ids[i], CallUuid: calls[i]}
			}
			return []*fsmpb.Command{BatchStartAttemptsCommand(starts)}
		})
	})
}

// cpuTime is the process's user and system CPU time so far (all threads,
// the GC's included): on a shared machine it is far steadier than the
// wall-clock time the benchmark framework reports.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCreateCPU is BenchmarkApplyBatchCreate100Large (100-record
// creates, 32 entries per ApplyBatch, into 200,000 records) reporting the
// CPU time per record.
func BenchmarkCreateCPU(b *testing.B) {
	const batch = 32
	snap := largeSnapshot()
	f := New()
	if err := f.Restore(readCloser(snap)); err != nil {
		b.Fatal(err)
	}
	logs := createLogs(b, "0190a8c2", f.AppliedIndex()+1, b.N, 100)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < len(logs); i += batch {
		f.ApplyBatch(logs[i:min(i+batch, len(logs))])
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N*100), "cpu-ns/record")
}

// discardSink is a raft.SnapshotSink that counts and drops the bytes.
type discardSink struct{ n int64 }

func (s *discardSink) Write(p []byte) (int, error) { s.n += int64(len(p)); return len(p), nil }
func (s *discardSink) Close() error                { return nil }
func (s *discardSink) ID() string                  { return "discard" }
func (s *discardSink) Cancel() error               { return nil }

// BenchmarkRecordFootprint stores DIALTONE_FSM_RECORDS records (default
// 100,000; the BENCHMARKS.md figures use 1,000,000 and 10,000,000) with
// 100-record creates, every record with an idempotency key, and reports
// the live heap per stored record, the snapshot's bytes per record and the
// time to persist and to restore the snapshot. Run it with -benchtime 1x.
func BenchmarkRecordFootprint(b *testing.B) {
	n := 100_000
	if s := os.Getenv("DIALTONE_FSM_RECORDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		n = v
	}
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f := New()
		const chunk = 1000 // entries per generated chunk: the encoded log is dropped as it goes
		for e := 0; e < n/100; e += chunk {
			logs := createLogs(b, fmt.Sprintf("0190a8c4-%06x", e/chunk), f.AppliedIndex()+1, min(chunk, n/100-e), 100)
			for j := 0; j < len(logs); j += 32 {
				f.ApplyBatch(logs[j:min(j+32, len(logs))])
			}
		}
		f.Get("x") // publish the readers' clone, as a serving node does
		runtime.GC()
		runtime.ReadMemStats(&after)
		if f.Count() != n/100*100 {
			b.Fatalf("stored %d records", f.Count())
		}
		heap := float64(after.HeapAlloc-before.HeapAlloc) / float64(f.Count())

		snap, err := f.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		t, c := time.Now(), cpuTime()
		ds := &discardSink{}
		if err := snap.Persist(ds); err != nil {
			b.Fatal(err)
		}
		persist, persistCPU := time.Since(t), cpuTime()-c
		data := snapshotBytes(b, f)
		f = nil
		runtime.GC()
		g := New()
		t, c = time.Now(), cpuTime()
		if err := g.Restore(readCloser(data)); err != nil {
			b.Fatal(err)
		}
		restore, restoreCPU := time.Since(t), cpuTime()-c
		b.ReportMetric(heap, "heap-B/record")
		b.ReportMetric(float64(ds.n)/float64(g.Count()), "snap-B/record")
		b.ReportMetric(persist.Seconds()*1000, "persist-ms")
		b.ReportMetric(restore.Seconds()*1000, "restore-ms")
		b.ReportMetric(persistCPU.Seconds()*1000, "persist-cpu-ms")
		b.ReportMetric(restoreCPU.Seconds()*1000, "restore-cpu-ms")
	}
}
