package fsm

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

const t0 = int64(1_700_000_000_000) // a fixed "now" for tests

func TestCreate(t *testing.T) {
	h := newHarness(t)
	r := newReq("a", "t1", "p1", 3, 60_000)
	r.CustomData = []*fsmpb.KeyValue{{Key: "k", Value: "v"}}
	r.Cpd = &fsmpb.Cpd{Record: proto.Bool(true), Detect: "human"}
	// Status fields from the proposer are ignored.
	sent := proto.Clone(r).(*fsmpb.Request)
	sent.State = fsmpb.State_PROCESSED
	sent.AttemptsMade = 9
	sent.Attempts = []*fsmpb.Attempt{{Number: 1}}
	sent.DeleteFlag = true
	sent.NotifyState = fsmpb.NotifyState_NOTIFIED
	sent.Result = fsmpb.Result_SUCCESS
	sent.CreateIndex = 77

	it := h.one(t0, create(sent))
	if it.Code != fsmpb.Code_CODE_OK || it.Id != "a" {
		t.Fatalf("create: %v", it)
	}
	want := proto.Clone(r).(*fsmpb.Request)
	want.State = fsmpb.State_PENDING
	want.CreatedUnixMs, want.NextRetryUnixMs, want.UpdatedUnixMs = t0, t0, t0
	want.ExpiresUnixMs = t0 + 60_000
	want.CreateIndex, want.ModifyIndex = 1, 1
	if got := h.get("a"); !proto.Equal(got, want) {
		t.Fatalf("stored\n%v\nwant\n%v", got, want)
	}
	if h.f.Count() != 1 || h.f.AppliedIndex() != 1 {
		t.Fatalf("Count %d AppliedIndex %d", h.f.Count(), h.f.AppliedIndex())
	}

	tests := []struct {
		name   string
		req    *fsmpb.Request
		code   fsmpb.Code
		id     string
		reason string
	}{
		{"empty id", newReq("", "t1", "p1", 1, 1000), fsmpb.Code_CODE_INVALID_STATE, "", "id is required"},
		{"empty tenant", newReq("b", "", "p1", 1, 1000), fsmpb.Code_CODE_INVALID_STATE, "b", "tenant is required"},
		{"id exists", newReq("a", "t1", "p2", 1, 1000), fsmpb.Code_CODE_EXISTS, "a", "id already exists"},
		{"id exists in other tenant", newReq("a", "t2", "p1", 1, 1000), fsmpb.Code_CODE_EXISTS, "a", "id already exists"},
		{"replay of the same create", proto.Clone(r).(*fsmpb.Request), fsmpb.Code_CODE_DUPLICATE, "a", "request already stored under this id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			it := h.one(t0, create(tc.req))
			if it.Code != tc.code || it.Id != tc.id || it.Reason != tc.reason {
				t.Fatalf("got %v, want %s %q %q", it, tc.code, tc.id, tc.reason)
			}
		})
	}
	if h.f.Count() != 1 {
		t.Fatalf("Count = %d, want 1", h.f.Count())
	}
}

func TestCreateIdempotency(t *testing.T) {
	h := newHarness(t)
	// Within one entry.
	other := withKey(newReq("c", "t1", "p1", 3, 1000), "k1")
	other.Telnum = "+15550000" // different body, same key
	other.Fingerprint = Fingerprint(other)
	res := h.apply(t0, create(
		withKey(newReq("a", "t1", "p1", 3, 1000), "k1"),
		withKey(newReq("b", "t1", "p1", 3, 1000), "k1"), // same body as a, new id
		other,
		withKey(newReq("d", "t2", "p1", 3, 1000), "k1"), // other tenant: independent key
	))
	want := []struct {
		code fsmpb.Code
		id   string
	}{
		{fsmpb.Code_CODE_OK, "a"},
		{fsmpb.Code_CODE_DUPLICATE, "a"},
		{fsmpb.Code_CODE_CONFLICT, "c"},
		{fsmpb.Code_CODE_OK, "d"},
	}
	for i, w := range want {
		if it := res.Items[i]; it.Code != w.code || it.Id != w.id {
			t.Errorf("item %d: got %v, want %s %q", i, it, w.code, w.id)
		}
	}
	// Across entries, and the idempotency check comes before the id check.
	if it := h.one(t0+1, create(withKey(newReq("a", "t1", "p1", 3, 1000), "k1"))); it.Code != fsmpb.Code_CODE_DUPLICATE || it.Id != "a" {
		t.Errorf("retry across entries: %v", it)
	}
	if it := h.one(t0+1, create(other)); it.Code != fsmpb.Code_CODE_CONFLICT || it.Id != "c" {
		t.Errorf("conflict across entries: %v", it)
	}
	// Requests without a key never collide with each other.
	h.mustOK(t0+2, create(newReq("e", "t1", "p1", 3, 1000), newReq("f", "t1", "p1", 3, 1000)))
	if h.f.Count() != 4 {
		t.Errorf("Count = %d, want 4", h.f.Count())
	}
	// A purged request frees its key.
	h.mustOK(t0+3, cancel("t1", "a"))
	h.mustOK(t0+3, purge("a"))
	if it := h.one(t0+4, create(other)); it.Code != fsmpb.Code_CODE_OK {
		t.Errorf("create after purge: %v", it)
	}
}

