package fsm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

func TestKeyEncodingOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{0, 1, 'a', 'b', 0xff}
	randString := func() string {
		b := make([]byte, rng.IntN(4))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	randInt := func() int64 {
		switch rng.IntN(4) {
		case 0:
			return -rng.Int64()
		case 1:
			return int64(rng.IntN(5)) - 2
		default:
			return rng.Int64()
		}
	}
	type pair struct {
		s1, s2 string
		n      int64
	}
	// The indexes are btrees of key structs now, not byte keys: check the
	// queue order's comparison of its leading components instead.
	enc := func(p pair) queueItem {
		return queueItem{g: &group{tenant: p.s1, profile: p.s2}, nextRetry: p.n}
	}
	for i := 0; i < 20_000; i++ {
		a := pair{randString(), randString(), randInt()}
		b := pair{randString(), randString(), randInt()}
		want := cmp.Or(cmp.Compare(a.s1, b.s1), cmp.Compare(a.s2, b.s2), cmp.Compare(a.n, b.n))
		if got := cmpQueue(enc(a), enc(b)); got != want {
			t.Fatalf("%+q vs %+q: key order %d, want %d", []any{a.s1, a.s2, a.n}, []any{b.s1, b.s2, b.n}, got, want)
		}
	}
}

func TestDueOrder(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, create(
		newReq("a", "t1", "p1", 3, 10_000),
		newReq("b", "t1", "p1", 3, 5_000), // same retry time as a, less TTL left
		newReq("c", "t1", "p1", 3, 10_000),
		newReq("d", "t1", "p1", 3, 10_000),
		newReq("e", "t1", "p1", 3, 10_000),
		newReq("x1", "t1", "p2", 3, 10_000), // other profile
		newReq("x2", "t2", "p1", 3, 10_000), // other tenant
		newReq("x3", "t1", "p1", 3, 10_000), // other state (claimed below)
	))
	h.mustOK(t0, claim("c", "d", "e", "x3"))
	h.mustOK(t0, start("c", "c1"))
	h.mustOK(t0, start("d", "d1"))
	h.mustOK(t0, start("e", "e1"))
	// c: one attempt counted, retry at t0+2000.
	h.mustOK(t0+1, record("c", "c1", fsmpb.OutcomeClass_OUTCOME_BUSY, "", t0+2000))
	// d: attempt not counted, same retry time: after c (fewer attempts).
	h.mustOK(t0+1, record("d", "d1", fsmpb.OutcomeClass_OUTCOME_INTERNAL, "", t0+2000))
	// e: retry before c and d.
	h.mustOK(t0+1, record("e", "e1", fsmpb.OutcomeClass_OUTCOME_TEMPORARY, "", t0+1500))

	want := []string{"b", "a", "e", "c", "d"}
	if got := ids(h.f.Due("t1", "p1", fsmpb.State_PENDING, 10)); !slices.Equal(got, want) {
		t.Fatalf("Due = %v, want %v", got, want)
	}
	// DueKeys: the same order, each record's queue fields.
	keys := h.f.DueKeys("t1", "p1", fsmpb.State_PENDING, 10)
	for i, r := range h.f.Due("t1", "p1", fsmpb.State_PENDING, 10) {
		if q := keys[i]; q != (Queued{ID: r.Id, AttemptsMade: r.AttemptsMade, NextRetryUnixMs: r.NextRetryUnixMs, ExpiresUnixMs: r.ExpiresUnixMs}) {
			t.Fatalf("DueKeys[%d] = %+v for %v", i, q, r)
		}
	}
	if len(keys) != len(want) || len(h.f.DueKeys("t1", "p1", fsmpb.State_PENDING, 2)) != 2 || h.f.DueKeys("t1", "p1", fsmpb.State_PENDING, 0) != nil {
		t.Fatalf("DueKeys lengths: %d", len(keys))
	}
	if got := ids(h.f.Due("t1", "p1", fsmpb.State_PENDING, 2)); !slices.Equal(got, want[:2]) {
		t.Fatalf("Due limit 2 = %v", got)
	}
	if got := h.f.Due("t1", "p1", fsmpb.State_PENDING, 0); got != nil {
		t.Fatalf("Due limit 0 = %v", ids(got))
	}
	if got := ids(h.f.Due("t1", "p1", fsmpb.State_INITIATED, 10)); !slices.Equal(got, []string{"x3"}) {
		t.Fatalf("Due INITIATED = %v", got)
	}
	if got := h.f.Due("t1", "p", fsmpb.State_PENDING, 10); len(got) != 0 {
		t.Fatalf("Due of a profile that is a prefix of another: %v", ids(got))
	}
	// Negative retry times sort first.
	h.mustOK(-5, create(newReq("neg", "t1", "p1", 3, 1)))
	if got := h.f.Due("t1", "p1", fsmpb.State_PENDING, 1); got[0].Id != "neg" {
		t.Fatalf("Due first = %s, want neg", got[0].Id)
	}
}

