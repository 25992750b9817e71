package fsm

import (
	"bytes"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestSpecFields checks decodeSpec's field numbers against fsm.proto, and
// that it reads every spec field newRecord keeps.
func TestSpecFields(t *testing.T) {
	want := map[protowire.Number]struct {
		name string
		kind protoreflect.Kind
		list bool
	}{
		specID: {"id", protoreflect.StringKind, false}, specTenant: {"tenant", protoreflect.StringKind, false},
		specToken: {"token", protoreflect.StringKind, false}, specProfile: {"ivr_profile", protoreflect.StringKind, false},
		specTelnum: {"telnum", protoreflect.StringKind, false}, specAni: {"ani", protoreflect.StringKind, false},
		specNotificationURL: {"notification_url", protoreflect.StringKind, false},
		specCustomData:      {"custom_data", protoreflect.MessageKind, true}, specCpd: {"cpd", protoreflect.MessageKind, false},
		specMaxAttempts: {"max_attempts", protoreflect.Uint32Kind, false}, specTTL: {"ttl_ms", protoreflect.Int64Kind, false},
		specKey: {"idempotency_key", protoreflect.StringKind, false}, specFingerprint: {"fingerprint", protoreflect.BytesKind, false},
		specTimeZone: {"time_zone", protoreflect.StringKind, false},
	}
	for num, w := range want {
		fd := requestDesc.Fields().ByNumber(num)
		if fd == nil || string(fd.Name()) != w.name || fd.Kind() != w.kind || fd.IsList() != w.list {
			t.Errorf("Request field %d: %v, want %s (%s, list %v)", num, fd, w.name, w.kind, w.list)
		}
	}
	// A record with every spec field set reads back as newRecord stores it.
	spec := newReq("id-1", "t", "p", 3, 1000)
	spec.TimeZone, spec.IdempotencyKey = "Europe/Berlin", "k"
	spec.CustomData = []*fsmpb.KeyValue{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}}
	rec, post := true, int64(9000)
	spec.Cpd = &fsmpb.Cpd{Record: &rec, PostConnectTimeoutMs: &post, Detect: "machine"}
	spec.State, spec.AttemptsMade = fsmpb.State_IN_PROGRESS, 2 // dropped
	raw, err := proto.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeSpec(raw)
	if err != nil {
		t.Fatal(err)
	}
	setNew(got, t0, 7)
	if want := newRecord(spec, t0, 7); !proto.Equal(got, want) {
		t.Fatalf("decodeSpec + setNew:\n%v\nnewRecord:\n%v", got, want)
	}
}

// TestFreshMergedRequest: a request encoded as two concatenated messages
// is read in place, and stored as a decode merges it.
func TestFreshMergedRequest(t *testing.T) {
	a := newReq("id-1", "t1", "p", 3, 60_000)
	a.CustomData = []*fsmpb.KeyValue{{Key: "a", Value: "1"}}
	yes := true
	a.Cpd = &fsmpb.Cpd{Preconnect: &yes}
	b := &fsmpb.Request{Tenant: "t2", TtlMs: 5, CustomData: []*fsmpb.KeyValue{{Key: "b"}}, Cpd: &fsmpb.Cpd{Detect: "human"}}
	one, _ := proto.Marshal(a)
	two, _ := proto.Marshal(b)
	body := protowire.AppendTag(nil, createRequestsField, protowire.BytesType)
	body = protowire.AppendBytes(body, append(one, two...))
	entry := protowire.AppendTag(nil, versionField, protowire.VarintType)
	entry = protowire.AppendVarint(entry, CommandVersion)
	entry = protowire.AppendTag(entry, nowField, protowire.VarintType)
	entry = protowire.AppendVarint(entry, uint64(t0))
	entry = protowire.AppendTag(entry, createBodyField, protowire.BytesType)
	entry = protowire.AppendBytes(entry, body)
	if _, ok := viewCreate(&raft.Log{Data: entry}); !ok {
		t.Fatal("not read in place")
	}
	f := New()
	if res := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: entry}).(*fsmpb.ApplyResult); res.Items[0].Code != fsmpb.Code_CODE_OK {
		t.Fatal(res)
	}
	got, ok := f.Get("id-1")
	if !ok {
		t.Fatal("not stored")
	}
	merged := proto.Clone(a).(*fsmpb.Request)
	proto.Merge(merged, b)
	if want := newRecord(merged, t0, 1); !proto.Equal(got, want) {
		t.Fatalf("stored\n%v\nwant\n%v", got, want)
	}
	if got.Tenant != "t2" || got.TtlMs != 5 || len(got.CustomData) != 2 || !got.Cpd.GetPreconnect() || got.Cpd.GetDetect() != "human" {
		t.Fatalf("not merged: %v", got)
	}
	if n := f.Count(); n != 1 {
		t.Fatalf("%d records", n)
	}
}

