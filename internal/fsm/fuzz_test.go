package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// FuzzApply turns the input into a sequence of valid commands (see gen) and
// checks after each one that the result has one item per command item and
// that the state invariants hold; at the end, that a snapshot round trip
// reproduces the state byte for byte.
func FuzzApply(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1, 3, 0, 0, 2, 1, 0, 0, 2, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1, 1, 0})
	f.Add(bytes.Repeat([]byte{7, 0, 1, 2, 3, 4, 5, 6, 7, 8}, 30))

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return // long inputs only slow the fuzzer down
		}
		fsm := New()
		// eager decodes its create entries, fsm stores fresh records:
		// both must give the same results and the same state.
		eager := New()
		eager.eagerCreates = true
		src := &sliceSource{b: data}
		g := &gen{src: src, now: t0, lookup: fsm.Get}
		for index := uint64(1); !src.done(); index++ {
			cmd := g.command()
			b, err := Encode(cmd)
			if err != nil {
				t.Fatal(err)
			}
			res := fsm.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: b}).(*fsmpb.ApplyResult)
			if len(res.Items) != itemCount(cmd) {
				t.Fatalf("entry %d: %d results for %d items", index, len(res.Items), itemCount(cmd))
			}
			if want := eager.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: b}); !proto.Equal(res, want.(*fsmpb.ApplyResult)) {
				t.Fatalf("entry %d: result %v, decoding the creates %v", index, res, want)
			}
			checkInvariants(t, fsm)
		}
		snap := snapshotBytes(t, fsm)
		if !bytes.Equal(snapshotBytes(t, eager), snap) {
			t.Fatal("the state differs from the state of decoded creates")
		}
		restored := New()
		if err := restored.Restore(readCloser(snap)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(snapshotBytes(t, restored), snap) || restored.AppliedIndex() != fsm.AppliedIndex() {
			t.Fatal("snapshot round trip changed the state")
		}
	})
}

// FuzzCreateEntry applies any bytes as a log entry after a create, both
// as a replica does (fresh records for a create entry it can read in
// place) and decoding every create: whenever the entry is read in place,
// it must decode, and both replicas must answer alike and hold the same
// state, record for record.
func FuzzCreateEntry(f *testing.F) {
	seed := func(cmd *fsmpb.Command) {
		b, err := EncodeAt(cmd, t0)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(create(newReq("id-1", "t1", "p", 3, 60_000), withKey(newReq("id-2", "t1", "p", 1, 1000), "k1")))
	seed(createMax(2, newReq("id-3", "t2", "q", 2, 5000), newReq("id-1", "t1", "p", 3, 60_000), newReq("", "t1", "p", 3, 1)))
	seed(create(withKey(newReq("id-4", "t1", "p", 3, 60_000), "k0"), newReq("id-5", "", "p", 1, 1)))
	seed(claim("id-0"))
	full := withKey(newReq("id-6", "t1", "p", 3, 60_000), "k6")
	full.TimeZone = "Europe/Berlin"
	full.CustomData = []*fsmpb.KeyValue{{Key: "a", Value: "1"}, {Key: "b"}}
	detect := true
	full.Cpd = &fsmpb.Cpd{Preconnect: &detect, Detect: "machine"}
	seed(create(full))
	// One request encoded as two concatenated messages (the last string
	// and ttl count, the custom data pairs add up and the Cpd messages
	// merge), in a second create body, which merges with the first.
	other := &fsmpb.Request{Id: "id-7", Tenant: "t2", TtlMs: 5, CustomData: []*fsmpb.KeyValue{{Key: "c"}}, Cpd: &fsmpb.Cpd{Detect: "human"}}
	one, _ := proto.Marshal(full)
	two, _ := proto.Marshal(other)
	body := protowire.AppendTag(nil, createRequestsField, protowire.BytesType)
	body = protowire.AppendBytes(body, append(one, two...))
	first, _ := EncodeAt(create(newReq("id-8", "t1", "p", 1, 1)), t0)
	entry := protowire.AppendTag(first, createBodyField, protowire.BytesType)
	f.Add(protowire.AppendBytes(entry, body))

	f.Fuzz(func(t *testing.T, entry []byte) {
		if len(entry) > 4096 {
			return
		}
		first := encode(t, create(newReq("id-0", "t1", "p", 3, 60_000), withKey(newReq("id-9", "t1", "p", 3, 60_000), "k0")))
		_, inPlace := viewCreate(&raft.Log{Data: entry})
		decodes := func() (ok bool) {
			defer func() {
				if recover() != nil {
					ok = false
				}
			}()
			decode(&raft.Log{Data: entry})
			return true
		}()
		if inPlace && !decodes {
			t.Fatalf("read in place but does not decode: %x", entry)
		}
		if !decodes {
			return
		}
		var results [2]any
		var snaps [2][]byte
		for i, eager := range []bool{false, true} {
			m := New()
			m.eagerCreates = eager
			m.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: first})
			results[i] = m.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: entry})
			snaps[i] = snapshotBytes(t, m)
		}
		a, _ := results[0].(*fsmpb.ApplyResult)
		b, _ := results[1].(*fsmpb.ApplyResult)
		if (a == nil) != (b == nil) || !proto.Equal(a, b) {
			t.Fatalf("results differ: %v, decoding %v", a, b)
		}
		if !bytes.Equal(snaps[0], snaps[1]) {
			t.Fatal("states differ")
		}
	})
}