// populate creates n records across tenants t1/t2, profiles p1..p3 and all
// states, and returns them as stored.
func populate(t *testing.T, h *harness, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%06d", rng.IntN(1_000_000))
		tenant := []string{"t1", "t2"}[rng.IntN(2)]
		profile := fmt.Sprintf("p%d", 1+rng.IntN(3))
		if it := h.one(t0, create(newReq(id, tenant, profile, 2, 60_000))); it.Code != fsmpb.Code_CODE_OK {
			continue // duplicate random id
		}
		switch rng.IntN(5) {
		case 0:
		case 1:
			h.mustOK(t0, claim(id))
		case 2:
			h.mustOK(t0, claim(id))
			h.mustOK(t0, start(id, "c"))
		case 3:
			h.mustOK(t0, claim(id))
			h.mustOK(t0, start(id, "c"))
			h.mustOK(t0, record(id, "c", fsmpb.OutcomeClass_OUTCOME_PERMANENT, "Vacant", 0))
		case 4:
			h.mustOK(t0, cancel(tenant, id))
		}
	}
}

func TestListPaging(t *testing.T) {
	h := newHarness(t)
	populate(t, h, 300)
	all := append(allRecords(t, h.f, "t1"), allRecords(t, h.f, "t2")...)
	if len(all) != h.f.Count() {
		t.Fatalf("List found %d records, Count %d", len(all), h.f.Count())
	}
	profiles := []string{"", "p1", "p2", "p3", "p4"}
	states := []fsmpb.State{fsmpb.State_STATE_UNSPECIFIED, fsmpb.State_PENDING, fsmpb.State_INITIATED, fsmpb.State_IN_PROGRESS, fsmpb.State_PROCESSED}
	for _, tenant := range []string{"t1", "t2", "t3"} {
		for _, profile := range profiles {
			for _, state := range states {
				q := ListQuery{Tenant: tenant, IVRProfile: profile, State: state}
				var want []*fsmpb.Request
				for _, r := range all {
					if matches(r, q) {
						want = append(want, r)
					}
				}
				want = sortedByID(want)
				for _, limit := range []int{0, 1, 7, 1000} {
					q.Limit = limit
					got := listAll(t, h.f, q)
					if !slices.Equal(ids(got), ids(want)) {
						t.Fatalf("%+v: got %d records, want %d", q, len(got), len(want))
					}
				}
				// One page: next is set iff more exist.
				page, next := h.f.List(ListQuery{Tenant: tenant, IVRProfile: profile, State: state, Limit: 5})
				if len(want) > 5 && (len(page) != 5 || next != page[4].Id) || len(want) <= 5 && (len(page) != len(want) || next != "") {
					t.Fatalf("%+v: page of %d next %q, %d matching", q, len(page), next, len(want))
				}
				if len(want) > 2 {
					// Paging from an id that is not stored.
					after := want[1].Id + "x"
					page, _ := h.f.List(ListQuery{Tenant: tenant, IVRProfile: profile, State: state, After: after, Limit: 1})
					if len(page) != 1 || page[0].Id != want[2].Id {
						t.Fatalf("%+v after %q: %v", q, after, ids(page))
					}
				}
			}
		}
	}
	if got, next := h.f.List(ListQuery{}); got != nil || next != "" {
		t.Fatal("List without tenant returned records")
	}
	// Default limit.
	h2 := newHarness(t)
	for i := 0; i < 150; i++ {
		h2.mustOK(t0, create(newReq(fmt.Sprintf("%04d", i), "t1", "p1", 1, 1000)))
	}
	if page, next := h2.f.List(ListQuery{Tenant: "t1"}); len(page) != 100 || next != "0099" {
		t.Fatalf("default page: %d records, next %q", len(page), next)
	}
}

