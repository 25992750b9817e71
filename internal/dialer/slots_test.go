package dialer

import (
	"maps"
	"testing"

	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
)

func TestAllocate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n       int
		pending map[string]int
		mode    string
		want    map[string]int
	}{
		{"proportionate", 100, map[string]int{"a": 300, "b": 100}, pacing.SlotsProportionate, map[string]int{"a": 75, "b": 25}},
		{"proportionate remainders", 10, map[string]int{"a": 1, "b": 1, "c": 1}, pacing.SlotsProportionate, map[string]int{"a": 1, "b": 1, "c": 1}},
		{"proportionate largest remainder", 10, map[string]int{"a": 50, "b": 30, "c": 20}, pacing.SlotsProportionate, map[string]int{"a": 5, "b": 3, "c": 2}},
		{"proportionate small profile is not starved", 9, map[string]int{"a": 1000, "b": 1}, pacing.SlotsProportionate, map[string]int{"a": 8, "b": 1}},
		{"equal", 100, map[string]int{"a": 300, "b": 100}, pacing.SlotsEqual, map[string]int{"a": 50, "b": 50}},
		{"equal with odd slots", 5, map[string]int{"a": 300, "b": 100}, pacing.SlotsEqual, map[string]int{"a": 3, "b": 2}},
		{"equal, a short profile frees slots", 100, map[string]int{"a": 300, "b": 10}, pacing.SlotsEqual, map[string]int{"a": 90, "b": 10}},
		{"fewer pending than slots", 100, map[string]int{"a": 3, "b": 4}, pacing.SlotsProportionate, map[string]int{"a": 3, "b": 4}},
		{"empty profiles ignored", 10, map[string]int{"a": 0, "b": 5}, pacing.SlotsEqual, map[string]int{"b": 5}},
		{"no slots", 0, map[string]int{"a": 5}, pacing.SlotsEqual, map[string]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := allocate(tc.n, tc.pending, tc.mode)
			if !maps.Equal(got, tc.want) {
				t.Fatalf("allocate(%d, %v, %s) = %v, want %v", tc.n, tc.pending, tc.mode, got, tc.want)
			}
		})
	}
}

func TestPick(t *testing.T) {
	mk := func(attempts ...uint32) []fsm.Queued {
		var out []fsm.Queued
		for i, a := range attempts {
			out = append(out, fsm.Queued{ID: string(rune('a' + i)), AttemptsMade: a})
		}
		return out
	}
	ids := func(rs []fsm.Queued) string {
		s := ""
		for _, r := range rs {
			s += r.ID
		}
		return s
	}
	// Queue order: a(2) b(1) c(0) d(0) e(3) f(0)
	cands := mk(2, 1, 0, 0, 3, 0)
	for _, tc := range []struct {
		name     string
		n        int
		equal    bool
		wantPick string
	}{
		{"queue order", 3, false, "abc"},
		{"all", 10, false, "abcdef"},
		{"equal new and old alternate", 4, true, "cadb"},
		{"equal, then new first on a tie", 6, true, "cadbfe"},
		{"equal, new run out", 8, true, "cadbfe"},
		{"equal, one", 1, true, "c"},
		{"none", 0, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(pick(cands, tc.n, tc.equal)); got != tc.wantPick {
				t.Fatalf("pick(%d, equal=%v) = %q, want %q", tc.n, tc.equal, got, tc.wantPick)
			}
		})
	}
}
