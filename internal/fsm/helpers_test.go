package fsm

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// harness feeds commands to an FSM with increasing log indexes.
type harness struct {
	t     testing.TB
	f     *FSM
	index uint64
}

func newHarness(t testing.TB) *harness { return &harness{t: t, f: New()} }

func encode(t testing.TB, cmd *fsmpb.Command) []byte {
	t.Helper()
	b, err := Encode(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// apply applies cmd at time now as the next log entry.
func (h *harness) apply(now int64, cmd *fsmpb.Command) *fsmpb.ApplyResult {
	h.t.Helper()
	cmd.NowUnixMs = now
	h.index++
	res := h.f.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: encode(h.t, cmd)})
	ar, ok := res.(*fsmpb.ApplyResult)
	if !ok {
		h.t.Fatalf("Apply returned %T", res)
	}
	return ar
}

// cmdLog returns a command log entry.
func cmdLog(t testing.TB, index uint64, now int64, cmd *fsmpb.Command) *raft.Log {
	t.Helper()
	cmd.NowUnixMs = now
	return &raft.Log{Index: index, Type: raft.LogCommand, Data: encode(t, cmd)}
}

// one applies a single-item command and returns its item.
func (h *harness) one(now int64, cmd *fsmpb.Command) *fsmpb.ItemResult {
	h.t.Helper()
	res := h.apply(now, cmd)
	if len(res.Items) != 1 {
		h.t.Fatalf("got %d items, want 1: %v", len(res.Items), res)
	}
	return res.Items[0]
}

// mustOK applies cmd and fails the test unless every item is CODE_OK.
func (h *harness) mustOK(now int64, cmd *fsmpb.Command) {
	h.t.Helper()
	for _, it := range h.apply(now, cmd).Items {
		if it.Code != fsmpb.Code_CODE_OK {
			h.t.Fatalf("item %q: %s %q", it.Id, it.Code, it.Reason)
		}
	}
}

func (h *harness) get(id string) *fsmpb.Request {
	h.t.Helper()
	r, ok := h.f.Get(id)
	if !ok {
		h.t.Fatalf("request %q not found", id)
	}
	return r
}

// newReq returns a request spec with a correct fingerprint.
func newReq(id, tenant, profile string, maxAttempts uint32, ttlMs int64) *fsmpb.Request {
	r := &fsmpb.Request{
		Id: id, Tenant: tenant, IvrProfile: profile, Token: "tok",
		Telnum: "+15550100", Ani: "+15550199", NotificationUrl: "https://example.test/n",
		MaxAttempts: maxAttempts, TtlMs: ttlMs,
	}
	r.Fingerprint = Fingerprint(r)
	return r
}

func withKey(r *fsmpb.Request, key string) *fsmpb.Request {
	r.IdempotencyKey = key
	r.Fingerprint = Fingerprint(r)
	return r
}

// Command builders.

func create(reqs ...*fsmpb.Request) *fsmpb.Command {
	return CreateCommand(reqs, 0)
}

func createMax(maxRecords uint64, reqs ...*fsmpb.Request) *fsmpb.Command {
	return CreateCommand(reqs, maxRecords)
}

func cancel(tenant string, ids ...string) *fsmpb.Command {
	return CancelCommand(tenant, ids)
}

func claim(ids ...string) *fsmpb.Command {
	return ClaimCommand(ids)
}

func start(id, callUUID string) *fsmpb.Command {
	return StartAttemptsCommand([]*fsmpb.AttemptStart{{Id: id, CallUuid: callUUID}})
}

func record(id, callUUID string, outcome fsmpb.OutcomeClass, reason string, nextRetry int64) *fsmpb.Command {
	return RecordResultsCommand([]*fsmpb.AttemptResult{{Id: id, CallUuid: callUUID, Outcome: outcome, Reason: reason, NextRetryUnixMs: nextRetry}})
}

func markNotified(ids ...string) *fsmpb.Command {
	return MarkNotifiedCommand(ids)
}

func purge(ids ...string) *fsmpb.Command {
	return PurgeCommand(ids)
}

func requeue(ids ...string) *fsmpb.Command {
	return RequeueCommand(ids)
}

func expire(ids ...string) *fsmpb.Command {
	return ExpireCommand(ids)
}

// sink is a raft.SnapshotSink over a bytes.Buffer.
type sink struct {
	bytes.Buffer
	closed, cancelled bool
	failWrites        bool
}

func (s *sink) Write(p []byte) (int, error) {
	if s.failWrites {
		return 0, fmt.Errorf("disk full")
	}
	return s.Buffer.Write(p)
}
func (s *sink) ID() string    { return "test" }
func (s *sink) Close() error  { s.closed = true; return nil }
func (s *sink) Cancel() error { s.cancelled = true; return nil }

func readCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// snapshotBytes persists a snapshot of f and returns the stream.
func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	s := &sink{}
	if err := snap.Persist(s); err != nil {
		t.Fatal(err)
	}
	if !s.closed || s.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v", s.closed, s.cancelled)
	}
	return s.Bytes()
}

// allRecords returns every record of the given tenants via List paging.
func allRecords(t testing.TB, f *FSM, tenants ...string) []*fsmpb.Request {
	t.Helper()
	var out []*fsmpb.Request
	for _, tenant := range tenants {
		out = append(out, listAll(t, f, ListQuery{Tenant: tenant, Limit: 7})...)
	}
	return out
}

func listAll(t testing.TB, f *FSM, q ListQuery) []*fsmpb.Request {
	t.Helper()
	var out []*fsmpb.Request
	for pages := 0; ; pages++ {
		if pages > 1_000_000 {
			t.Fatal("List does not terminate")
		}
		page, next := f.List(q)
		out = append(out, page...)
		if next == "" {
			return out
		}
		if next != page[len(page)-1].Id {
			t.Fatalf("next %q is not the last id returned %q", next, page[len(page)-1].Id)
		}
		q.After = next
	}
}

func ids(reqs []*fsmpb.Request) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.Id
	}
	return out
}

func sortedByID(reqs []*fsmpb.Request) []*fsmpb.Request {
	out := append([]*fsmpb.Request(nil), reqs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return out
}

func protoEqualSlices(a, b []*fsmpb.Request) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
