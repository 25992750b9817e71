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
