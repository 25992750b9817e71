package fsm

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Suppression (do-not-call) lists: per tenant a dncList (dnclist.go), a
// sorted array of numbers (E.164 digits as an integer, 8 bytes each) with
// a small copy-on-write write buffer merged into it as it grows. A
// settings version shares its lists with readers and snapshots while
// Apply changes a copy (the array is shared, the buffer cloned in O(1)),
// so a single opt-out costs O(log n), not a copy of the list.

// SuppressionNumber is the key of a number on a suppression list: its
// digits (a leading '+' dropped) as an integer. ok is false for anything
// that is not 1-19 digits.
func SuppressionNumber(s string) (uint64, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "+")
	if s == "" || len(s) > 19 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// Suppressed reports whether number is on tenant's list and unexpired at
// nowUnixMs, and when its entry expires (0: never).
func (f *FSM) Suppressed(tenant, number string, nowUnixMs int64) (bool, int64) {
	n, ok := SuppressionNumber(number)
	if !ok {
		return false, 0
	}
	return f.view().settings.suppressed(tenant, n, nowUnixMs)
}

// SuppressionSize is the number of entries on tenant's list (expired ones
// included until removed).
func (f *FSM) SuppressionSize(tenant string) int {
	if l := f.view().settings.dnc[tenant]; l != nil {
		return l.Len()
	}
	return 0
}

func (s *settings) suppressed(tenant string, n uint64, now int64) (bool, int64) {
	l := s.dnc[tenant]
	if l == nil {
		return false, 0
	}
	e, ok := l.get(n)
	if !ok || (e.expires != 0 && e.expires <= now) {
		return false, 0
	}
	return true, e.expires
}

// withDNC returns a copy of s whose list of tenant is a copy that change
// modifies; an emptied list is dropped.
func (s *settings) withDNC(tenant string, change func(l *dncList)) *settings {
	n := s.shallow()
	n.dnc = maps.Clone(s.dnc)
	if n.dnc == nil {
		n.dnc = map[string]*dncList{}
	}
	var l *dncList
	if old := s.dnc[tenant]; old != nil {
		l = old.clone()
	} else {
		l = newDNCList()
	}
	change(l)
	l.maybeMerge()
	if l.Len() == 0 {
		delete(n.dnc, tenant)
	} else {
		n.dnc[tenant] = l
	}
	return n
}

func (a *applier) addSuppressions(c *fsmpb.AddSuppressions) *fsmpb.ApplyResult {
	ch := c.GetChunk()
	tenant := ch.GetTenant()
	if tenant == "" {
		return settingFail(fail("", fsmpb.Code_CODE_INVALID_STATE, "tenant is required"))
	}
	exp := ch.GetExpiresUnixMs()
	if len(exp) != 0 && len(exp) != len(ch.GetNumbers()) {
		return settingFail(fail(tenant, fsmpb.Code_CODE_INVALID_STATE, "%d expiries for %d numbers", len(exp), len(ch.GetNumbers())))
	}
	a.st.settings = a.st.settings.withDNC(tenant, func(l *dncList) {
		for i, n := range ch.GetNumbers() {
			var e int64
			if len(exp) > 0 {
				e = exp[i]
			}
			l.add(n, e)
		}
	})
	return settingResult(tenant)
}

func (a *applier) removeSuppressions(c *fsmpb.RemoveSuppressions) *fsmpb.ApplyResult {
	tenant := c.GetTenant()
	if a.st.settings.dnc[tenant] == nil {
		return settingFail(&fsmpb.ItemResult{Id: tenant, Code: fsmpb.Code_CODE_NOT_FOUND, Reason: "no suppression list"})
	}
	a.st.settings = a.st.settings.withDNC(tenant, func(l *dncList) {
		for _, n := range c.GetNumbers() {
			l.remove(n)
		}
	})
	return settingResult(tenant)
}

// dncChunkSize is the numbers per snapshot chunk.
const dncChunkSize = 1 << 16

// dncChunks returns the lists as snapshot chunks, by tenant then number.
func (s *settings) dncChunks() []*fsmpb.SuppressionChunk {
	tenants := make([]string, 0, len(s.dnc))
	for t := range s.dnc {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	var out []*fsmpb.SuppressionChunk
	for _, tn := range tenants {
		var cur *fsmpb.SuppressionChunk
		anyExp := false
		flush := func() {
			if cur != nil {
				if !anyExp {
					cur.ExpiresUnixMs = nil
				}
				out = append(out, cur)
			}
			cur, anyExp = nil, false
		}
		s.dnc[tn].ascend(func(e dncEntry) bool {
			if cur == nil {
				cur = &fsmpb.SuppressionChunk{Tenant: tn, Numbers: make([]uint64, 0, dncChunkSize), ExpiresUnixMs: make([]int64, 0, dncChunkSize)}
			}
			cur.Numbers = append(cur.Numbers, e.num)
			cur.ExpiresUnixMs = append(cur.ExpiresUnixMs, e.expires)
			anyExp = anyExp || e.expires != 0
			if len(cur.Numbers) == dncChunkSize {
				flush()
			}
			return true
		})
		flush()
	}
	return out
}

// restoreDNC rebuilds the lists from snapshot chunks, which must be in
// tenant then strictly ascending number order, as dncChunks writes them:
// each list's array is built directly, without a buffer.
func restoreDNC(chunks []*fsmpb.SuppressionChunk) (map[string]*dncList, error) {
	if len(chunks) == 0 {
		return nil, nil
	}
	out := map[string]*dncList{}
	prevTenant, prevNum := "", uint64(0)
	var cur *dncList
	for i, c := range chunks {
		tn := c.GetTenant()
		exp := c.GetExpiresUnixMs()
		switch {
		case tn == "" || tn < prevTenant:
			return nil, fmt.Errorf("suppression chunk %d: empty or out-of-order tenant %q", i, tn)
		case len(exp) != 0 && len(exp) != len(c.GetNumbers()):
			return nil, fmt.Errorf("suppression chunk %d: %d expiries for %d numbers", i, len(exp), len(c.GetNumbers()))
		}
		if tn != prevTenant || cur == nil {
			cur = newDNCList()
			out[tn] = cur
			prevNum = 0
		}
		for j, n := range c.GetNumbers() {
			if len(cur.base) > 0 && n <= prevNum {
				return nil, fmt.Errorf("suppression chunk %d: number %d not above %d", i, n, prevNum)
			}
			var e int64
			if len(exp) > 0 {
				e = exp[j]
			}
			cur.appendSorted(n, e)
			prevNum = n
		}
		prevTenant = tn
	}
	for _, l := range out {
		l.n = len(l.base)
		l.index()
	}
	return out, nil
}

// ReasonSuppressed is the result reason of a request ended because its
// number is on its tenant's suppression list.
const ReasonSuppressed = "Suppressed"

// isSuppressed reports whether r's number is listed and unexpired at the
// entry's time (deterministic: the leader stamped it).
func (a *applier) isSuppressed(r *fsmpb.Request) bool {
	if len(a.st.settings.dnc) == 0 {
		return false
	}
	n, ok := SuppressionNumber(r.Telnum)
	if !ok {
		return false
	}
	hit, _ := a.st.settings.suppressed(r.Tenant, n, a.now)
	return hit
}
