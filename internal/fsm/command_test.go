package fsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// rawEntry marshals cmd as it is, bypassing Encode: entries a newer (or
// broken) binary could have written.
func rawEntry(t testing.TB, cmd *fsmpb.Command) []byte {
	t.Helper()
	b, err := proto.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unknownBodyEntry is an entry a newer binary wrote with a body type this
// one does not know (oneof field 99), flagged ignore-unknown or not.
func unknownBodyEntry(t testing.TB, ignorable bool) []byte {
	t.Helper()
	b := rawEntry(t, &fsmpb.Command{Version: CommandVersion, NowUnixMs: t0, IgnoreUnknown: ignorable})
	b = protowire.AppendTag(b, 99, protowire.BytesType)
	return protowire.AppendBytes(b, []byte{0x0a, 0x01, 'x'})
}

// bodies returns a command with each body of the Command oneof, so tests
// cover bodies added later without being told.
func bodies(t testing.TB) []*fsmpb.Command {
	t.Helper()
	oneof := (&fsmpb.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("body")
	if oneof == nil {
		t.Fatal("Command has no oneof body")
	}
	var out []*fsmpb.Command
	for i := range oneof.Fields().Len() {
		fd := oneof.Fields().Get(i)
		cmd := &fsmpb.Command{}
		m := cmd.ProtoReflect()
		m.Set(fd, protoreflect.ValueOfMessage(m.NewField(fd).Message()))
		out = append(out, cmd)
	}
	return out
}

// requestBodies are the bodies that change request records, or that
// Apply reads when it changes them (suppression lists): a replica must
// never skip one.
var requestBodies = map[string]bool{
	"create": true, "cancel": true, "claim": true, "start_attempts": true,
	"batch_start_attempts": true, "batch_record_results": true,
	"record_results": true, "mark_notified": true, "purge": true,
	"requeue": true, "expire": true, "defer": true, "end": true,
	"add_suppressions": true, "remove_suppressions": true,
	"freq_set_cap": true, "freq_delete_cap": true,
	"dialog_updates": true,
}

func bodyName(cmd *fsmpb.Command) string {
	m := cmd.ProtoReflect()
	return string(m.WhichOneof(m.Descriptor().Oneofs().ByName("body")).Name())
}

// TestBodyKinds: every body of the oneof is known to Encode and decode, and
// only settings are flagged ignore-unknown.
func TestBodyKinds(t *testing.T) {
	cmds := bodies(t)
	if len(cmds) < 15 {
		t.Fatalf("only %d bodies found", len(cmds))
	}
	for _, cmd := range cmds {
		name := bodyName(cmd)
		t.Run(name, func(t *testing.T) {
			b, err := EncodeAt(cmd, t0)
			if err != nil {
				t.Fatalf("Encode: %v (a new body needs a kind in bodyKind)", err)
			}
			got := &fsmpb.Command{}
			if err := proto.Unmarshal(b, got); err != nil {
				t.Fatal(err)
			}
			if got.Version != CommandVersion || got.NowUnixMs != t0 {
				t.Errorf("entry version %d at %d, want %d at %d", got.Version, got.NowUnixMs, CommandVersion, t0)
			}
			if want := !requestBodies[name]; got.IgnoreUnknown != want {
				t.Errorf("ignore_unknown = %v, want %v", got.IgnoreUnknown, want)
			}
			dec, skip := decode(&raft.Log{Index: 1, Type: raft.LogCommand, Data: b})
			if skip || bodyName(dec) != name {
				t.Errorf("decode: skip %v, body %q", skip, bodyName(dec))
			}
		})
	}
}

func TestEncode(t *testing.T) {
	claimBody := &fsmpb.Command_Claim{Claim: &fsmpb.ClaimRequests{Ids: []string{"a"}}}
	withUnknown := func(cmd *fsmpb.Command, field protowire.Number) *fsmpb.Command {
		b := protowire.AppendTag(nil, field, protowire.VarintType)
		cmd.ProtoReflect().SetUnknown(protowire.AppendVarint(b, 1))
		return cmd
	}
	tests := []struct {
		name string
		cmd  *fsmpb.Command
		want error
	}{
		{"unstamped", &fsmpb.Command{Body: claimBody}, nil},
		{"current version", &fsmpb.Command{Version: CommandVersion, Body: claimBody}, nil},
		// The caller's flag is not trusted: a request body is never
		// skippable.
		{"caller's flag", &fsmpb.Command{IgnoreUnknown: true, Body: claimBody}, nil},
		{"bumped version", &fsmpb.Command{Version: CommandVersion + 1, Body: claimBody}, ErrCommandVersion},
		{"no body", &fsmpb.Command{}, ErrUnknownCommand},
		{"unknown body", withUnknown(&fsmpb.Command{}, 99), ErrUnknownCommand},
		{"unknown envelope field", withUnknown(&fsmpb.Command{Body: claimBody}, 9), ErrUnknownCommand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := proto.Clone(tc.cmd)
			b, err := EncodeAt(tc.cmd, 42)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if !proto.Equal(before, tc.cmd) {
				t.Errorf("Encode modified its argument: %v, was %v", tc.cmd, before)
			}
			if err != nil {
				return
			}
			got := &fsmpb.Command{}
			if err := proto.Unmarshal(b, got); err != nil {
				t.Fatal(err)
			}
			want := &fsmpb.Command{Version: CommandVersion, NowUnixMs: 42, Body: claimBody}
			if !proto.Equal(got, want) {
				t.Errorf("entry %v, want %v", got, want)
			}
		})
	}
}

// TestSkipUnknownIgnorable: a follower whose binary does not know a body
// skips the entry when it is flagged ignore-unknown, without state change,
// and stops (panics) on one that is not flagged (TestPanics).
func TestSkipUnknownIgnorable(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, create(newReq("a", "t1", "p1", 1, 1000)))
	h.mustOK(t0, setPac(&fsmpb.Pacing{Tenant: "t1", Caps: 5}))
	before := snapshotBytes(t, h.f)

	res := h.f.ApplyBatch([]*raft.Log{
		{Index: 3, Type: raft.LogCommand, Data: unknownBodyEntry(t, true)},
		cmdLog(t, 4, t0, claim("a")),
	})
	if res[0] != nil {
		t.Errorf("skipped entry answered %v, want nil", res[0])
	}
	if got := res[1].(*fsmpb.ApplyResult).Items[0]; got.Code != fsmpb.Code_CODE_OK {
		t.Errorf("entry after the skipped one: %v", got)
	}
	if h.f.AppliedIndex() != 4 || h.f.Skipped() != 1 {
		t.Fatalf("applied %d, skipped %d; want 4, 1", h.f.AppliedIndex(), h.f.Skipped())
	}

	// Only the claim changed the state: a replica that knows nothing of
	// the skipped entry's body holds exactly this.
	ref := newHarness(t)
	ref.mustOK(t0, create(newReq("a", "t1", "p1", 1, 1000)))
	ref.mustOK(t0, setPac(&fsmpb.Pacing{Tenant: "t1", Caps: 5}))
	ref.f.Apply(cmdLog(t, 4, t0, claim("a")))
	after := snapshotBytes(t, h.f)
	if !bytes.Equal(after, snapshotBytes(t, ref.f)) {
		t.Error("state after skipping differs from the state without the entry")
	}
	if bytes.Equal(after, before) {
		t.Error("the test's claim did not change the state")
	}

	// The same entry unflagged stops the replica, changing nothing.
	func() {
		defer func() {
			if r, _ := recover().(string); !strings.Contains(r, "unknown or missing body") {
				t.Errorf("unflagged unknown body: panic %q", r)
			}
		}()
		h.f.Apply(&raft.Log{Index: 5, Type: raft.LogCommand, Data: unknownBodyEntry(t, false)})
	}()
	if !bytes.Equal(snapshotBytes(t, h.f), after) || h.f.Skipped() != 1 {
		t.Error("a refused entry changed the state")
	}
}

