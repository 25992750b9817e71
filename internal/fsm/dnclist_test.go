package fsm

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkDNC compares l with the model: lookups, size, and the merged
// ascending order.
func checkDNC(t *testing.T, l *dncList, model map[uint64]int64) {
	t.Helper()
	if l.Len() != len(model) {
		t.Fatalf("Len %d, model %d", l.Len(), len(model))
	}
	for n, e := range model {
		got, ok := l.get(n)
		if !ok || got.expires != e {
			t.Fatalf("get(%d) = %v %v, want expiry %d", n, got, ok, e)
		}
	}
	want := slices.Sorted(maps.Keys(model))
	var got []uint64
	l.ascend(func(e dncEntry) bool {
		got = append(got, e.num)
		if e.expires != model[e.num] {
			t.Fatalf("ascend: %d expires %d, want %d", e.num, e.expires, model[e.num])
		}
		return true
	})
	if !slices.Equal(got, want) {
		t.Fatalf("ascend %v, want %v", got, want)
	}
}

// The sorted array with its write buffer behaves as a map, across merges,
// and a clone taken before changes never sees them (copy-on-write).
func TestDNCListModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	l := newDNCList()
	model := map[uint64]int64{}
	for step := range 5000 {
		n := uint64(rng.IntN(300))
		switch rng.IntN(10) {
		case 0, 1, 2:
			l.remove(n)
			delete(model, n)
		case 3:
			if _, ok := l.get(n + 1000); ok {
				t.Fatal("found a number never added")
			}
		default:
			var e int64
			if rng.IntN(4) == 0 {
				e = int64(rng.IntN(1000) + 1)
			}
			l.add(n, e)
			model[n] = e
		}
		if rng.IntN(50) == 0 {
			before, frozen := l.clone(), maps.Clone(model)
			l.merge()
			checkDNC(t, l, model)
			l.add(5000, 0)
			l.remove(n)
			checkDNC(t, before, frozen)
			l.remove(5000)
			if _, ok := model[n]; ok {
				l.add(n, model[n])
			}
		}
		if step%97 == 0 {
			checkDNC(t, l, model)
		}
	}
	checkDNC(t, l, model)
	// Early stop.
	count := 0
	l.ascend(func(dncEntry) bool { count++; return count < 3 })
	if len(model) >= 3 && count != 3 {
		t.Fatalf("ascend did not stop: %d", count)
	}
}
