package dialer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// scriptedApplier answers each PurgeRequests entry per id: reject ids are
// refused, short drops the results of the last item, and the entry numbered
// failAt (1-based) fails as a whole.
type scriptedApplier struct {
	reject  map[string]bool
	short   bool
	failAt  int
	entries [][]string // the ids of every entry proposed
}

var errDeposed = errors.New("deposed")

func (a *scriptedApplier) ApplyLeader(_ context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, uint64, error) {
	ids := cmd.GetPurge().GetIds()
	a.entries = append(a.entries, ids)
	if len(a.entries) == a.failAt {
		return nil, 0, fmt.Errorf("apply: %w", errDeposed)
	}
	res := &fsmpb.ApplyResult{}
	for _, id := range ids {
		it := &fsmpb.ItemResult{Id: id}
		if a.reject[id] {
			it.Code = fsmpb.Code_CODE_INVALID_STATE
		}
		res.Items = append(res.Items, it)
	}
	if a.short && len(res.Items) > 0 {
		res.Items = res.Items[:len(res.Items)-1]
	}
	return res, uint64(len(a.entries)), nil
}

func numbered(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("r%05d", i)
	}
	return ids
}

func TestPropose(t *testing.T) {
	big := numbered(2*maxEntryItems + 1)
	for _, tc := range []struct {
		name      string
		items     []string
		app       scriptedApplier
		cancelled bool
		// want: the sizes of the entries proposed, the ids accepted, the
		// entries reported committed, and the error.
		wantEntries   []int
		wantAccepted  []string
		wantCommitted int
		wantErr       error
	}{
		{name: "empty", wantEntries: nil},
		{name: "one entry, all accepted", items: numbered(3), wantEntries: []int{3}, wantAccepted: numbered(3), wantCommitted: 1},
		{name: "chunked", items: big, wantEntries: []int{maxEntryItems, maxEntryItems, 1}, wantAccepted: big, wantCommitted: 3},
		{name: "partial failure keeps the OK items in order", items: numbered(5),
			app:         scriptedApplier{reject: map[string]bool{"r00001": true, "r00004": true}},
			wantEntries: []int{5}, wantAccepted: []string{"r00000", "r00002", "r00003"}, wantCommitted: 1},
		{name: "partial failures across entries", items: big,
			app:         scriptedApplier{reject: map[string]bool{"r00000": true, big[maxEntryItems]: true, big[len(big)-1]: true}},
			wantEntries: []int{maxEntryItems, maxEntryItems, 1}, wantAccepted: slices.Concat(big[1:maxEntryItems], big[maxEntryItems+1:len(big)-1]), wantCommitted: 3},
		{name: "an item without a result is not accepted", items: numbered(3), app: scriptedApplier{short: true},
			wantEntries: []int{3}, wantAccepted: numbered(2), wantCommitted: 1},
		{name: "a failed entry stops; earlier entries stay reported", items: big, app: scriptedApplier{failAt: 2},
			wantEntries: []int{maxEntryItems, maxEntryItems}, wantAccepted: big[:maxEntryItems], wantCommitted: 1, wantErr: errDeposed},
		{name: "cancelled: nothing proposed", items: numbered(3), cancelled: true, wantErr: context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancelled {
				cancel()
			}
			app := tc.app
			var accepted, reported []string
			committed := 0
			err := propose(ctx, &app, tc.items, fsm.PurgeCommand, func(entry, ok []string) {
				committed++
				reported = append(reported, entry...)
				accepted = append(accepted, ok...)
			})
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			var sizes []int
			var proposed []string
			for _, e := range app.entries {
				sizes = append(sizes, len(e))
				proposed = append(proposed, e...)
			}
			if !slices.Equal(sizes, tc.wantEntries) {
				t.Errorf("entry sizes %v, want %v", sizes, tc.wantEntries)
			}
			if !slices.Equal(proposed, tc.items[:len(proposed)]) {
				t.Errorf("entries do not carry the items in order")
			}
			if committed != tc.wantCommitted {
				t.Errorf("committed called %d times, want %d", committed, tc.wantCommitted)
			}
			if !slices.Equal(reported, tc.items[:len(reported)]) || len(reported) > len(proposed) {
				t.Errorf("committed entries %d items, not a prefix of the %d proposed", len(reported), len(proposed))
			}
			if !slices.Equal(accepted, tc.wantAccepted) {
				t.Errorf("accepted %d items %v..., want %d", len(accepted), accepted[:min(len(accepted), 4)], len(tc.wantAccepted))
			}
		})
	}
}

// propose without a committed callback still proposes every entry.
func TestProposeWithoutCallback(t *testing.T) {
	app := &scriptedApplier{}
	if err := propose(context.Background(), app, numbered(maxEntryItems+1), fsm.PurgeCommand, nil); err != nil {
		t.Fatal(err)
	}
	if len(app.entries) != 2 {
		t.Fatalf("%d entries, want 2", len(app.entries))
	}
}

func TestByRequestID(t *testing.T) {
	rs := []*fsmpb.Request{{Id: "b"}, {Id: "a"}, {Id: "c"}}
	got := byRequestID(fsm.ClaimCommand)(rs).GetClaim().GetIds()
	if !slices.Equal(got, []string{"b", "a", "c"}) {
		t.Fatalf("ids %v, want the requests' in order", got)
	}
}
