package fsm

import (
	"bytes"
	"encoding/binary"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// richState builds records in every state and with every result, with
// attempt histories, cpd and custom data.
func richState(t *testing.T) *harness {
	h := newHarness(t)
	spec := func(id, tenant, profile string) *fsmpb.Request {
		r := newReq(id, tenant, profile, 3, 60_000)
		r.CustomData = []*fsmpb.KeyValue{{Key: "order", Value: id}, {Key: "lang", Value: "fr"}}
		r.Cpd = &fsmpb.Cpd{Record: proto.Bool(true), PostConnectTimeoutMs: proto.Int64(1500), RnaTimeoutMs: proto.Int64(30_000), Preconnect: proto.Bool(false), Detect: "machine"}
		return withKey(r, "key-"+id)
	}
	var reqs []*fsmpb.Request
	for _, id := range []string{"pending", "retrying", "initiated", "inprogress", "success", "failure", "maxattempts", "cancelled", "expired", "notified"} {
		reqs = append(reqs, spec(id, "t1", "p1"))
	}
	reqs = append(reqs, newReq("plain", "t2", "p2", 1, 1000))
	h.mustOK(t0, create(reqs...))
	h.mustOK(t0+1, claim("retrying", "initiated", "inprogress", "success", "failure", "maxattempts", "notified"))
	h.mustOK(t0+2, start("retrying", "r1"))
	h.mustOK(t0+3, record("retrying", "r1", fsmpb.OutcomeClass_OUTCOME_BUSY, "DestinationBusy", t0+9000))
	h.mustOK(t0+2, start("inprogress", "ip1"))
	h.mustOK(t0+2, start("success", "s1"))
	h.mustOK(t0+3, record("success", "s1", fsmpb.OutcomeClass_OUTCOME_SUCCESS, "TreatmentApplied", 0))
	h.mustOK(t0+2, start("failure", "f1"))
	h.mustOK(t0+3, record("failure", "f1", fsmpb.OutcomeClass_OUTCOME_PERMANENT, "VacantNumber", 0))
	for i, call := range []string{"m1", "m2", "m3"} {
		if i > 0 {
			h.mustOK(t0+4, claim("maxattempts"))
		}
		h.mustOK(t0+4, start("maxattempts", call))
		h.mustOK(t0+5, record("maxattempts", call, fsmpb.OutcomeClass_OUTCOME_TEMPORARY, "RingNoAnswer", 0))
	}
	h.mustOK(t0+6, cancel("t1", "cancelled"))
	h.mustOK(t0+60_000, expire("expired"))
	h.mustOK(t0+2, start("notified", "n1"))
	h.mustOK(t0+3, record("notified", "n1", fsmpb.OutcomeClass_OUTCOME_SUCCESS, "", 0))
	h.mustOK(t0+4, markNotified("notified"))
	return h
}

func TestSnapshotRoundTrip(t *testing.T) {
	h := richState(t)
	wantResults := map[string]fsmpb.Result{"success": fsmpb.Result_SUCCESS, "failure": fsmpb.Result_FAILURE, "cancelled": fsmpb.Result_CANCELLED, "expired": fsmpb.Result_FAILURE, "maxattempts": fsmpb.Result_FAILURE}
	for id, res := range wantResults {
		if r := h.get(id); r.State != fsmpb.State_PROCESSED || r.Result != res {
			t.Fatalf("setup: %s is %s/%s", id, r.State, r.Result)
		}
	}
	if r := h.get("maxattempts"); len(r.Attempts) != 3 || r.ResultReason != "MaxAttempts Exceeded" {
		t.Fatalf("setup: maxattempts %v", r)
	}

	data := snapshotBytes(t, h.f)
	g := New()
	// Restore replaces whatever was there.
	gh := &harness{t: t, f: g}
	gh.mustOK(t0, create(newReq("stale", "t1", "p1", 1, 1000)))
	if err := g.Restore(readCloser(data)); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.Get("stale"); ok {
		t.Fatal("state from before Restore survived")
	}
	if g.AppliedIndex() != h.f.AppliedIndex() || g.Count() != h.f.Count() {
		t.Fatalf("restored index %d count %d, want %d %d", g.AppliedIndex(), g.Count(), h.f.AppliedIndex(), h.f.Count())
	}
	want := allRecords(t, h.f, "t1", "t2")
	got := allRecords(t, g, "t1", "t2")
	if len(want) != 11 || !protoEqualSlices(got, want) {
		t.Fatalf("restored records differ:\n%v\nwant\n%v", got, want)
	}
	for _, tenant := range []string{"t1", "t2"} {
		for _, state := range []fsmpb.State{0, 1, 2, 3, 4} {
			if a, b := g.Profiles(tenant, state), h.f.Profiles(tenant, state); len(a) != len(b) {
				t.Errorf("Profiles(%s,%s) = %v, want %v", tenant, state, a, b)
			}
			if a, b := g.Due(tenant, "p1", state, 100), h.f.Due(tenant, "p1", state, 100); !protoEqualSlices(a, b) {
				t.Errorf("Due(%s,%s) differs", tenant, state)
			}
		}
	}
	// The restored FSM keeps working, including idempotency and re-snapshot.
	if it := (&harness{t: t, f: g, index: g.AppliedIndex()}).one(t0, create(withKey(newReq("x", "t1", "p1", 3, 60_000), "key-pending"))); it.Code != fsmpb.Code_CODE_CONFLICT {
		t.Errorf("idempotency after restore: %v", it)
	}
	if again := snapshotBytes(t, g); !bytes.Equal(again[headerLen:], data[headerLen:]) {
		t.Error("records changed by a refused create")
	}
}

// A snapshot is the state when Snapshot was called, however much is applied
// before Persist runs.
func TestSnapshotIsolation(t *testing.T) {
	h := richState(t)
	before := snapshotBytes(t, h.f)
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	h.mustOK(t0+10, claim("pending"))
	h.mustOK(t0+10, purge("notified"))
	h.mustOK(t0+10, create(newReq("new", "t1", "p1", 1, 1000)))
	s := &sink{}
	if err := snap.Persist(s); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.Bytes(), before) {
		t.Fatal("snapshot includes entries applied after Snapshot()")
	}
}