func TestCreateCapacity(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, create(newReq("a", "t1", "p1", 1, 1000), newReq("b", "t2", "p1", 1, 1000)))
	var reqs []*fsmpb.Request
	for _, id := range []string{"c", "d", "e", "f", "g"} {
		reqs = append(reqs, newReq(id, "t1", "p1", 1, 1000))
	}
	res := h.apply(t0, createMax(5, reqs...))
	for i, it := range res.Items {
		wantCode := fsmpb.Code_CODE_OK
		if i >= 3 {
			wantCode = fsmpb.Code_CODE_CAPACITY
		}
		if it.Code != wantCode || it.Id != reqs[i].Id {
			t.Errorf("item %d: %v, want %s", i, it, wantCode)
		}
		if wantCode == fsmpb.Code_CODE_CAPACITY && it.Reason != "maximum of 5 stored records reached" {
			t.Errorf("reason %q", it.Reason)
		}
	}
	if h.f.Count() != 5 {
		t.Errorf("Count = %d, want 5", h.f.Count())
	}
	if _, ok := h.f.Get("f"); ok {
		t.Error("f stored beyond capacity")
	}
	// Unlimited when max_records is 0.
	h.mustOK(t0, createMax(0, newReq("f", "t1", "p1", 1, 1000)))
}

// toState creates request id (max 3 attempts, TTL 60 s at t0) and drives it
// into the given state (PROCESSED: SUCCESS, notification pending).
func toState(h *harness, id, tenant string, state fsmpb.State) {
	h.t.Helper()
	h.mustOK(t0, create(newReq(id, tenant, "p1", 3, 60_000)))
	if state == fsmpb.State_PENDING {
		return
	}
	h.mustOK(t0, claim(id))
	if state == fsmpb.State_INITIATED {
		return
	}
	h.mustOK(t0, start(id, "call-"+id))
	if state == fsmpb.State_IN_PROGRESS {
		return
	}
	h.mustOK(t0, record(id, "call-"+id, fsmpb.OutcomeClass_OUTCOME_SUCCESS, "TreatmentApplied", 0))
}

func TestCancel(t *testing.T) {
	h := newHarness(t)
	toState(h, "pending", "t1", fsmpb.State_PENDING)
	toState(h, "initiated", "t1", fsmpb.State_INITIATED)
	toState(h, "inprogress", "t1", fsmpb.State_IN_PROGRESS)
	toState(h, "processed", "t1", fsmpb.State_PROCESSED)
	toState(h, "other", "t2", fsmpb.State_PENDING)

	res := h.apply(t0+5, cancel("t1", "pending", "initiated", "inprogress", "processed", "missing", "other"))
	want := []struct {
		code   fsmpb.Code
		reason string
	}{
		{fsmpb.Code_CODE_OK, ""},
		{fsmpb.Code_CODE_OK, ""},
		{fsmpb.Code_CODE_IN_PROGRESS, "an attempt is in progress"},
		{fsmpb.Code_CODE_FINISHED, "request is already finished"},
		{fsmpb.Code_CODE_NOT_FOUND, "request not found"},
		{fsmpb.Code_CODE_NOT_FOUND, "request not found"}, // indistinguishable from missing
	}
	for i, w := range want {
		if it := res.Items[i]; it.Code != w.code || it.Reason != w.reason {
			t.Errorf("item %d (%s): %v, want %s %q", i, it.Id, it, w.code, w.reason)
		}
	}
	for _, id := range []string{"pending", "initiated"} {
		r := h.get(id)
		if r.State != fsmpb.State_PROCESSED || r.Result != fsmpb.Result_CANCELLED || r.ResultReason != "Cancelled" ||
			!r.DeleteFlag || r.NotifyState != fsmpb.NotifyState_NOTIFY_NOT_REQUIRED ||
			r.UpdatedUnixMs != t0+5 || r.ModifyIndex != h.index {
			t.Errorf("%s after cancel: %v", id, r)
		}
	}
	if r := h.get("other"); r.State != fsmpb.State_PENDING {
		t.Errorf("other tenant's request changed: %v", r)
	}
}