// TestRestoreFresh: a snapshot's records that are as their create stored
// them are restored fresh, the others decoded, and every record reads back
// as it was.
func TestRestoreFresh(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, create(newReq("a", "t1", "p1", 3, 60_000), withKey(newReq("b", "t1", "p1", 3, 60_000), "kb"), newReq("c", "t2", "p2", 1, 1000)))
	h.mustOK(t0+1, claim("c"))
	want := map[string]*fsmpb.Request{}
	for _, id := range []string{"a", "b", "c"} {
		want[id] = h.get(id)
	}
	g := New()
	if err := g.Restore(readCloser(snapshotBytes(t, h.f))); err != nil {
		t.Fatal(err)
	}
	fresh := map[string]bool{}
	g.w.byID.Ascend(func(it idItem) bool {
		fresh[it.id] = it.f != nil
		return true
	})
	if !fresh["a"] || !fresh["b"] || fresh["c"] {
		t.Fatalf("restored fresh: %v, want a and b", fresh)
	}
	for id, w := range want {
		if got, ok := g.Get(id); !ok || !proto.Equal(got, w) {
			t.Fatalf("%s restored as %v, want %v", id, got, w)
		}
	}
	// The snapshot round trip is exact, and the key is indexed: the same
	// request under its key again answers with the restored record's id.
	if !bytes.Equal(snapshotBytes(t, g), snapshotBytes(t, h.f)) {
		t.Fatal("the restored state's snapshot differs")
	}
	res := g.Apply(&raft.Log{Index: g.AppliedIndex() + 1, Type: raft.LogCommand, Data: encode(t, create(withKey(newReq("b2", "t1", "p1", 3, 60_000), "kb")))})
	if it := res.(*fsmpb.ApplyResult).Items[0]; it.Code != fsmpb.Code_CODE_DUPLICATE || it.Id != "b" {
		t.Fatalf("key reused: %v", it)
	}
}

// TestIsNew: isNew accepts a record as a create stores it and rejects it
// with any one status field changed (every field of Request that is not a
// spec field, found from the schema), so a restored record is stored fresh
// only when decoding its spec gives it back whole.
func TestIsNew(t *testing.T) {
	spec := withKey(newReq("a", "t1", "p1", 3, 60_000), "k")
	if !isNew(newRecord(spec, t0, 5)) {
		t.Fatal("a new record is not new")
	}
	specFields := map[protowire.Number]bool{specID: true, specTenant: true, specToken: true, specProfile: true,
		specTelnum: true, specAni: true, specNotificationURL: true, specCustomData: true, specCpd: true,
		specMaxAttempts: true, specTTL: true, specKey: true, specFingerprint: true, specTimeZone: true}
	fields := requestDesc.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if specFields[fd.Number()] {
			continue
		}
		r := newRecord(spec, t0, 5)
		m := r.ProtoReflect()
		switch {
		case fd.IsList():
			m.Mutable(fd).List().Append(m.Mutable(fd).List().NewElement())
		case fd.Kind() == protoreflect.MessageKind:
			m.Mutable(fd)
		case fd.Kind() == protoreflect.EnumKind:
			m.Set(fd, protoreflect.ValueOfEnum(m.Get(fd).Enum()+7))
		case fd.Kind() == protoreflect.BoolKind:
			m.Set(fd, protoreflect.ValueOfBool(!m.Get(fd).Bool()))
		case fd.Kind() == protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString(m.Get(fd).String()+"x"))
		case fd.Kind() == protoreflect.Int64Kind:
			m.Set(fd, protoreflect.ValueOfInt64(m.Get(fd).Int()+1))
		case fd.Kind() == protoreflect.Uint64Kind:
			m.Set(fd, protoreflect.ValueOfUint64(m.Get(fd).Uint()+1))
		case fd.Kind() == protoreflect.Uint32Kind:
			m.Set(fd, protoreflect.ValueOfUint32(uint32(m.Get(fd).Uint())+1))
		default:
			t.Fatalf("field %s: kind %s not covered by this test", fd.Name(), fd.Kind())
		}
		if isNew(r) {
			t.Errorf("changed %s, still new", fd.Name())
		}
	}
	r := newRecord(spec, t0, 5)
	r.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 999, protowire.VarintType), 1))
	if isNew(r) {
		t.Error("an unknown field, still new")
	}
}