func TestPersistError(t *testing.T) {
	h := richState(t)
	snap, _ := h.f.Snapshot()
	s := &sink{failWrites: true}
	err := snap.Persist(s)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v", err)
	}
	if !s.cancelled || s.closed {
		t.Fatalf("sink cancelled=%v closed=%v", s.cancelled, s.closed)
	}
}

func TestRestoreCorrupt(t *testing.T) {
	h := richState(t)
	good := snapshotBytes(t, h.f)

	target := newHarness(t)
	target.mustOK(t0, create(newReq("keep", "t9", "p1", 1, 1000)))
	keep := snapshotBytes(t, target.f)

	corrupt := map[string][]byte{
		"empty":         {},
		"bad magic":     append([]byte("XXXXXXXX"), good[8:]...),
		"trailing data": append(append([]byte(nil), good...), 0),
		"garbage record": func() []byte {
			b := append([]byte(nil), good[:headerLen]...)
			return append(b, 3, 0xff, 0xff, 0xff)
		}(),
	}
	{
		b := append([]byte(nil), good...)
		binary.BigEndian.PutUint32(b[8:], snapshotVersion+1)
		corrupt["newer version"] = b
	}
	{
		b := append([]byte(nil), good...)
		binary.BigEndian.PutUint64(b[20:], binary.BigEndian.Uint64(b[20:])+1)
		corrupt["count too high"] = b
	}
	{
		// The first record twice (count adjusted): duplicate id.
		first := good[headerLen:]
		n, k := binary.Uvarint(first)
		rec := first[:k+int(n)]
		b := append([]byte(nil), good[:headerLen]...)
		binary.BigEndian.PutUint64(b[20:], 2)
		corrupt["duplicate id"] = append(append(b, rec...), rec...)
	}
	corrupt["record without tenant"] = snapshotOf(t, &fsmpb.Request{Id: "a"})
	// Out of id order, the repeat is found by a lookup rather than by
	// its place in the order.
	corrupt["duplicate id out of order"] = snapshotOf(t,
		&fsmpb.Request{Id: "a", Tenant: "t1"}, &fsmpb.Request{Id: "c", Tenant: "t1"}, &fsmpb.Request{Id: "a", Tenant: "t1"})
	corrupt["duplicate idempotency key"] = snapshotOf(t,
		&fsmpb.Request{Id: "a", Tenant: "t1", IdempotencyKey: "k"},
		&fsmpb.Request{Id: "b", Tenant: "t1", IdempotencyKey: "k"})
	// Every truncation, including at record boundaries.
	for i := 0; i < len(good); i += 1 + i/50 {
		corrupt["truncated at "+strconv.Itoa(i)] = good[:i]
	}
	for name, data := range corrupt {
		if err := target.f.Restore(readCloser(data)); err == nil {
			t.Errorf("%s: Restore succeeded", name)
		} else if !strings.HasPrefix(err.Error(), "fsm: restoring snapshot: ") {
			t.Errorf("%s: error %q", name, err)
		}
	}
	if after := snapshotBytes(t, target.f); !bytes.Equal(after, keep) || target.f.AppliedIndex() != 1 {
		t.Fatal("failed Restore changed the state")
	}
}