func TestClaimRequeue(t *testing.T) {
	h := newHarness(t)
	toState(h, "pending", "t1", fsmpb.State_PENDING)
	toState(h, "inprogress", "t1", fsmpb.State_IN_PROGRESS)

	res := h.apply(t0+1, claim("pending", "pending", "inprogress", "missing"))
	codes := []fsmpb.Code{fsmpb.Code_CODE_OK, fsmpb.Code_CODE_INVALID_STATE, fsmpb.Code_CODE_INVALID_STATE, fsmpb.Code_CODE_NOT_FOUND}
	for i, c := range codes {
		if res.Items[i].Code != c {
			t.Errorf("claim item %d: %v, want %s", i, res.Items[i], c)
		}
	}
	if r := h.get("pending"); r.State != fsmpb.State_INITIATED || r.UpdatedUnixMs != t0+1 || r.ModifyIndex != h.index || r.CreateIndex != 1 {
		t.Errorf("after claim: %v", r)
	}
	if got := res.Items[1].Reason; got != "request is INITIATED, not PENDING" {
		t.Errorf("reason %q", got)
	}

	res = h.apply(t0+2, requeue("pending", "pending", "inprogress", "missing"))
	for i, c := range codes {
		if res.Items[i].Code != c {
			t.Errorf("requeue item %d: %v, want %s", i, res.Items[i], c)
		}
	}
	if r := h.get("pending"); r.State != fsmpb.State_PENDING || r.UpdatedUnixMs != t0+2 {
		t.Errorf("after requeue: %v", r)
	}
}

func TestStartAttempts(t *testing.T) {
	h := newHarness(t)
	toState(h, "pending", "t1", fsmpb.State_PENDING)
	toState(h, "ok", "t1", fsmpb.State_INITIATED)
	toState(h, "expired", "t1", fsmpb.State_INITIATED)
	h.mustOK(t0, create(newReq("noattempts", "t1", "p1", 1, 60_000)))
	h.mustOK(t0, claim("noattempts"))
	h.mustOK(t0, start("noattempts", "c1"))
	h.mustOK(t0, record("noattempts", "c1", fsmpb.OutcomeClass_OUTCOME_INTERNAL, "", 0)) // not counted
	h.mustOK(t0, claim("noattempts"))
	h.mustOK(t0, start("noattempts", "c2"))
	h.mustOK(t0, record("noattempts", "c2", fsmpb.OutcomeClass_OUTCOME_BUSY, "DestinationBusy", t0+10)) // counted: done
	if r := h.get("noattempts"); r.State != fsmpb.State_PROCESSED || r.ResultReason != "MaxAttempts Exceeded" {
		t.Fatalf("noattempts: %v", r)
	}

	tests := []struct {
		id, reason string
		now        int64
		code       fsmpb.Code
	}{
		{"pending", "request is PENDING, not INITIATED", t0 + 1, fsmpb.Code_CODE_INVALID_STATE},
		{"expired", "TTL expired", t0 + 60_000, fsmpb.Code_CODE_INVALID_STATE},
		{"missing", "request not found", t0 + 1, fsmpb.Code_CODE_NOT_FOUND},
		{"ok", "", t0 + 1, fsmpb.Code_CODE_OK},
		{"ok", "request is IN_PROGRESS, not INITIATED", t0 + 1, fsmpb.Code_CODE_INVALID_STATE},
	}
	for _, tc := range tests {
		it := h.one(tc.now, start(tc.id, "call-x"))
		if it.Code != tc.code || it.Reason != tc.reason || it.Id != tc.id {
			t.Errorf("start %s: %v, want %s %q", tc.id, it, tc.code, tc.reason)
		}
	}
	r := h.get("ok")
	if r.State != fsmpb.State_IN_PROGRESS || r.AttemptsMade != 1 || r.LastCallUuid != "call-x" || len(r.Attempts) != 1 ||
		!proto.Equal(r.Attempts[0], &fsmpb.Attempt{Number: 1, CallUuid: "call-x", StartedUnixMs: t0 + 1}) {
		t.Errorf("after start: %v", r)
	}

	// A request with max_attempts 0 can never start.
	h.mustOK(t0, create(newReq("zero", "t1", "p1", 0, 60_000)))
	h.mustOK(t0, claim("zero"))
	if it := h.one(t0, start("zero", "c1")); it.Code != fsmpb.Code_CODE_INVALID_STATE || it.Reason != "all 0 attempts made" {
		t.Errorf("start zero: %v", it)
	}
}