// FuzzDecode: any bytes as a log entry are applied, skipped, or refused
// with decode's own panic, and a refused entry changes nothing.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add(encode(f, claim("a")))
	f.Add(unknownBodyEntry(f, true))
	f.Add(unknownBodyEntry(f, false))
	f.Add(rawEntry(f, &fsmpb.Command{Version: CommandVersion + 1, Body: &fsmpb.Command_Claim{Claim: &fsmpb.ClaimRequests{}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := newHarness(t)
		h.mustOK(t0, create(newReq("a", "t1", "p1", 1, 1000)))
		before := snapshotBytes(t, h.f)
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			if s, _ := r.(string); !strings.HasPrefix(s, "fsm: log entry 2 ") {
				t.Fatalf("not decode's refusal: %v", r)
			}
			if !bytes.Equal(snapshotBytes(t, h.f), before) {
				t.Fatal("a refused entry changed the state")
			}
		}()
		h.f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: data})
	})
}

// TestFieldTables: checkMessage's field tables answer as Fields().ByNumber
// for every number of every message of fsm.proto, and cover them all.
func TestFieldTables(t *testing.T) {
	var walk func(ms protoreflect.MessageDescriptors)
	n := 0
	walk = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			md := ms.Get(i)
			byNum, ok := fieldTables[md]
			if !ok {
				t.Errorf("%s has no table", md.FullName())
			}
			for num := protowire.Number(0); num < 300; num++ {
				if got, want := fieldByNumber(md, byNum, ok, num), md.Fields().ByNumber(num); got != want {
					t.Fatalf("%s field %d: %v, ByNumber %v", md.FullName(), num, got, want)
				}
			}
			n++
			walk(md.Messages())
		}
	}
	walk(fsmpb.File_fsm_proto.Messages())
	if n < 10 || len(fieldTables) != n {
		t.Fatalf("%d messages walked, %d tables", n, len(fieldTables))
	}
}

// BenchmarkCheckRequest is the schema check every replica makes of each
// bulk-created record (readSpec).
func BenchmarkCheckRequest(b *testing.B) {
	r := withKey(newReq("0190a8c4-000000-0001", "tenant-1", "profile-1", 3, 3_600_000), "key-1")
	r.CustomData = []*fsmpb.KeyValue{{Key: "account", Value: "12345"}}
	raw, err := proto.Marshal(r)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := checkMessage(raw, requestDesc); err != nil {
			b.Fatal(err)
		}
	}
}
