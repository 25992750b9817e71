package fsm

import (
	"bytes"
	"testing"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

func setCap(tenant string, n uint32, period, gap int64) *fsmpb.Command {
	return FreqSetCapCommand(&fsmpb.FreqCap{Tenant: tenant, MaxAttempts: n, PeriodMs: period, MinGapMs: gap})
}

func TestBlockedUntil(t *testing.T) {
	c := &fsmpb.FreqCap{MaxAttempts: 2, PeriodMs: 100, MinGapMs: 10}
	for _, tc := range []struct {
		starts []int64
		now    int64
		want   int64
	}{
		{nil, 0, 0},
		{[]int64{0}, 5, 10},       // gap
		{[]int64{0}, 10, 0},       // gap boundary: allowed at last+gap
		{[]int64{0, 50}, 55, 100}, // count: 0 leaves the period at 100
		{[]int64{0, 50}, 99, 100},
		{[]int64{0, 50}, 100, 0},   // boundary
		{[]int64{0, 95}, 100, 105}, // count fine, gap holds
	} {
		if got := blockedUntil(c, tc.starts, tc.now); got != tc.want {
			t.Errorf("starts %v now %d: %d, want %d", tc.starts, tc.now, got, tc.want)
		}
	}
	if got := blockedUntil(&fsmpb.FreqCap{MinGapMs: 10}, []int64{0, 1, 2}, 5); got != 12 {
		t.Errorf("gap only: %d", got)
	}
}

// TestFreqCapAtStart: a start the cap forbids is refused in Apply and
// the request waits until the cap allows it (or ends past its TTL); the
// history survives a snapshot, is pruned once it can no longer hold
// anything back, and a tenant without a cap records nothing.
func TestFreqCapAtStart(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, setCap("acme", 2, 1000, 100))
	mk := func(id string, ttl int64) {
		r := newReq(id, "acme", "p", 5, ttl)
		h.mustOK(t0, create(r))
		h.mustOK(t0, claim(id))
	}
	mk("a", 10_000)
	mk("b", 10_000)
	mk("c", 10_000)
	mk("d", 1_050)
	h.mustOK(t0, start("a", "ua")) // first attempt to +15550100
	// b: within the gap.
	if it := h.one(t0+50, start("b", "ub")); it.Code != fsmpb.Code_CODE_INVALID_STATE {
		t.Fatalf("start within gap: %v", it)
	}
	if r := h.get("b"); r.State != fsmpb.State_PENDING || r.NextRetryUnixMs != t0+100 || r.WaitReason != WaitFrequencyCap || r.AttemptsMade != 0 {
		t.Fatalf("b after refused start: %v", r)
	}
	h.mustOK(t0+100, claim("b"))
	h.mustOK(t0+100, start("b", "ub")) // second attempt: at the gap's end
	if got := h.f.FreqStarts("acme", "15550100"); len(got) != 2 || got[0] != t0 || got[1] != t0+100 {
		t.Fatalf("history %v", got)
	}
	// c: two in the period: the first leaves it at t0+1000.
	if it := h.one(t0+500, start("c", "uc")); it.Code != fsmpb.Code_CODE_INVALID_STATE {
		t.Fatalf("third start in period: %v", it)
	}
	if r := h.get("c"); r.NextRetryUnixMs != t0+1000 {
		t.Fatalf("c next %d", r.NextRetryUnixMs)
	}
	if u := h.f.FreqBlockedUntil("acme", "+15550100", t0+500); u != t0+1000 {
		t.Fatalf("leader's view: %d", u)
	}
	// d (TTL t0+1050): with a longer period the cap holds the number
	// until t0+2000, past the TTL: d ends without an attempt.
	h.mustOK(t0+600, setCap("acme", 2, 2000, 100))
	if it := h.one(t0+600, start("d", "ud")); it.Code != fsmpb.Code_CODE_FINISHED {
		t.Fatalf("start past TTL: %v", it)
	}
	if r := h.get("d"); r.State != fsmpb.State_PROCESSED || r.ResultReason != ReasonFreqTTL || r.AttemptsMade != 0 ||
		r.NotifyState != fsmpb.NotifyState_NOTIFY_PENDING {
		t.Fatalf("d: %v", r)
	}

	// Snapshot and restore keep caps and history.
	snap := snapshotBytes(t, h.f)
	g := New()
	if err := g.Restore(readCloser(snap)); err != nil {
		t.Fatal(err)
	}
	if u := g.FreqBlockedUntil("acme", "+15550100", t0+600); u != t0+2000 {
		t.Fatalf("restored: until %d", u)
	}
	if !bytes.Equal(snapshotBytes(t, g), snap) {
		t.Fatal("re-snapshot differs")
	}

	// Other tenants are not capped and record nothing.
	o := newReq("o", "globex", "p", 5, 10_000)
	h.mustOK(t0, create(o))
	h.mustOK(t0, claim("o"))
	h.mustOK(t0+600, start("o", "uo"))
	if got := h.f.FreqStarts("globex", "15550100"); got != nil {
		t.Fatalf("uncapped tenant recorded %v", got)
	}

	// Pruned at a start once past the horizon (last start + 2000): only
	// the new start is left.
	mk("e", 100_000)
	h.mustOK(t0+2101, start("e", "ue"))
	if got := h.f.FreqStarts("acme", "15550100"); len(got) != 1 || got[0] != t0+2101 {
		t.Fatalf("after horizon: %v", got)
	}
	// Deleting the cap drops the history.
	h.mustOK(t0, FreqDeleteCapCommand("acme"))
	if got := h.f.FreqStarts("acme", "15550100"); got != nil {
		t.Fatalf("history after delete: %v", got)
	}
	if it := h.one(t0, FreqDeleteCapCommand("acme")); it.Code != fsmpb.Code_CODE_NOT_FOUND {
		t.Fatalf("delete twice: %v", it)
	}
	if it := h.one(t0, setCap("acme", 2, 0, 0)); it.Code != fsmpb.Code_CODE_INVALID_STATE {
		t.Fatalf("count without period: %v", it)
	}
}

