package fsm

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// TestCopyRequest sets every field of a Request (found by reflection, so a
// field added to the proto later is covered too) and checks copyRequest
// copies all of them, and that the copy's Attempts is its own slice.
func TestCopyRequest(t *testing.T) {
	r := everyField()
	r.Attempts[0].CallUuid = "c"
	r.Attempts[0].ProtoReflect().SetUnknown(protoreflect.RawFields{0x98, 0x06, 0x02})

	n := copyRequest(r)
	if !proto.Equal(n, r) {
		t.Fatalf("copyRequest lost fields:\n got %v\nwant %v", n, r)
	}
	n.Attempts = append(n.Attempts, &fsmpb.Attempt{})
	n.Attempts[0] = copyAttempt(n.Attempts[0])
	if !proto.Equal(n.Attempts[0], r.Attempts[0]) {
		t.Fatalf("copyAttempt: got %v, want %v", n.Attempts[0], r.Attempts[0])
	}
	n.Attempts[0].Reason = "changed"
	if len(r.Attempts) != 1 || r.Attempts[0].Reason == "changed" {
		t.Fatal("modifying the copy changed the original")
	}
}

func nonZero(fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(1)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(fd.Number()))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(fd.Number()))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(int64(fd.Number()))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(fd.Number()))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(1)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(1)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(string(fd.Name()))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(fd.Name()))
	}
	panic("unhandled kind " + fd.Kind().String())
}

// TestCreateKeepsOnlyTheSpec sends a create whose Request has every field
// set (found by reflection, so a field added to the proto later is covered
// too) and fields this binary does not know: the stored record, which is
// the decoded request itself, keeps only the client spec and its
// fingerprint, with the status of a new record.
func TestCreateKeepsOnlyTheSpec(t *testing.T) {
	r := everyField()
	r.MaxAttempts = 3
	r.TtlMs = 60_000

	h := newHarness(t)
	if it := h.one(t0, create(r)); it.Code != fsmpb.Code_CODE_OK || it.Id != r.Id {
		t.Fatalf("create: %v", it)
	}
	want := &fsmpb.Request{
		Id: r.Id, Tenant: r.Tenant, Token: r.Token, IvrProfile: r.IvrProfile,
		Telnum: r.Telnum, Ani: r.Ani, NotificationUrl: r.NotificationUrl,
		CustomData: r.CustomData, Cpd: r.Cpd, MaxAttempts: r.MaxAttempts,
		TtlMs: r.TtlMs, IdempotencyKey: r.IdempotencyKey,
		Fingerprint: r.Fingerprint, TimeZone: r.TimeZone,

		State:         fsmpb.State_PENDING,
		CreatedUnixMs: t0, NextRetryUnixMs: t0, UpdatedUnixMs: t0,
		ExpiresUnixMs: t0 + 60_000,
		CreateIndex:   1, ModifyIndex: 1,
	}
	got := h.get(r.Id)
	if !proto.Equal(got, want) {
		t.Fatalf("stored\n%v\nwant\n%v", got, want)
	}
	if u := got.ProtoReflect().GetUnknown(); len(u) != 0 {
		t.Fatalf("stored record kept unknown fields %x", u)
	}
}

// everyField is a Request with every field set (found by reflection, so
// a field added to the proto later is covered too: lists get one element,
// messages an empty one, scalars a non-zero value) and an unknown field 99.
func everyField() *fsmpb.Request {
	r := &fsmpb.Request{}
	m := r.ProtoReflect()
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			l.Append(l.NewElement())
		case fd.Message() != nil:
			m.Mutable(fd)
		default:
			m.Set(fd, nonZero(fd))
		}
	}
	m.SetUnknown(protoreflect.RawFields{0x98, 0x06, 0x01}) // field 99 = 1
	return r
}
