package fsm

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

func addDNC(tenant string, exp []int64, nums ...uint64) *fsmpb.Command {
	return AddSuppressionsCommand(&fsmpb.SuppressionChunk{Tenant: tenant, Numbers: nums, ExpiresUnixMs: exp})
}

func TestSuppressionNumber(t *testing.T) {
	for s, want := range map[string]uint64{"+15551234567": 15551234567, "15551234567": 15551234567, " +44 ": 44} {
		if n, ok := SuppressionNumber(s); !ok || n != want {
			t.Errorf("%q: %d %v", s, n, ok)
		}
	}
	for _, s := range []string{"", "+", "12a", "+-1", "99999999999999999999", "1 2"} {
		if _, ok := SuppressionNumber(s); ok {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestSuppressionAddRemoveExpireAndStart(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, addDNC("acme", nil, 15550100, 15550101))
	h.mustOK(t0, addDNC("acme", []int64{t0 + 1000}, 15550102))
	h.mustOK(t0, addDNC("globex", nil, 15550101))
	cases := []struct {
		tenant, num string
		now         int64
		want        bool
	}{
		{"acme", "+15550100", t0, true},
		{"acme", "15550101", t0, true},
		{"acme", "+15550102", t0 + 999, true},
		{"acme", "+15550102", t0 + 1000, false}, // expired
		{"acme", "+15550103", t0, false},
		{"globex", "+15550100", t0, false}, // per tenant
		{"other", "+15550100", t0, false},
	}
	for _, c := range cases {
		if got, _ := h.f.Suppressed(c.tenant, c.num, c.now); got != c.want {
			t.Errorf("%s %s at %d: %v", c.tenant, c.num, c.now, got)
		}
	}
	if n := h.f.SuppressionSize("acme"); n != 3 {
		t.Fatalf("size %d", n)
	}
	// A snapshot taken now does not see later changes (copy-on-write).
	before := snapshotBytes(t, h.f)
	h.mustOK(t0, RemoveSuppressionsCommand("acme", []uint64{15550101}))
	if got, _ := h.f.Suppressed("acme", "15550101", t0); got {
		t.Fatal("removed number still suppressed")
	}
	g := New()
	if err := g.Restore(readCloser(before)); err != nil {
		t.Fatal(err)
	}
	if got, _ := g.Suppressed("acme", "15550101", t0); !got || g.SuppressionSize("acme") != 3 || g.SuppressionSize("globex") != 1 {
		t.Fatal("snapshot changed by a later remove, or not restored")
	}
	if exp := func() int64 { _, e := g.Suppressed("acme", "15550102", t0); return e }(); exp != t0+1000 {
		t.Fatalf("expiry restored as %d", exp)
	}
	if !bytes.Equal(snapshotBytes(t, g), before) {
		t.Fatal("re-snapshot differs")
	}

	// A request fetched before its number was listed is refused at start:
	// it ends FAILURE Suppressed without an attempt.
	r := newReq("r1", "acme", "p", 3, 10_000)
	r.Telnum = "+15550555"
	r.Fingerprint = Fingerprint(r)
	h.mustOK(t0, create(r))
	h.mustOK(t0, claim("r1"))
	h.mustOK(t0+1, addDNC("acme", nil, 15550555))
	if it := h.one(t0+2, start("r1", "u1")); it.Code != fsmpb.Code_CODE_FINISHED {
		t.Fatalf("start of a suppressed number: %s", it.Code)
	}
	got := h.get("r1")
	if got.State != fsmpb.State_PROCESSED || got.Result != fsmpb.Result_FAILURE || got.ResultReason != ReasonSuppressed ||
		got.AttemptsMade != 0 || got.NotifyState != fsmpb.NotifyState_NOTIFY_PENDING {
		t.Fatalf("after start: %v", got)
	}
	if it := h.one(t0, RemoveSuppressionsCommand("nobody", []uint64{1})); it.Code != fsmpb.Code_CODE_NOT_FOUND {
		t.Fatalf("remove from no list: %s", it.Code)
	}
	if it := h.one(t0, addDNC("acme", []int64{1}, 1, 2)); it.Code != fsmpb.Code_CODE_INVALID_STATE {
		t.Fatalf("mismatched expiries: %s", it.Code)
	}
}

func TestRestoreCorruptSuppression(t *testing.T) {
	for name, chunks := range map[string][]*fsmpb.SuppressionChunk{
		"descending":      {{Tenant: "a", Numbers: []uint64{5, 4}}},
		"duplicate":       {{Tenant: "a", Numbers: []uint64{5}}, {Tenant: "a", Numbers: []uint64{5}}},
		"tenant order":    {{Tenant: "b", Numbers: []uint64{1}}, {Tenant: "a", Numbers: []uint64{2}}},
		"no tenant":       {{Numbers: []uint64{1}}},
		"expiry mismatch": {{Tenant: "a", Numbers: []uint64{1, 2}, ExpiresUnixMs: []int64{1}}},
	} {
		if _, err := restoreDNC(chunks); err == nil {
			t.Errorf("%s: restored", name)
		}
	}
}

// BenchmarkSuppression measures one tenant's list of DIALTONE_DNC_BENCH_SIZE
// numbers (default 1,000,000): the load rate through Apply (entries of
// 50,000 numbers, as the API commits them), the memory per number, the
// check cost at dispatch, and snapshot+restore.
//
//	go test -run X -bench Suppression -benchtime 1x ./internal/fsm/
//	DIALTONE_DNC_BENCH_SIZE=10000000 go test -run X -bench Suppression -benchtime 1x -timeout 30m ./internal/fsm/
func BenchmarkSuppression(b *testing.B) {
	size := 1_000_000
	if v := os.Getenv("DIALTONE_DNC_BENCH_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	h := newHarness(b)
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	// A national list is not dense: numbers spread over the 10-digit
	// space of one country code.
	num := func(i int) uint64 { return 12_000_000_000 + uint64(i)*7 }
	began := time.Now()
	for start := 0; start < size; start += 50_000 {
		nums := make([]uint64, 0, 50_000)
		for i := start; i < min(start+50_000, size); i++ {
			nums = append(nums, num(i))
		}
		h.mustOK(t0, addDNC("acme", nil, nums...))
	}
	loadRate := float64(size) / time.Since(began).Seconds()
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	perNumber := float64(ms1.HeapAlloc-ms0.HeapAlloc) / float64(size)
	nums := make([]string, 4096)
	for i := range nums {
		nums[i] = fmt.Sprint(num(i * 241 % size))
	}
	b.Run("load", func(b *testing.B) {
		b.ReportMetric(loadRate, "numbers/s")
		b.ReportMetric(perNumber, "heap-bytes/number")
	})
	b.Run("check", func(b *testing.B) {
		for i := range b.N {
			h.f.Suppressed("acme", nums[i%len(nums)], t0)
		}
	})
	b.Run("snapshot+restore", func(b *testing.B) {
		for range b.N {
			data := snapshotBytes(b, h.f)
			if err := New().Restore(readCloser(data)); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(data))/float64(size), "bytes/number")
		}
	})
}