// TestBatchStartAttempts: claim and start in one update, from a due
// PENDING or an INITIATED request; the same record as ClaimCommand then
// StartAttemptsCommand would leave.
func TestBatchStartAttempts(t *testing.T) {
	h := newHarness(t)
	bstart := func(id, call string) *fsmpb.Command {
		return BatchStartAttemptsCommand([]*fsmpb.AttemptStart{{Id: id, CallUuid: call}})
	}
	toState(h, "pending", "t1", fsmpb.State_PENDING)
	toState(h, "initiated", "t1", fsmpb.State_INITIATED)
	toState(h, "inprogress", "t1", fsmpb.State_IN_PROGRESS)
	toState(h, "processed", "t1", fsmpb.State_PROCESSED)
	toState(h, "expired", "t1", fsmpb.State_PENDING)
	toState(h, "deferred", "t1", fsmpb.State_PENDING)
	h.mustOK(t0, DeferCommand([]*fsmpb.DeferItem{{Id: "deferred", UntilUnixMs: t0 + 5000, Reason: "outside_window"}}))
	toState(h, "legacy", "t1", fsmpb.State_PENDING)

	tests := []struct {
		id, reason string
		now        int64
		code       fsmpb.Code
	}{
		{"pending", "", t0 + 1, fsmpb.Code_CODE_OK},
		{"initiated", "", t0 + 1, fsmpb.Code_CODE_OK},
		{"inprogress", "request is IN_PROGRESS, not PENDING or INITIATED", t0 + 1, fsmpb.Code_CODE_INVALID_STATE},
		{"processed", "request is PROCESSED, not PENDING or INITIATED", t0 + 1, fsmpb.Code_CODE_INVALID_STATE},
		{"expired", "TTL expired", t0 + 60_000, fsmpb.Code_CODE_INVALID_STATE},
		{"deferred", fmt.Sprintf("not due until %d", t0+5000), t0 + 1, fsmpb.Code_CODE_INVALID_STATE},
		{"missing", "request not found", t0 + 1, fsmpb.Code_CODE_NOT_FOUND},
	}
	for _, tc := range tests {
		it := h.one(tc.now, bstart(tc.id, "call-x"))
		if it.Code != tc.code || it.Reason != tc.reason || it.Id != tc.id {
			t.Errorf("batch start %s: %v, want %s %q", tc.id, it, tc.code, tc.reason)
		}
	}
	// Once due, the deferred request starts.
	if it := h.one(t0+5000, bstart("deferred", "call-d")); it.Code != fsmpb.Code_CODE_OK {
		t.Errorf("deferred, once due: %v", it)
	}
	// The record equals the one claim + start leave (but its indexes).
	h.mustOK(t0+1, claim("legacy"))
	h.mustOK(t0+1, start("legacy", "call-x"))
	got, want := proto.Clone(h.get("pending")).(*fsmpb.Request), proto.Clone(h.get("legacy")).(*fsmpb.Request)
	got.Id, want.Id = "", ""
	got.CreateIndex, got.ModifyIndex, want.CreateIndex, want.ModifyIndex = 0, 0, 0, 0
	got.Fingerprint, want.Fingerprint = nil, nil
	if !proto.Equal(got, want) {
		t.Errorf("batch start left\n%v\nclaim + start left\n%v", got, want)
	}
	if due := h.f.Due("t1", "p1", fsmpb.State_PENDING, 100); len(due) != 1 || due[0].Id != "expired" {
		t.Errorf("queued after the starts: %v, want [expired]", ids(due))
	}
}