// FuzzRestoreRecord restores a snapshot that holds one record of any
// bytes. Whether the restore keeps it as it is (a fresh record, see
// restoreRecord) or decodes it, the restore fails exactly when the bytes do not decode to a record
// with an id and a tenant, and otherwise holds the decoded record, in
// every index, and writes the same bytes in its next snapshot as a store
// that holds it.
func FuzzRestoreRecord(f *testing.F) {
	yes := true
	full := withKey(newReq("f", "t1", "p1", 3, 60_000), "k")
	full.TimeZone = "Europe/Berlin"
	full.CustomData = []*fsmpb.KeyValue{{Key: "a", Value: "1"}}
	full.Cpd = &fsmpb.Cpd{Preconnect: &yes, Detect: "machine"}
	h := newHarness(f)
	h.mustOK(t0, create(newReq("a", "t0", "p1", 3, 60_000), full, newReq("c", "t1", "p2", 2, 1000)))
	h.mustOK(t0+5, claim("c"))
	h.f.w.byID.Ascend(func(it idItem) bool {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(it.record())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		return true
	})
	empty := snapshotBytes(f, New())
	f.Fuzz(func(t *testing.T, rec []byte) {
		if len(rec) > 4096 {
			return
		}
		// The empty store's snapshot with rec as its one record.
		snap := append([]byte(nil), empty[:headerLen-8]...)
		snap = binary.BigEndian.AppendUint64(snap, 1)
		snap = binary.AppendUvarint(snap, uint64(len(rec)))
		snap = append(append(snap, rec...), empty[headerLen:]...)
		g := New()
		err := g.Restore(readCloser(snap))
		r := &fsmpb.Request{}
		if uerr := proto.Unmarshal(rec, r); uerr != nil || r.Id == "" || r.Tenant == "" {
			if err == nil {
				t.Fatalf("restored a record that does not decode or has no id or tenant (%v)", uerr)
			}
			return
		}
		if err != nil {
			t.Fatalf("restore refused a record that decodes: %v", err)
		}
		got, ok := g.Get(r.Id)
		if !ok || !proto.Equal(got, r) {
			t.Fatalf("restored %v, the bytes decode to %v", got, r)
		}
		if st, ok := g.StateOf(r.Id); !ok || st != r.State || g.Count() != 1 {
			t.Fatalf("StateOf = %s %v, Count = %d", st, ok, g.Count())
		}
		// A store that inserted the decoded record writes the same snapshot.
		st := newState()
		st.insert(r)
		want := New()
		want.w = st
		want.cur.Store(st.clone())
		want.count.Store(int64(st.count()))
		if !bytes.Equal(snapshotBytes(t, want), snapshotBytes(t, g)) {
			t.Fatal("the restored store's snapshot differs from the decoded record's")
		}
		if a, b := indexDump(g.w), indexDump(st); a != b {
			t.Fatalf("restored indexes\n%s\nthe decoded record's\n%s", a, b)
		}
	})
}

// indexDump lists every index item of st but the records themselves, with
// their groups' strings.
func indexDump(st *state) string {
	var b strings.Builder
	st.tenantProfileState.Ascend(func(it tenantProfileStateItem) bool {
		fmt.Fprintf(&b, "tps %s/%s %s %s\n", it.g.tenant, it.g.profile, it.state, it.id)
		return true
	})
	st.idem.Ascend(func(it idemItem) bool {
		fmt.Fprintf(&b, "idem %s %s %s\n", it.tenant, it.key, it.id)
		return true
	})
	st.queue.Ascend(func(it queueItem) bool {
		fmt.Fprintf(&b, "queue %s/%s %s %d %d %d %s\n", it.g.tenant, it.g.profile, it.state, it.attempts, it.nextRetry, it.expires, it.id)
		return true
	})
	st.counts.Ascend(func(it countItem) bool {
		fmt.Fprintf(&b, "count %s %s %s %d\n", it.tenant, it.state, it.profile, it.n)
		return true
	})
	st.expiry.Ascend(func(it expiryItem) bool {
		fmt.Fprintf(&b, "expiry %d %s\n", it.expires, it.id)
		return true
	})
	st.byID.Ascend(func(it idItem) bool {
		fmt.Fprintf(&b, "id %s\n", it.id)
		return true
	})
	return b.String()
}

// insert adds r, which must not be stored yet (no record with its id or its
// idempotency key), to every index, the plain way: FuzzRestoreRecord's
// reference for what a restore stores. It may replace r's tenant and
// profile with equal strings (see group).
func (s *state) insert(r *fsmpb.Request) {
	g := s.group(r.Tenant, r.IvrProfile, r.State)
	r.Tenant, r.IvrProfile = g.tenant, g.profile
	s.byID.ReplaceOrInsert(idItem{id: r.Id, r: r})
	if r.IdempotencyKey != "" {
		s.idem.ReplaceOrInsert(idemItem{tenant: r.Tenant, key: r.IdempotencyKey, id: r.Id})
	}
	s.insertKeys(queueKey(r, g), waiting(r))
}