func TestProfiles(t *testing.T) {
	h := newHarness(t)
	populate(t, h, 300)
	// Move some along so counts see updates and deletes too.
	for _, r := range listAll(t, h.f, ListQuery{Tenant: "t1", IVRProfile: "p1", State: fsmpb.State_PROCESSED}) {
		if r.NotifyState == fsmpb.NotifyState_NOTIFY_PENDING {
			h.mustOK(t0, markNotified(r.Id))
		}
		h.mustOK(t0, purge(r.Id))
	}
	all := append(allRecords(t, h.f, "t1"), allRecords(t, h.f, "t2")...)
	for _, tenant := range []string{"t1", "t2", "t3"} {
		for _, state := range []fsmpb.State{0, 1, 2, 3, 4} {
			want := map[string]int{}
			for _, r := range all {
				if r.Tenant == tenant && (state == 0 || r.State == state) {
					want[r.IvrProfile]++
				}
			}
			got := h.f.Profiles(tenant, state)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Profiles(%s, %s) = %v, want %v", tenant, state, got, want)
			}
		}
	}
}

func TestWaitForIndex(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if err := h.f.WaitForIndex(ctx, 0); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() { done <- h.f.WaitForIndex(ctx, 3) }()
	h.mustOK(t0, create(newReq("a", "t1", "p1", 1, 1000)))
	h.mustOK(t0, claim("a"))
	select {
	case err := <-done:
		t.Fatalf("returned before index 3: %v", err)
	default:
	}
	h.mustOK(t0, requeue("a"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := h.f.WaitForIndex(ctx, 2); err != nil {
		t.Fatal(err)
	}

	cctx, cancelCtx := context.WithCancel(ctx)
	go func() { done <- h.f.WaitForIndex(cctx, 100) }()
	cancelCtx()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}

	// Restore wakes waiters too.
	src := newHarness(t)
	src.index = 99
	src.mustOK(t0, create(newReq("b", "t1", "p1", 1, 1000)))
	go func() { done <- h.f.WaitForIndex(ctx, 100) }()
	if err := h.f.Restore(readCloser(snapshotBytes(t, src.f))); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestApplyBatchSkipsNonCommands(t *testing.T) {
	f := New()
	res := f.ApplyBatch([]*raft.Log{
		cmdLog(t, 5, t0, create(newReq("a", "t1", "p1", 1, 1000))),
		{Index: 6, Type: raft.LogConfiguration, Data: []byte("not a command")},
	})
	if len(res) != 2 || res[1] != nil {
		t.Fatalf("results %v", res)
	}
	if ar := res[0].(*fsmpb.ApplyResult); len(ar.Items) != 1 || ar.Items[0].Code != fsmpb.Code_CODE_OK {
		t.Fatalf("create result %v", ar)
	}
	if f.AppliedIndex() != 6 {
		t.Fatalf("AppliedIndex = %d, want 6", f.AppliedIndex())
	}
	if got := f.Apply(&raft.Log{Index: 7, Type: raft.LogConfiguration}); got != nil {
		t.Fatalf("Apply(config) = %v", got)
	}
}

// TestConcurrentReads runs readers against Apply for the race detector and
// checks that every read sees a consistent version.
func TestConcurrentReads(t *testing.T) {
	h := newHarness(t)
	populate(t, h, 50)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, r := range h.f.Due("t1", "p1", fsmpb.State_PENDING, 20) {
					if r.State != fsmpb.State_PENDING {
						t.Errorf("Due returned a %s record", r.State)
						return
					}
				}
				page, _ := h.f.List(ListQuery{Tenant: "t1", State: fsmpb.State_INITIATED, Limit: 20})
				for _, r := range page {
					if r.State != fsmpb.State_INITIATED {
						t.Errorf("List returned a %s record", r.State)
						return
					}
				}
				h.f.Profiles("t1", fsmpb.State_PENDING)
				h.f.Get("000001")
				h.f.Count()
			}
		}()
	}
	for i := 0; i < 200; i++ {
		for _, r := range h.f.Due("t1", "p1", fsmpb.State_PENDING, 5) {
			h.mustOK(t0, claim(r.Id))
		}
		for _, r := range h.f.Due("t1", "p1", fsmpb.State_INITIATED, 5) {
			h.mustOK(t0, requeue(r.Id))
		}
		if i%50 == 0 {
			snapshotBytes(t, h.f)
		}
	}
	close(stop)
	wg.Wait()
}

// matches reports whether r matches q's filters (the reference List).
func matches(r *fsmpb.Request, q ListQuery) bool {
	return r.Tenant == q.Tenant &&
		(q.IVRProfile == "" || r.IvrProfile == q.IVRProfile) &&
		(q.State == fsmpb.State_STATE_UNSPECIFIED || r.State == q.State)
}