func TestRecordResults(t *testing.T) {
	const ttl = 60_000
	expires := t0 + ttl
	type want struct {
		state    fsmpb.State
		result   fsmpb.Result
		reason   string
		attempts uint32
		retry    int64 // next_retry_unix_ms when PENDING
	}
	tests := []struct {
		name        string
		maxAttempts uint32
		outcome     fsmpb.OutcomeClass
		now         int64
		nextRetry   int64
		want        want
	}{
		{"success", 3, fsmpb.OutcomeClass_OUTCOME_SUCCESS, t0 + 10, 0, want{fsmpb.State_PROCESSED, fsmpb.Result_SUCCESS, "", 1, 0}},
		{"permanent", 3, fsmpb.OutcomeClass_OUTCOME_PERMANENT, t0 + 10, 0, want{fsmpb.State_PROCESSED, fsmpb.Result_FAILURE, "the reason", 1, 0}},
		{"internal retried", 3, fsmpb.OutcomeClass_OUTCOME_INTERNAL, t0 + 10, t0 + 500, want{fsmpb.State_PENDING, 0, "", 0, t0 + 500}},
		{"interrupted retried now", 1, fsmpb.OutcomeClass_OUTCOME_INTERRUPTED, t0 + 10, t0 - 5, want{fsmpb.State_PENDING, 0, "", 0, t0 + 10}},
		{"internal after ttl", 3, fsmpb.OutcomeClass_OUTCOME_INTERNAL, expires, 0, want{fsmpb.State_PROCESSED, fsmpb.Result_FAILURE, "TTL Expired", 0, 0}},
		{"interrupted retry beyond ttl still pending", 3, fsmpb.OutcomeClass_OUTCOME_INTERRUPTED, t0 + 10, expires + 5, want{fsmpb.State_PENDING, 0, "", 0, expires + 5}},
		{"busy retried", 3, fsmpb.OutcomeClass_OUTCOME_BUSY, t0 + 10, t0 + 500, want{fsmpb.State_PENDING, 0, "", 1, t0 + 500}},
		{"temporary retried now", 3, fsmpb.OutcomeClass_OUTCOME_TEMPORARY, t0 + 10, 0, want{fsmpb.State_PENDING, 0, "", 1, t0 + 10}},
		{"busy max attempts", 1, fsmpb.OutcomeClass_OUTCOME_BUSY, t0 + 10, t0 + 500, want{fsmpb.State_PROCESSED, fsmpb.Result_FAILURE, "MaxAttempts Exceeded", 1, 0}},
		{"temporary max attempts before ttl", 1, fsmpb.OutcomeClass_OUTCOME_TEMPORARY, expires, 0, want{fsmpb.State_PROCESSED, fsmpb.Result_FAILURE, "MaxAttempts Exceeded", 1, 0}},
		{"busy retry at expiry", 3, fsmpb.OutcomeClass_OUTCOME_BUSY, t0 + 10, expires, want{fsmpb.State_PROCESSED, fsmpb.Result_FAILURE, "TTL Expired", 1, 0}},
		{"temporary after ttl", 3, fsmpb.OutcomeClass_OUTCOME_TEMPORARY, expires + 1, 0, want{fsmpb.State_PROCESSED, fsmpb.Result_FAILURE, "TTL Expired", 1, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.mustOK(t0, create(newReq("r", "t1", "p1", tc.maxAttempts, ttl)))
			h.mustOK(t0, claim("r"))
			h.mustOK(t0+1, start("r", "call-1"))
			it := h.one(tc.now, record("r", "call-1", tc.outcome, "the reason", tc.nextRetry))
			if it.Code != fsmpb.Code_CODE_OK || it.Id != "r" {
				t.Fatalf("record: %v", it)
			}
			r := h.get("r")
			w := tc.want
			if r.State != w.state || r.Result != w.result || r.ResultReason != w.reason || r.AttemptsMade != w.attempts {
				t.Fatalf("got state %s result %s reason %q attempts %d, want %+v", r.State, r.Result, r.ResultReason, r.AttemptsMade, w)
			}
			if w.state == fsmpb.State_PENDING && r.NextRetryUnixMs != w.retry {
				t.Errorf("next_retry = %d, want %d", r.NextRetryUnixMs, w.retry)
			}
			finished := w.state == fsmpb.State_PROCESSED
			wantNotify := fsmpb.NotifyState_NOTIFY_NONE
			if finished {
				wantNotify = fsmpb.NotifyState_NOTIFY_PENDING
			}
			if r.DeleteFlag != finished || r.NotifyState != wantNotify {
				t.Errorf("delete_flag %v notify %s", r.DeleteFlag, r.NotifyState)
			}
			wantAttempt := &fsmpb.Attempt{Number: 1, CallUuid: "call-1", StartedUnixMs: t0 + 1, EndedUnixMs: tc.now, Outcome: tc.outcome, Reason: "the reason"}
			if len(r.Attempts) != 1 || !proto.Equal(r.Attempts[0], wantAttempt) {
				t.Errorf("attempts %v, want %v", r.Attempts, wantAttempt)
			}
			if r.UpdatedUnixMs != tc.now || r.ModifyIndex != h.index || r.CreateIndex != 1 {
				t.Errorf("updated %d modify %d create %d", r.UpdatedUnixMs, r.ModifyIndex, r.CreateIndex)
			}
		})
	}
}

