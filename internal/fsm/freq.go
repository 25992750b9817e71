package fsm

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/google/btree"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Per-contact frequency caps: per tenant at most N attempts to one number
// in any rolling period, and a minimum gap between two (an attempt counts
// from its start, then from its end once its result is recorded: freqEnd),
// across all the tenant's requests. The cap is a setting (settings.caps);
// the recent starts to each number of a capped tenant are state (freqLog),
// recorded by the state machine when it starts an attempt, at the entry's
// time. A start the cap forbids is refused in Apply: the request goes back
// to PENDING due when the cap allows it (wait reason frequency_cap), or
// ends FAILURE when that is past its TTL. The leader reads the same
// figures to defer such requests before it claims them (dialer/rules.go).

// WaitFrequencyCap is the wait reason of a request a frequency cap holds
// back.
const WaitFrequencyCap = "frequency_cap"

// ReasonFreqTTL is the result reason of a request whose TTL ends before
// its tenant's frequency cap would allow another attempt to its number.
const ReasonFreqTTL = "TTL Expired Frequency Cap"

// freqItem is the recent starts to one number of a tenant.
type freqItem struct {
	tenant string
	num    uint64
	starts []int64 // ascending; immutable (replaced on change)
	drop   int64   // when none of starts can hold a request back
}

// freqDropItem orders freqItems by drop time, for pruning.
type freqDropItem struct {
	drop   int64
	tenant string
	num    uint64
}

func lessFreq(a, b freqItem) bool {
	if a.tenant != b.tenant {
		return a.tenant < b.tenant
	}
	return a.num < b.num
}

func lessFreqDrop(a, b freqDropItem) bool {
	if a.drop != b.drop {
		return a.drop < b.drop
	}
	if a.tenant != b.tenant {
		return a.tenant < b.tenant
	}
	return a.num < b.num
}

// freqLog is the attempt history of capped tenants. Its trees are cloned
// with the state (copy-on-write).
type freqLog struct {
	byNum  *btree.BTreeG[freqItem]
	byDrop *btree.BTreeG[freqDropItem]
}

func newFreqLog() freqLog {
	return freqLog{byNum: btree.NewG(btreeDegree, lessFreq), byDrop: btree.NewG(btreeDegree, lessFreqDrop)}
}

func (l freqLog) clone() freqLog {
	return freqLog{byNum: l.byNum.Clone(), byDrop: l.byDrop.Clone()}
}

func (l freqLog) put(it freqItem) {
	if old, ok := l.byNum.ReplaceOrInsert(it); ok {
		l.byDrop.Delete(freqDropItem{drop: old.drop, tenant: old.tenant, num: old.num})
	}
	l.byDrop.ReplaceOrInsert(freqDropItem{drop: it.drop, tenant: it.tenant, num: it.num})
}

func (l freqLog) del(tenant string, num uint64) {
	if old, ok := l.byNum.Delete(freqItem{tenant: tenant, num: num}); ok {
		l.byDrop.Delete(freqDropItem{drop: old.drop, tenant: old.tenant, num: old.num})
	}
}

// prune drops the histories that can no longer hold a request back at now.
func (l freqLog) prune(now int64) {
	for {
		d, ok := l.byDrop.Min()
		if !ok || d.drop > now {
			return
		}
		l.byDrop.DeleteMin()
		l.byNum.Delete(freqItem{tenant: d.tenant, num: d.num})
	}
}

// dropTenant removes every history of tenant.
func (l freqLog) dropTenant(tenant string) {
	var nums []uint64
	l.byNum.AscendGreaterOrEqual(freqItem{tenant: tenant}, func(it freqItem) bool {
		if it.tenant != tenant {
			return false
		}
		nums = append(nums, it.num)
		return true
	})
	for _, n := range nums {
		l.del(tenant, n)
	}
}

// blockedUntil is when c next allows an attempt to a number with the
// given starts, if later than now; else 0.
func blockedUntil(c *fsmpb.FreqCap, starts []int64, now int64) int64 {
	var until int64
	if k := len(starts); k > 0 && c.GetMinGapMs() > 0 {
		if u := starts[k-1] + c.GetMinGapMs(); u > now {
			until = u
		}
	}
	if n := int(c.GetMaxAttempts()); n > 0 && c.GetPeriodMs() > 0 && len(starts) >= n {
		// The n-th most recent start must have left the period.
		if u := starts[len(starts)-n] + c.GetPeriodMs(); u > now {
			until = max(until, u)
		}
	}
	return until
}

// horizon is how long a start can hold a request back under c.
func horizon(c *fsmpb.FreqCap) int64 {
	if c.GetMaxAttempts() == 0 {
		return c.GetMinGapMs()
	}
	return max(c.GetPeriodMs(), c.GetMinGapMs())
}