func TestRestoreCorruptFreq(t *testing.T) {
	for name, hs := range map[string][]*fsmpb.FreqHistory{
		"order":     {{Tenant: "a", Number: 2, StartsUnixMs: []int64{1}}, {Tenant: "a", Number: 1, StartsUnixMs: []int64{1}}},
		"no tenant": {{Number: 2, StartsUnixMs: []int64{1}}},
		"no starts": {{Tenant: "a", Number: 2}},
	} {
		if _, err := restoreFreq(hs); err == nil {
			t.Errorf("%s: restored", name)
		}
	}
}

// TestFreqGapFromEnd: the gap (and the period) count from a call's end
// once its result is recorded: the next call is sent after its own commit,
// so a gap from the end holds at the far end too, however late the ended
// call had left (the chaos suite saw a call reach the platform 0.3 s after
// its start commit, and the next attempt 2.7 s after it with a 3 s gap).
func TestFreqGapFromEnd(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, setCap("acme", 0, 0, 3000))
	h.mustOK(t0, create(newReq("a", "acme", "p", 5, 60_000)))
	h.mustOK(t0, claim("a"))
	h.mustOK(t0, start("a", "ua"))
	h.mustOK(t0+700, record("a", "ua", fsmpb.OutcomeClass_OUTCOME_TEMPORARY, "RingNoAnswer", t0+3000))
	if got := h.f.FreqStarts("acme", "15550100"); len(got) != 1 || got[0] != t0+700 {
		t.Fatalf("history after the result: %v, want the end t0+700", got)
	}
	if u := h.f.FreqBlockedUntil("acme", "15550100", t0+3000); u != t0+3700 {
		t.Fatalf("blocked until %d, want t0+3700 (end + gap)", u)
	}
	h.mustOK(t0+3000, claim("a"))
	if it := h.one(t0+3000, start("a", "ua2")); it.Code != fsmpb.Code_CODE_INVALID_STATE {
		t.Fatalf("start 3 s after the start but 2.3 s after the end: %v", it)
	}
	h.mustOK(t0+3700, claim("a"))
	h.mustOK(t0+3700, start("a", "ua2"))
}