func TestRecordResultsRefused(t *testing.T) {
	h := newHarness(t)
	toState(h, "initiated", "t1", fsmpb.State_INITIATED)
	toState(h, "inprogress", "t1", fsmpb.State_IN_PROGRESS)
	before := h.get("inprogress")
	tests := []struct {
		name, id, call string
		outcome        fsmpb.OutcomeClass
		code           fsmpb.Code
		reason         string
	}{
		{"missing", "missing", "c", fsmpb.OutcomeClass_OUTCOME_SUCCESS, fsmpb.Code_CODE_NOT_FOUND, "request not found"},
		{"not in progress", "initiated", "call-initiated", fsmpb.OutcomeClass_OUTCOME_SUCCESS, fsmpb.Code_CODE_INVALID_STATE, "request is INITIATED, not IN_PROGRESS"},
		{"stale call", "inprogress", "old-call", fsmpb.OutcomeClass_OUTCOME_SUCCESS, fsmpb.Code_CODE_INVALID_STATE, `stale result: call "old-call" is not the current attempt`},
		{"unspecified outcome", "inprogress", "call-inprogress", fsmpb.OutcomeClass_OUTCOME_UNSPECIFIED, fsmpb.Code_CODE_INVALID_STATE, "unknown outcome OUTCOME_UNSPECIFIED"},
		{"unknown outcome", "inprogress", "call-inprogress", fsmpb.OutcomeClass(99), fsmpb.Code_CODE_INVALID_STATE, "unknown outcome 99"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			it := h.one(t0+1, record(tc.id, tc.call, tc.outcome, "", 0))
			if it.Code != tc.code || it.Reason != tc.reason || it.Id != tc.id {
				t.Fatalf("got %v, want %s %q", it, tc.code, tc.reason)
			}
		})
	}
	if after := h.get("inprogress"); after != before {
		t.Error("refused result modified the record")
	}
}

func TestMarkNotifiedPurge(t *testing.T) {
	h := newHarness(t)
	toState(h, "done", "t1", fsmpb.State_PROCESSED)
	toState(h, "pending", "t1", fsmpb.State_PENDING)
	toState(h, "cancelled", "t1", fsmpb.State_PENDING)
	h.mustOK(t0, cancel("t1", "cancelled"))

	// Notification required first.
	res := h.apply(t0+1, purge("done", "pending", "missing"))
	for i, c := range []fsmpb.Code{fsmpb.Code_CODE_INVALID_STATE, fsmpb.Code_CODE_INVALID_STATE, fsmpb.Code_CODE_NOT_FOUND} {
		if res.Items[i].Code != c {
			t.Errorf("purge item %d: %v, want %s", i, res.Items[i], c)
		}
	}
	res = h.apply(t0+2, markNotified("done", "done", "pending", "cancelled", "missing"))
	for i, c := range []fsmpb.Code{fsmpb.Code_CODE_OK, fsmpb.Code_CODE_INVALID_STATE, fsmpb.Code_CODE_INVALID_STATE, fsmpb.Code_CODE_INVALID_STATE, fsmpb.Code_CODE_NOT_FOUND} {
		if res.Items[i].Code != c {
			t.Errorf("mark item %d: %v, want %s", i, res.Items[i], c)
		}
	}
	if r := h.get("done"); r.NotifyState != fsmpb.NotifyState_NOTIFIED || r.UpdatedUnixMs != t0+2 || r.ModifyIndex != h.index {
		t.Errorf("after mark: %v", r)
	}
	if n := h.f.Count(); n != 3 {
		t.Fatalf("Count = %d", n)
	}
	res = h.apply(t0+3, purge("done", "cancelled", "done"))
	for i, c := range []fsmpb.Code{fsmpb.Code_CODE_OK, fsmpb.Code_CODE_OK, fsmpb.Code_CODE_NOT_FOUND} {
		if res.Items[i].Code != c {
			t.Errorf("purge item %d: %v, want %s", i, res.Items[i], c)
		}
	}
	if n := h.f.Count(); n != 1 {
		t.Fatalf("Count = %d after purge", n)
	}
	// Gone from every index.
	for _, id := range []string{"done", "cancelled"} {
		if _, ok := h.f.Get(id); ok {
			t.Errorf("%s still found", id)
		}
	}
	if got := ids(allRecords(t, h.f, "t1")); len(got) != 1 || got[0] != "pending" {
		t.Errorf("List after purge: %v", got)
	}
	if got := h.f.Due("t1", "p1", fsmpb.State_PROCESSED, 10); len(got) != 0 {
		t.Errorf("Due PROCESSED after purge: %v", ids(got))
	}
	if got := h.f.Profiles("t1", fsmpb.State_STATE_UNSPECIFIED); len(got) != 1 || got["p1"] != 1 {
		t.Errorf("Profiles after purge: %v", got)
	}
}

