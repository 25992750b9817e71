package fsm

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
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
func benchmarkAttemptCycle(b *testing.B, starts, dialogs func(ids []string, calls []string) []*fsmpb.Command, readEach bool) {
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
		if dialogs != nil {
			// The dialog updates ride between the start and the result.
			k := len(cmds) - 2
			cmds = append(cmds[:k:k], append(dialogs(ids, calls), cmds[k:]...)...)
		}
		for _, c := range cmds {
			logs = append(logs, cmdLog(b, idx, now+2000, c))
			idx++
		}
	}
	bytes := 0
	for _, l := range logs {
		bytes += len(l.Data)
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
		if readEach {
			// As on a serving node: the dialer reads after each commit, so
			// the next write copies the nodes on its paths (copy-on-write).
			f.Get("x")
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(n*per), "cpu-ns/attempt")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*per), "ns/attempt")
	b.ReportMetric(float64(len(logs))/float64(n), "entries/100attempts")
	b.ReportMetric(float64(bytes)/float64(n*per), "log-bytes/attempt")
}

// sipDialog is a direct SIP call's callee leg as the backend reports it
// (sizes as on the wire: a 2xx with a three-codec SDP offer).
func sipDialog(stage int) *fsmpb.DialogState {
	sdp := []byte("v=0\r\no=callee 1 1 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")
	st := &fsmpb.DialogState{
		Leg: "callee", CallId: "S127U7TrQRdi0ElztJgrlg7g@192.0.2.100", From: `"4930111" <sip:4930111@192.0.2.100>;tag=Iaw7uriJieGimY8M`,
		To: "<sip:+15551234567@198.51.100.10:5060>", LocalCseq: 1, InviteBranch: "z9hG4bK.1RxgiL8s9RmH2XTa", RequestUri: "sip:+15551234567@198.51.100.10:5060",
		InviteCseq: 1, Destination: "198.51.100.10:5060", Transport: "UDP", InviteVia: "SIP/2.0/UDP 192.0.2.100:5060;branch=z9hG4bK.1RxgiL8s9RmH2XTa",
		DeadlineUnixMs: t0 + 30_000,
	}
	if stage >= 1 { // confirmed (committed before the ACK)
		st.To += ";tag=bcb8eb84-8267-48bf-a2e3-2146c14ca473"
		st.RemoteTarget, st.Established, st.Confirmed = "sip:uas@198.51.100.20:5060", true, true
		st.RemoteSdp, st.LocalSdp = sdp, sdp
		st.ConnectedUnixMs, st.DeadlineUnixMs = t0+5_000, t0+3_605_000
	}
	if stage >= 2 { // the far end's BYE (committed before its 200)
		st.RemoteEndedUnixMs = t0 + 60_000
	}
	return st
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
		}, nil, false)
	})
	batchStart := func(ids, calls []string) []*fsmpb.Command {
		starts := make([]*fsmpb.AttemptStart, len(ids))
		for i := range ids {
			starts[i] = &fsmpb.AttemptStart{Id: ids[i], CallUuid: calls[i]}
		}
		return []*fsmpb.Command{BatchStartAttemptsCommand(starts)}
	}
	b.Run("batch-start", func(b *testing.B) { benchmarkAttemptCycle(b, batchStart, nil, false) })
	b.Run("batch-start+reads", func(b *testing.B) { benchmarkAttemptCycle(b, batchStart, nil, true) })
	// A direct SIP call with takeover (issue 15): its callee leg's state
	// committed at the INVITE and, confirmed, before the ACK, and the far
	// end's BYE as an end mark before its 200, each in entries of 100 as
	// the dialog batcher groups them. Against batch-start: the
	// replication cost.
	b.Run("batch-start+sip-dialogs", func(b *testing.B) {
		benchmarkAttemptCycle(b, batchStart, func(ids, calls []string) []*fsmpb.Command {
			var cmds []*fsmpb.Command
			for stage := range 3 {
				ups := make([]*fsmpb.DialogUpdate, len(ids))
				for i := range ids {
					d := sipDialog(stage)
					if stage == 2 { // the BYE: an end mark, as the backend sends it
						d = &fsmpb.DialogState{Leg: d.Leg, RemoteEndedUnixMs: d.RemoteEndedUnixMs}
					}
					ups[i] = &fsmpb.DialogUpdate{Id: ids[i], CallUuid: calls[i], Dialog: d}
				}
				cmds = append(cmds, DialogUpdatesCommand(ups))
			}
			return cmds
		}, false)
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
// the live heap per stored record, the snapshot's bytes per record, the
// time to persist and to restore the snapshot, and the time the restored
// replica takes to persist its own. Run it with -benchtime 1x.
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
		if p := os.Getenv("DIALTONE_FSM_HEAPPROFILE"); p != "" {
			writeHeapProfile(b, p) // what the stored records' heap is made of
		}

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
		runtime.ReadMemStats(&before)
		g := New()
		t, c = time.Now(), cpuTime()
		if err := g.Restore(readCloser(data)); err != nil {
			b.Fatal(err)
		}
		restore, restoreCPU := time.Since(t), cpuTime()-c
		g.Get("x")
		runtime.GC()
		runtime.ReadMemStats(&after)
		// The snapshot's bytes were in the heap at the first reading: kept
		// to the second, so the difference is the restored state alone
		// (until session 9 they were freed in between, and the figure was
		// the state less the snapshot).
		runtime.KeepAlive(data)
		// The next snapshot of the restored replica.
		snap, err = g.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		t = time.Now()
		if err := snap.Persist(&discardSink{}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(t).Seconds()*1000, "restored-persist-ms")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(g.Count()), "restored-heap-B/record")
		b.ReportMetric(heap, "heap-B/record")
		b.ReportMetric(float64(ds.n)/float64(g.Count()), "snap-B/record")
		b.ReportMetric(persist.Seconds()*1000, "persist-ms")
		b.ReportMetric(restore.Seconds()*1000, "restore-ms")
		b.ReportMetric(persistCPU.Seconds()*1000, "persist-cpu-ms")
		b.ReportMetric(restoreCPU.Seconds()*1000, "restore-cpu-ms")
	}
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}