// Settings side: the caps, sorted by tenant.

func (s *settings) capIndex(tenant string) (int, bool) {
	i := sort.Search(len(s.caps), func(i int) bool { return s.caps[i].Tenant >= tenant })
	return i, i < len(s.caps) && s.caps[i].Tenant == tenant
}

func (s *settings) capOf(tenant string) *fsmpb.FreqCap {
	if len(s.caps) == 0 {
		return nil
	}
	if i, ok := s.capIndex(tenant); ok {
		return s.caps[i]
	}
	return nil
}

// Reads.

// FrequencyCap returns tenant's stored frequency cap, if any. It is shared
// and must not be modified.
func (f *FSM) FrequencyCap(tenant string) (*fsmpb.FreqCap, bool) {
	c := f.view().settings.capOf(tenant)
	return c, c != nil
}

// FrequencyCaps returns every stored cap by tenant. The slice is the
// caller's; the entries are shared.
func (f *FSM) FrequencyCaps() []*fsmpb.FreqCap {
	return append([]*fsmpb.FreqCap(nil), f.view().settings.caps...)
}

// FreqBlockedUntil is when tenant's frequency cap next allows an attempt
// to number, if later than nowUnixMs; else 0 (no cap, no history, or
// allowed now).
func (f *FSM) FreqBlockedUntil(tenant, number string, nowUnixMs int64) int64 {
	st := f.view()
	return st.freqBlockedUntil(tenant, number, nowUnixMs)
}

// FreqStarts returns the recorded recent attempt starts to number of
// tenant (ascending; for inspection and tests).
func (f *FSM) FreqStarts(tenant, number string) []int64 {
	n, ok := SuppressionNumber(number)
	if !ok {
		return nil
	}
	it, ok := f.view().freq.byNum.Get(freqItem{tenant: tenant, num: n})
	if !ok {
		return nil
	}
	return append([]int64(nil), it.starts...)
}

func (s *state) freqBlockedUntil(tenant, number string, now int64) int64 {
	c := s.settings.capOf(tenant)
	if c == nil {
		return 0
	}
	n, ok := SuppressionNumber(number)
	if !ok {
		return 0
	}
	it, ok := s.freq.byNum.Get(freqItem{tenant: tenant, num: n})
	if !ok || it.drop <= now {
		return 0
	}
	return blockedUntil(c, it.starts, now)
}

// Apply side.

func (a *applier) freqSetCap(c *fsmpb.FreqSetCap) *fsmpb.ApplyResult {
	in := c.GetCap()
	tenant := in.GetTenant()
	switch {
	case tenant == "":
		return settingFail(fail("", fsmpb.Code_CODE_INVALID_STATE, "tenant is required"))
	case in.GetPeriodMs() < 0 || in.GetMinGapMs() < 0 || (in.GetMaxAttempts() > 0 && in.GetPeriodMs() == 0):
		return settingFail(fail(tenant, fsmpb.Code_CODE_INVALID_STATE, "invalid frequency cap"))
	}
	// A fresh record: unknown fields of the proposer are not stored.
	n := &fsmpb.FreqCap{Tenant: tenant, MaxAttempts: in.GetMaxAttempts(), PeriodMs: in.GetPeriodMs(), MinGapMs: in.GetMinGapMs()}
	s := a.st.settings
	i, found := s.capIndex(tenant)
	ns := s.shallow()
	if found {
		ns.caps = append([]*fsmpb.FreqCap(nil), s.caps...)
		ns.caps[i] = n
	} else {
		ns.caps = make([]*fsmpb.FreqCap, 0, len(s.caps)+1)
		ns.caps = append(ns.caps, s.caps[:i]...)
		ns.caps = append(ns.caps, n)
		ns.caps = append(ns.caps, s.caps[i:]...)
	}
	a.st.settings = ns
	return settingResult(tenant)
}

func (a *applier) freqDeleteCap(c *fsmpb.FreqDeleteCap) *fsmpb.ApplyResult {
	s := a.st.settings
	i, found := s.capIndex(c.GetTenant())
	if !found {
		return settingFail(&fsmpb.ItemResult{Id: c.GetTenant(), Code: fsmpb.Code_CODE_NOT_FOUND, Reason: "frequency cap not found"})
	}
	ns := s.shallow()
	ns.caps = make([]*fsmpb.FreqCap, 0, len(s.caps)-1)
	ns.caps = append(ns.caps, s.caps[:i]...)
	ns.caps = append(ns.caps, s.caps[i+1:]...)
	a.st.settings = ns
	a.st.freq.dropTenant(c.GetTenant())
	return settingResult(c.GetTenant())
}