func TestExpire(t *testing.T) {
	h := newHarness(t)
	toState(h, "pending", "t1", fsmpb.State_PENDING)
	toState(h, "initiated", "t1", fsmpb.State_INITIATED)
	toState(h, "inprogress", "t1", fsmpb.State_IN_PROGRESS)
	toState(h, "young", "t1", fsmpb.State_PENDING)

	if it := h.one(t0+59_999, expire("young")); it.Code != fsmpb.Code_CODE_INVALID_STATE || it.Reason != "TTL not expired yet" {
		t.Errorf("expire before TTL: %v", it)
	}
	res := h.apply(t0+60_000, expire("pending", "initiated", "inprogress", "missing"))
	for i, c := range []fsmpb.Code{fsmpb.Code_CODE_OK, fsmpb.Code_CODE_OK, fsmpb.Code_CODE_INVALID_STATE, fsmpb.Code_CODE_NOT_FOUND} {
		if res.Items[i].Code != c {
			t.Errorf("expire item %d: %v, want %s", i, res.Items[i], c)
		}
	}
	for _, id := range []string{"pending", "initiated"} {
		r := h.get(id)
		if r.State != fsmpb.State_PROCESSED || r.Result != fsmpb.Result_FAILURE || r.ResultReason != "TTL Expired" ||
			!r.DeleteFlag || r.NotifyState != fsmpb.NotifyState_NOTIFY_PENDING || r.UpdatedUnixMs != t0+60_000 {
			t.Errorf("%s after expire: %v", id, r)
		}
	}
	if it := h.one(t0+70_000, expire("pending")); it.Code != fsmpb.Code_CODE_INVALID_STATE {
		t.Errorf("expire twice: %v", it)
	}
}

func TestPanics(t *testing.T) {
	claimBody := &fsmpb.Command_Claim{Claim: &fsmpb.ClaimRequests{}}
	tests := []struct {
		name string
		data []byte
		msg  string
	}{
		{"garbage", []byte{0xff, 0xff, 0xff}, "is not a Command"},
		{"newer version", rawEntry(t, &fsmpb.Command{Version: CommandVersion + 1, Body: claimBody}), "command version 2"},
		// The flag is about bodies: it never excuses an envelope this
		// binary cannot read.
		{"newer version flagged ignore-unknown", rawEntry(t, &fsmpb.Command{Version: CommandVersion + 1, IgnoreUnknown: true, Body: claimBody}), "command version 2"},
		{"unstamped version", rawEntry(t, &fsmpb.Command{Body: claimBody}), "command version 0"},
		{"no body", rawEntry(t, &fsmpb.Command{Version: CommandVersion, NowUnixMs: 1}), "unknown or missing body"},
		{"unknown request body", unknownBodyEntry(t, false), "unknown or missing body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.mustOK(t0, create(newReq("a", "t1", "p1", 1, 1000)))
			func() {
				defer func() {
					r := recover()
					if r == nil {
						t.Fatal("Apply did not panic")
					}
					if s, _ := r.(string); !strings.Contains(s, tc.msg) {
						t.Fatalf("panic %q does not mention %q", r, tc.msg)
					}
				}()
				// In a batch after a valid entry: nothing of it may stick.
				h.f.ApplyBatch([]*raft.Log{
					cmdLog(t, 2, t0, claim("a")),
					{Index: 3, Type: raft.LogCommand, Data: tc.data},
				})
			}()
			// The FSM is unchanged and still usable (locks released).
			if h.f.AppliedIndex() != 1 || h.get("a").State != fsmpb.State_PENDING {
				t.Fatalf("state changed by a panicking batch: index %d, %v", h.f.AppliedIndex(), h.get("a"))
			}
			h.mustOK(t0, claim("a"))
		})
	}
}

