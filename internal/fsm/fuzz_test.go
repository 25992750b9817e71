package fsm

import (
	"bytes"
	"testing"

	"github.com/hashicorp/raft"

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
			checkInvariants(t, fsm)
		}
		snap := snapshotBytes(t, fsm)
		restored := New()
		if err := restored.Restore(readCloser(snap)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(snapshotBytes(t, restored), snap) || restored.AppliedIndex() != fsm.AppliedIndex() {
			t.Fatal("snapshot round trip changed the state")
		}
	})
}