// TestRestoreOutOfOrder: a snapshot whose records are not in id order (a
// writer other than Persist) restores to the same state, every index
// included, as the same records in order.
func TestRestoreOutOfOrder(t *testing.T) {
	h := richState(t)
	var recs []*fsmpb.Request
	h.f.view().byID.Ascend(func(it idItem) bool {
		recs = append(recs, it.record())
		return true
	})
	if len(recs) < 3 {
		t.Fatalf("rich state holds %d records", len(recs))
	}
	ref, f := New(), New()
	if err := ref.Restore(readCloser(snapshotOf(t, recs...))); err != nil {
		t.Fatal(err)
	}
	backward := slices.Clone(recs)
	slices.Reverse(backward)
	if err := f.Restore(readCloser(snapshotOf(t, backward...))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, f), snapshotBytes(t, ref)) || f.Count() != len(recs) {
		t.Fatalf("restored %d records, not as in order", f.Count())
	}
	ids := func(rs []*fsmpb.Request) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Id)
		}
		return out
	}
	for _, tenant := range []string{"t1", "t2"} {
		for st := range fsmpb.State_name {
			state := fsmpb.State(st)
			q := ListQuery{Tenant: tenant, State: state, Limit: 3}
			if got, want := ids(listAll(t, f, q)), ids(listAll(t, ref, q)); !slices.Equal(got, want) {
				t.Errorf("%s %s: List %v, want %v", tenant, state, got, want)
			}
			if got, want := f.Profiles(tenant, state), ref.Profiles(tenant, state); !maps.Equal(got, want) {
				t.Errorf("%s %s: Profiles %v, want %v", tenant, state, got, want)
			}
			for _, p := range []string{"p1", "p2"} {
				if got, want := ids(f.Due(tenant, p, state, 100)), ids(ref.Due(tenant, p, state, 100)); !slices.Equal(got, want) {
					t.Errorf("%s %s %s: Due %v, want %v", tenant, p, state, got, want)
				}
			}
		}
	}
	if got, want := ids(f.Expired(t0+1<<40, 100)), ids(ref.Expired(t0+1<<40, 100)); !slices.Equal(got, want) || len(want) == 0 {
		t.Errorf("Expired %v, want %v", got, want)
	}
}