// freqRefuse decides whether r's tenant's cap forbids starting an attempt
// to its number now: if so it moves r (to PENDING when the cap allows it,
// or to FAILURE when that is past the TTL) and returns the item result.
func (a *applier) freqRefuse(r *fsmpb.Request) (*fsmpb.ItemResult, bool) {
	if len(a.st.settings.caps) == 0 {
		return nil, false
	}
	until := a.st.freqBlockedUntil(r.Tenant, r.Telnum, a.now)
	if until == 0 {
		return nil, false
	}
	if until >= r.ExpiresUnixMs {
		a.update(r, func(n *fsmpb.Request) {
			setProcessed(n, fsmpb.Result_FAILURE, ReasonFreqTTL)
			n.WaitReason = ""
		})
		return fail(r.Id, fsmpb.Code_CODE_FINISHED, "frequency cap holds the number past the TTL"), true
	}
	a.update(r, func(n *fsmpb.Request) {
		setPending(n, until)
		n.WaitReason = WaitFrequencyCap
	})
	return fail(r.Id, fsmpb.Code_CODE_INVALID_STATE, "frequency cap: next attempt to the number at %d", until), true
}

// freqRecord records a started attempt to r's number when its tenant has a
// cap.
func (a *applier) freqRecord(r *fsmpb.Request) {
	c := a.st.settings.capOf(r.Tenant)
	if c == nil {
		return
	}
	n, ok := SuppressionNumber(r.Telnum)
	if !ok {
		return
	}
	keep := max(int(c.GetMaxAttempts()), 1)
	var starts []int64
	if it, ok := a.st.freq.byNum.Get(freqItem{tenant: r.Tenant, num: n}); ok {
		starts = it.starts
	}
	if len(starts) >= keep {
		starts = starts[len(starts)-keep+1:]
	}
	ns := make([]int64, len(starts), len(starts)+1)
	copy(ns, starts)
	ns = append(ns, a.now)
	a.st.freq.put(freqItem{tenant: r.Tenant, num: n, starts: ns, drop: a.now + horizon(c)})
}

// freqEnd moves the recorded start of r's ending attempt (started at
// started) to the end, now: a call reaches the far end some time after
// its start is committed (the pacing slot, the send), so a gap measured
// from the commit could be shorter at the far end; measured from the
// previous call's end it cannot (the next call is committed after that
// end and sent after its commit). The period cap counts the moved entry
// at its end too, which only holds a number back longer.
func (a *applier) freqEnd(r *fsmpb.Request, started int64) {
	c := a.st.settings.capOf(r.Tenant)
	if c == nil || started == 0 || a.now <= started {
		return
	}
	n, ok := SuppressionNumber(r.Telnum)
	if !ok {
		return
	}
	it, ok := a.st.freq.byNum.Get(freqItem{tenant: r.Tenant, num: n})
	if !ok {
		return
	}
	i := slices.Index(it.starts, started)
	if i < 0 {
		return
	}
	ns := slices.Clone(it.starts)
	ns[i] = a.now
	slices.Sort(ns)
	a.st.freq.put(freqItem{tenant: r.Tenant, num: n, starts: ns, drop: max(it.drop, a.now+horizon(c))})
}

// Snapshot side.

// freqHistories returns the histories for a snapshot, by tenant and number.
func (l freqLog) histories() []*fsmpb.FreqHistory {
	out := make([]*fsmpb.FreqHistory, 0, l.byNum.Len())
	l.byNum.Ascend(func(it freqItem) bool {
		out = append(out, &fsmpb.FreqHistory{Tenant: it.tenant, Number: it.num, StartsUnixMs: it.starts, DropUnixMs: it.drop})
		return true
	})
	return out
}

// restoreFreq rebuilds the histories of a snapshot, which must be in
// strictly ascending (tenant, number) order as written.
func restoreFreq(hs []*fsmpb.FreqHistory) (freqLog, error) {
	l := newFreqLog()
	var prev *fsmpb.FreqHistory
	for i, h := range hs {
		if h.GetTenant() == "" || len(h.GetStartsUnixMs()) == 0 {
			return l, fmt.Errorf("frequency history %d: no tenant or no starts", i)
		}
		if prev != nil && cmp.Or(strings.Compare(h.GetTenant(), prev.GetTenant()), cmp.Compare(h.GetNumber(), prev.GetNumber())) <= 0 {
			return l, fmt.Errorf("frequency history %d: out of order", i)
		}
		prev = h
		l.put(freqItem{tenant: h.GetTenant(), num: h.GetNumber(), starts: h.GetStartsUnixMs(), drop: h.GetDropUnixMs()})
	}
	return l, nil
}

func freqCapTenant(c *fsmpb.FreqCap) string { return c.GetTenant() }