// TestListMergesStates checks the pages that are merged from several
// (profile, state) ranges of tenantProfileState: a profile without a state
// (List), the whole tenant (List, InState with STATE_UNSPECIFIED) and a
// state across profiles. Each layout interleaves the states of one profile
// by id, so a page crosses state boundaries; every page from every After
// (each stored id, a token between ids, "") is compared with a brute-force
// filter over all records.
func TestListMergesStates(t *testing.T) {
	const (
		P = fsmpb.State_PENDING
		I = fsmpb.State_INITIATED
		G = fsmpb.State_IN_PROGRESS
		X = fsmpb.State_PROCESSED
	)
	type rec struct {
		tenant, profile string
		state           fsmpb.State
	}
	p1 := func(st fsmpb.State) rec { return rec{"t1", "p1", st} }
	cases := []struct {
		name string
		recs []rec // ids 01, 02, ... in this order
	}{
		{"one profile, states cycling", []rec{p1(P), p1(X), p1(G), p1(P), p1(X), p1(G), p1(P), p1(X), p1(G)}},
		// The ranges in state order (P, G, X) hold ids 05-06, 03-04, 01-02.
		{"states descending by id", []rec{p1(X), p1(X), p1(G), p1(G), p1(P), p1(P)}},
		{"other profiles and tenant interleaved", []rec{
			p1(G), {"t1", "p2", P}, p1(P), {"t2", "p1", P}, p1(X), {"t1", "p", X},
			p1(I), {"t1", "p2", X}, p1(P), {"t2", "p1", G}, p1(G), {"t1", "p10", P}, p1(X), p1(I),
		}},
		{"one record per state, then a run", []rec{p1(X), p1(G), p1(I), p1(P), p1(P), p1(P), p1(P)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			var all []string
			for i, r := range tc.recs {
				id := fmt.Sprintf("%02d", i+1)
				all = append(all, id)
				h.mustOK(t0, create(newReq(id, r.tenant, r.profile, 2, 60_000)))
				if r.state != P {
					h.mustOK(t0, claim(id))
				}
				if r.state == G || r.state == X {
					h.mustOK(t0, start(id, "c"+id))
				}
				if r.state == X {
					h.mustOK(t0, record(id, "c"+id, fsmpb.OutcomeClass_OUTCOME_PERMANENT, "Vacant", 0))
				}
				if got := h.get(id).State; got != r.state {
					t.Fatalf("%s is %s, want %s", id, got, r.state)
				}
			}
			afters := []string{""}
			for _, id := range all {
				afters = append(afters, id, id+"x")
			}
			for _, q := range []ListQuery{
				{Tenant: "t1", IVRProfile: "p1"},
				{Tenant: "t1"},
				{Tenant: "t2"},
				{Tenant: "t1", State: P},
				{Tenant: "t1", State: X},
				{Tenant: "t1", IVRProfile: "p1", State: G},
				{Tenant: "t1", IVRProfile: "p"},
			} {
				// Brute force: every record, by Get, filtered, in id order.
				var want []string
				for _, id := range all {
					if matches(h.get(id), q) {
						want = append(want, id)
					}
				}
				if got := ids(listAll(t, h.f, ListQuery{Tenant: q.Tenant, IVRProfile: q.IVRProfile, State: q.State, Limit: 2})); !slices.Equal(got, want) {
					t.Fatalf("%+v paged by 2: %v, want %v", q, got, want)
				}
				for _, after := range afters {
					i := 0
					for i < len(want) && want[i] <= after {
						i++
					}
					rest := want[i:]
					for _, limit := range []int{1, 2, 3, 100} {
						q.After, q.Limit = after, limit
						wantPage, wantNext := rest, ""
						if len(rest) > limit {
							wantPage, wantNext = rest[:limit], rest[limit-1]
						}
						page, next := h.f.List(q)
						if !slices.Equal(ids(page), wantPage) || next != wantNext {
							t.Fatalf("List(%+v) = %v next %q, want %v next %q", q, ids(page), next, wantPage, wantNext)
						}
						if q.IVRProfile == "" {
							if got := ids(h.f.InState(q.Tenant, q.State, after, limit)); !slices.Equal(got, wantPage) {
								t.Fatalf("InState(%s, %s, %q, %d) = %v, want %v", q.Tenant, q.State, after, limit, got, wantPage)
							}
						}
					}
				}
			}
		})
	}
}