// TestBatchRecordResults: outcomes and notification marks in one entry,
// item results in that order.
func TestBatchRecordResults(t *testing.T) {
	h := newHarness(t)
	toState(h, "done", "t1", fsmpb.State_PROCESSED)
	toState(h, "running", "t1", fsmpb.State_IN_PROGRESS)
	res := h.apply(t0+1, BatchRecordResultsCommand(
		[]*fsmpb.AttemptResult{{Id: "running", CallUuid: "call-running", Outcome: fsmpb.OutcomeClass_OUTCOME_SUCCESS, Reason: "TreatmentApplied"}},
		[]string{"done", "missing", "done"}))
	want := []fsmpb.Code{fsmpb.Code_CODE_OK, fsmpb.Code_CODE_OK, fsmpb.Code_CODE_NOT_FOUND, fsmpb.Code_CODE_INVALID_STATE}
	if len(res.Items) != len(want) {
		t.Fatalf("%d items: %v", len(res.Items), res)
	}
	for i, it := range res.Items {
		if it.Code != want[i] {
			t.Errorf("item %d: %v, want %s", i, it, want[i])
		}
	}
	if r := h.get("done"); r.NotifyState != fsmpb.NotifyState_NOTIFIED {
		t.Errorf("done: %s", r.NotifyState)
	}
	if r := h.get("running"); r.State != fsmpb.State_PROCESSED || r.NotifyState != fsmpb.NotifyState_NOTIFY_PENDING {
		t.Errorf("running: %s %s", r.State, r.NotifyState)
	}
}

// TestCreateRefusedLeavesNoTrace: a keyed create refused for its id or for
// capacity (after its key and id were checked) leaves the key and the id
// as they were, so the stored record stays and the key stays free.
func TestCreateRefusedLeavesNoTrace(t *testing.T) {
	h := newHarness(t)
	a := withKey(newReq("a", "t1", "p1", 3, 1000), "ka")
	h.mustOK(t0, create(a))

	// Id taken, new key: refused, and the key is not kept.
	if it := h.one(t0+1, create(withKey(newReq("a", "t1", "p2", 3, 1000), "kb"))); it.Code != fsmpb.Code_CODE_EXISTS {
		t.Fatalf("id exists: %v", it)
	}
	if got := h.get("a"); string(got.Fingerprint) != string(a.Fingerprint) || got.IvrProfile != "p1" {
		t.Fatalf("stored record changed: %v", got)
	}
	// Full: refused, neither key nor id kept.
	c := withKey(newReq("c", "t1", "p1", 3, 1000), "kc")
	if it := h.one(t0+2, createMax(1, c)); it.Code != fsmpb.Code_CODE_CAPACITY {
		t.Fatalf("capacity: %v", it)
	}
	if _, ok := h.f.Get("c"); ok {
		t.Fatal("c stored beyond capacity")
	}
	// Both keys and the id c are free: these are new records, not duplicates.
	res := h.apply(t0+3, create(withKey(newReq("b", "t1", "p1", 3, 1000), "kb"), c))
	for _, it := range res.Items {
		if it.Code != fsmpb.Code_CODE_OK {
			t.Fatalf("after refusals: %v", it)
		}
	}
	// The key of a is still a's.
	z := newReq("z", "t1", "p1", 3, 1000)
	z.Telnum = "+15550000" // another body
	if it := h.one(t0+4, create(withKey(z, "ka"))); it.Code != fsmpb.Code_CODE_CONFLICT {
		t.Fatalf("key of a: %v", it)
	}
	if h.f.Count() != 3 {
		t.Fatalf("Count = %d, want 3", h.f.Count())
	}
	// The indexes agree with the records: a snapshot restores.
	g := New()
	if err := g.Restore(readCloser(snapshotBytes(t, h.f))); err != nil {
		t.Fatal(err)
	}
	if !protoEqualSlices(sortedByID(allRecords(t, g, "t1")), sortedByID(allRecords(t, h.f, "t1"))) {
		t.Fatal("restored records differ")
	}
}