// genLog generates n command entries, using a reference FSM to pick current
// call ids, and returns them with that FSM's results.
func genLog(t testing.TB, seed uint64, n int) (logs []*raft.Log, results []*fsmpb.ApplyResult, ref *FSM) {
	ref = New()
	g := &gen{src: randSource{rand.New(rand.NewPCG(seed, seed))}, now: t0, lookup: ref.Get}
	for i := 1; i <= n; i++ {
		cmd := g.command()
		l := &raft.Log{Index: uint64(i), Type: raft.LogCommand, Data: encode(t, cmd)}
		res := ref.Apply(l).(*fsmpb.ApplyResult)
		if len(res.Items) != itemCount(cmd) {
			t.Fatalf("entry %d: %d results for %d items", i, len(res.Items), itemCount(cmd))
		}
		logs = append(logs, l)
		results = append(results, res)
	}
	return logs, results, ref
}

func TestReplayDeterminism(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		logs, results, ref := genLog(t, seed, 3000)
		checkInvariants(t, ref)
		want := snapshotBytes(t, ref)
		if ref.Count() == 0 {
			t.Fatalf("seed %d: generator left no records", seed)
		}

		// Same log one by one.
		one := New()
		for i, l := range logs {
			if res := one.Apply(l).(*fsmpb.ApplyResult); !proto.Equal(res, results[i]) {
				t.Fatalf("seed %d entry %d: result %v, want %v", seed, l.Index, res, results[i])
			}
		}
		if got := snapshotBytes(t, one); !bytes.Equal(got, want) {
			t.Fatalf("seed %d: replay gives a different snapshot", seed)
		}

		// Same log in batches of varying size.
		batched := New()
		rng := rand.New(rand.NewPCG(seed, 99))
		for i := 0; i < len(logs); {
			j := min(len(logs), i+1+rng.IntN(64))
			for k, res := range batched.ApplyBatch(logs[i:j]) {
				if !proto.Equal(res.(*fsmpb.ApplyResult), results[i+k]) {
					t.Fatalf("seed %d entry %d: batched result differs", seed, i+k+1)
				}
			}
			i = j
		}
		if got := snapshotBytes(t, batched); !bytes.Equal(got, want) {
			t.Fatalf("seed %d: ApplyBatch gives a different snapshot", seed)
		}

		// Restore mid-way and replay the rest.
		mid := New()
		for _, l := range logs[:1500] {
			mid.Apply(l)
		}
		restored := New()
		if err := restored.Restore(readCloser(snapshotBytes(t, mid))); err != nil {
			t.Fatal(err)
		}
		for _, l := range logs[1500:] {
			restored.Apply(l)
		}
		if got := snapshotBytes(t, restored); !bytes.Equal(got, want) {
			t.Fatalf("seed %d: snapshot+replay gives a different snapshot", seed)
		}
	}
}