// TestAppendFresh: appendFresh writes a fresh record as proto.Marshal
// (deterministic) writes the decoded record, takes the fast way for the
// forms Encode writes, and declines bytes in any other form.
func TestAppendFresh(t *testing.T) {
	yes, no, post := true, false, int64(-5)
	full := withKey(newReq("f", "t1", "p1", 3, 60_000), "k")
	full.TimeZone = "Europe/Berlin"
	full.CustomData = []*fsmpb.KeyValue{{Key: "a", Value: "1"}, {}, {Value: "v"}}
	full.Cpd = &fsmpb.Cpd{Record: &no, PostConnectTimeoutMs: &post, Preconnect: &yes, Detect: "machine"}
	bare := &fsmpb.Request{Id: "b", Tenant: "t1"}
	emptyCpd := newReq("e", "t2", "p2", 1, 1)
	emptyCpd.Cpd = &fsmpb.Cpd{}
	zeroTTL := newReq("z", "t2", "p2", 1, 0)
	for _, now := range []int64{t0, 0, -t0} {
		h := newHarness(t)
		h.mustOK(now, create(newReq("a", "t1", "p1", 3, 60_000), full, bare, emptyCpd, zeroTTL))
		// A restored record's bytes are its snapshot encoding, status
		// fields included: written as they are.
		restored := New()
		if err := restored.Restore(readCloser(snapshotBytes(t, h.f))); err != nil {
			t.Fatal(err)
		}
		for _, f := range []*FSM{h.f, restored} {
			f.w.byID.Ascend(func(it idItem) bool {
				if it.f == nil {
					t.Fatalf("%s not fresh", it.id)
				}
				want, err := proto.MarshalOptions{Deterministic: true}.Marshal(it.record())
				if err != nil {
					t.Fatal(err)
				}
				got, ok := it.f.appendFresh(nil)
				if !ok || !bytes.Equal(got, want) {
					t.Fatalf("now %d, %s (restored %v): appendFresh %v %x, want %x", now, it.id, f == restored, ok, got, want)
				}
				return true
			})
		}
	}
	// Other forms, each valid and read the same by a decode: declined.
	str := func(b []byte, num protowire.Number, v string) []byte {
		return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), v)
	}
	vint := func(b []byte, num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
	}
	msg := func(b []byte, num protowire.Number, m []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), m)
	}
	// head returns a new record's first fields each time: the cases
	// append to it.
	head0 := str(str(nil, specID, "x"), specTenant, "t")
	head := head0[:len(head0):len(head0)]
	ok := msg(vint(head, specMaxAttempts, 3), specTimeZone, []byte("UTC"))
	if _, fast := (&fresh{raw: ok}).appendFresh(nil); !fast {
		t.Fatal("the control case is declined")
	}
	for name, b := range map[string][]byte{
		"a field twice":          str(head, specTenant, "u"),
		"out of order":           str(str(nil, specTenant, "t"), specID, "x"),
		"an overlong tag":        append([]byte{0x8a, 0x00, 1, 'x'}, str(nil, specTenant, "t")...),
		"an overlong length":     append(protowire.AppendTag(nil, specID, protowire.BytesType), 0x81, 0x00, 'x'),
		"a zero value":           vint(head, specMaxAttempts, 0),
		"an empty string":        str(head, specToken, ""),
		"an overlong value":      append(protowire.AppendTag(head, specMaxAttempts, protowire.VarintType), 0x83, 0x00),
		"max attempts > 32 bits": vint(head, specMaxAttempts, 1<<32),
		"a status field not new": vint(head, statusState, 2),
		"a status field twice":   vint(vint(head, statusState, 1), statusState, 1),
		"a status field more":    vint(vint(head, statusState, 1), statusCreateIndex, 1),
		"an unknown field":       vint(head, 99, 1),
		"a Cpd bool of 2":        msg(head, specCpd, vint(nil, 4, 2)),
		"a Cpd field twice":      msg(head, specCpd, vint(vint(nil, 2, 5), 2, 6)),
		"custom data unordered":  msg(head, specCustomData, str(str(nil, 2, "v"), 1, "k")),
		"custom data empty key":  msg(head, specCustomData, str(str(nil, 1, ""), 2, "v")),
	} {
		if err := checkMessage(b, requestDesc); err != nil {
			t.Fatalf("%s: not a valid record: %v", name, err)
		}
		if _, fast := (&fresh{raw: b}).appendFresh(nil); fast {
			t.Errorf("%s: taken the fast way", name)
		}
	}
}
