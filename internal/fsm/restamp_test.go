package fsm

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// restampSlow is what the leader did before Restamp: decode the forwarded
// command and encode it again at its own time.
func restampSlow(entry []byte, now int64) ([]byte, error) {
	cmd := &fsmpb.Command{}
	if err := proto.Unmarshal(entry, cmd); err != nil {
		return nil, err
	}
	return EncodeAt(cmd, now)
}

// sameEntry fails unless a and b decode to equal commands.
func sameEntry(t testing.TB, a, b []byte) {
	t.Helper()
	ca, cb := &fsmpb.Command{}, &fsmpb.Command{}
	if err := proto.Unmarshal(a, ca); err != nil {
		t.Fatalf("restamped entry does not decode: %v", err)
	}
	if err := proto.Unmarshal(b, cb); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(ca, cb) {
		t.Fatalf("restamped entry decodes to\n%v\nwant\n%v", ca, cb)
	}
}

// TestRestampEveryBody: for every body (and a create of real records),
// Restamp gives the entry EncodeAt gives at the leader's time: the same
// body, the time replaced, the ignore-unknown flag set from the body.
func TestRestampEveryBody(t *testing.T) {
	cmds := append(bodies(t), CreateCommand([]*fsmpb.Request{
		fullRequest("019b0000-0000-7000-8000-000000000001"),
		fullRequest("019b0000-0000-7000-8000-000000000002"),
	}, 1000))
	for _, cmd := range cmds {
		t.Run(bodyName(cmd), func(t *testing.T) {
			forwarded, err := EncodeAt(cmd, 0) // as the follower encodes it
			if err != nil {
				t.Fatal(err)
			}
			got, err := Restamp(forwarded, t0+5)
			if err != nil {
				t.Fatal(err)
			}
			want, err := EncodeAt(cmd, t0+5)
			if err != nil {
				t.Fatal(err)
			}
			sameEntry(t, got, want)
			// A second stamp replaces the first.
			again, err := Restamp(got, t0+9)
			if err != nil {
				t.Fatal(err)
			}
			want, _ = EncodeAt(cmd, t0+9)
			sameEntry(t, again, want)
			// What Apply reads: decode accepts it, at the new time.
			dec, skip := decode(&raft.Log{Index: 1, Data: again})
			if skip || dec.GetNowUnixMs() != t0+9 {
				t.Fatalf("decode: skip %v, now %d", skip, dec.GetNowUnixMs())
			}
		})
	}
}

// fullRequest is a request with every field set (strings in every
// string field), so the wire check walks all of them.
func fullRequest(id string) *fsmpb.Request {
	r := everyField()
	r.Id = id
	return r
}

// TestRestampRefuses: entries the leader must not propose are refused
// with the error EncodeAt would give, and bytes a replica could not
// decode are refused before they reach the log.
func TestRestampRefuses(t *testing.T) {
	create := CreateCommand([]*fsmpb.Request{fullRequest("019b0000-0000-7000-8000-000000000001")}, 1000)
	good, err := EncodeAt(create, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Marshal refuses invalid UTF-8, so the record is written by hand: a
	// request whose telnum (appended last, so it wins) is not UTF-8.
	telnum := (&fsmpb.Request{}).ProtoReflect().Descriptor().Fields().ByName("telnum").Number()
	reqField := (&fsmpb.CreateRequests{}).ProtoReflect().Descriptor().Fields().ByName("requests").Number()
	reqBytes, err := proto.Marshal(fullRequest("019b0000-0000-7000-8000-000000000001"))
	if err != nil {
		t.Fatal(err)
	}
	reqBytes = protowire.AppendBytes(protowire.AppendTag(reqBytes, telnum, protowire.BytesType), []byte{0xff, 0xfe})
	createBytes := protowire.AppendBytes(protowire.AppendTag(nil, reqField, protowire.BytesType), reqBytes)
	envelope := func(extra ...[]byte) []byte {
		b := protowire.AppendVarint(protowire.AppendTag(nil, versionField, protowire.VarintType), CommandVersion)
		for _, e := range extra {
			b = append(b, e...)
		}
		return b
	}
	createField := func(v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, 10, protowire.BytesType), v)
	}
	for _, tc := range []struct {
		name  string
		entry []byte
		want  error
	}{
		{"unknown envelope field", append(append([]byte{}, good...), protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 1)...), ErrUnknownCommand},
		{"newer version", rawEntry(t, &fsmpb.Command{Version: CommandVersion + 1, Body: create.Body}), ErrCommandVersion},
		{"no body", rawEntry(t, &fsmpb.Command{Version: CommandVersion, NowUnixMs: 5}), ErrUnknownCommand},
		{"unknown body", unknownBodyEntry(t, true), ErrUnknownCommand},
		{"two bodies", append(append([]byte{}, good...), createField(nil)...), ErrUnknownCommand},
		{"body with the wrong wire type", envelope(protowire.AppendVarint(protowire.AppendTag(nil, 10, protowire.VarintType), 1)), ErrUnknownCommand},
		{"truncated", good[:len(good)-3], nil},
		{"invalid UTF-8 in a record", envelope(createField(createBytes)), errWire},
		{"record field with the wrong wire type", envelope(createField(protowire.AppendVarint(protowire.AppendTag(nil, reqField, protowire.VarintType), 7))), errWire},
		// RemoveSuppressions (30) numbers (2, packed fixed64): 3 bytes.
		{"bad packed run", envelope(protowire.AppendBytes(protowire.AppendTag(nil, 30, protowire.BytesType),
			protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), []byte("xyz")))), errWire},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Restamp(tc.entry, t0)
			if err == nil {
				t.Fatalf("Restamp accepted it: %x", out)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

// tryDecode reports decode's panic as an error.
func tryDecode(b []byte) (cmd *fsmpb.Command, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("decode panicked")
		}
	}()
	cmd, _ = decode(&raft.Log{Index: 1, Data: b})
	return cmd, nil
}

// FuzzRestamp: whatever Restamp accepts, every replica can decode (decode
// panics on anything else, stopping the cluster), and it is the entry the
// decode-and-encode path would have proposed.
func FuzzRestamp(f *testing.F) {
	for _, cmd := range append(bodies(f), CreateCommand([]*fsmpb.Request{fullRequest("019b0000-0000-7000-8000-000000000001")}, 1000)) {
		b, err := EncodeAt(cmd, 0)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, entry []byte) {
		out, err := Restamp(entry, t0)
		if err != nil {
			return
		}
		if _, derr := tryDecode(out); derr != nil {
			t.Fatalf("Restamp accepted %x, which a replica cannot decode", entry)
		}
		slow, serr := restampSlow(entry, t0)
		if serr != nil {
			t.Fatalf("Restamp accepted %x, which the decode path refuses: %v", entry, serr)
		}
		sameEntry(t, out, slow)
	})
}