// checkInvariants verifies properties every reachable state has.
func checkInvariants(t testing.TB, f *FSM) {
	t.Helper()
	checkSettingsInvariants(t, f)
	all := allRecords(t, f, "t0", "t1")
	if len(all) != f.Count() {
		t.Fatalf("List finds %d records, Count() = %d", len(all), f.Count())
	}
	perState := map[string]map[fsmpb.State]map[string]int{}
	for _, r := range all {
		if r.State < fsmpb.State_PENDING || r.State > fsmpb.State_PROCESSED {
			t.Fatalf("%s: invalid state %s", r.Id, r.State)
		}
		if r.AttemptsMade > r.MaxAttempts {
			t.Fatalf("%s: %d attempts made of %d", r.Id, r.AttemptsMade, r.MaxAttempts)
		}
		if int(r.AttemptsMade) > len(r.Attempts) {
			t.Fatalf("%s: %d attempts made but %d in history", r.Id, r.AttemptsMade, len(r.Attempts))
		}
		finished := r.State == fsmpb.State_PROCESSED
		if finished != (r.Result != fsmpb.Result_RESULT_UNSPECIFIED) || finished != r.DeleteFlag ||
			finished == (r.NotifyState == fsmpb.NotifyState_NOTIFY_NONE) {
			t.Fatalf("%s: state %s result %s delete %v notify %s", r.Id, r.State, r.Result, r.DeleteFlag, r.NotifyState)
		}
		if r.State == fsmpb.State_IN_PROGRESS && (len(r.Attempts) == 0 || r.Attempts[len(r.Attempts)-1].CallUuid != r.LastCallUuid) {
			t.Fatalf("%s: in progress without a current attempt", r.Id)
		}
		if got, ok := f.Get(r.Id); !ok || !proto.Equal(got, r) {
			t.Fatalf("%s: Get disagrees with List", r.Id)
		}
		if st, ok := f.StateOf(r.Id); !ok || st != r.State {
			t.Fatalf("%s: StateOf = %s, %v; the record is %s", r.Id, st, ok, r.State)
		}
		if perState[r.Tenant] == nil {
			perState[r.Tenant] = map[fsmpb.State]map[string]int{}
		}
		if perState[r.Tenant][r.State] == nil {
			perState[r.Tenant][r.State] = map[string]int{}
		}
		perState[r.Tenant][r.State][r.IvrProfile]++
	}
	for _, tenant := range []string{"t0", "t1"} {
		for _, state := range []fsmpb.State{1, 2, 3, 4} {
			got, want := f.Profiles(tenant, state), perState[tenant][state]
			if len(got) != len(want) {
				t.Fatalf("Profiles(%s,%s) = %v, want %v", tenant, state, got, want)
			}
			for p, n := range want {
				if got[p] != n {
					t.Fatalf("Profiles(%s,%s) = %v, want %v", tenant, state, got, want)
				}
				// Only waiting records are in the dialer's queue.
				if state == fsmpb.State_IN_PROGRESS || state == fsmpb.State_PROCESSED {
					n = 0
				}
				if due := f.Due(tenant, p, state, 1000); len(due) != n {
					t.Fatalf("Due(%s,%s,%s) returns %d, want %d", tenant, p, state, len(due), n)
				}
			}
		}
	}
}

// snapshotOf encodes records as a version-1 snapshot stream (records only,
// the format before settings), valid or not.
func snapshotOf(t *testing.T, recs ...*fsmpb.Request) []byte {
	t.Helper()
	b := []byte(snapshotMagic)
	b = binary.BigEndian.AppendUint32(b, snapshotV1)
	b = binary.BigEndian.AppendUint64(b, 7)
	b = binary.BigEndian.AppendUint64(b, uint64(len(recs)))
	for _, r := range recs {
		m, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b = append(binary.AppendUvarint(b, uint64(len(m))), m...)
	}
	return b
}

func TestRestoreHandBuilt(t *testing.T) {
	f := New()
	if err := f.Restore(readCloser(snapshotOf(t,
		&fsmpb.Request{Id: "a", Tenant: "t1", IvrProfile: "p", State: fsmpb.State_PENDING, IdempotencyKey: "k"},
		&fsmpb.Request{Id: "b", Tenant: "t2", IvrProfile: "p", State: fsmpb.State_PENDING, IdempotencyKey: "k"},
	))); err != nil {
		t.Fatal(err)
	}
	if f.AppliedIndex() != 7 || f.Count() != 2 || f.Profiles("t1", fsmpb.State_PENDING)["p"] != 1 {
		t.Fatalf("index %d count %d profiles %v", f.AppliedIndex(), f.Count(), f.Profiles("t1", fsmpb.State_PENDING))
	}
	if err := f.Restore(readCloser(snapshotOf(t))); err != nil || f.Count() != 0 || f.AppliedIndex() != 7 {
		t.Fatalf("empty snapshot: err %v count %d", err, f.Count())
	}
}
