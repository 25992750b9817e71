package fsm

import (
	"slices"

	"github.com/google/btree"
)

// dncList is one tenant's suppression list: a sorted array of numbers
// (8 bytes each; a parallel array of expiries only once an entry has one)
// and a write buffer, a small B-tree of the changes since the array was
// last rebuilt (additions and re-additions with their expiry, and
// removals of numbers in the array). A lookup asks the buffer, then
// binary-searches the array. The buffer is merged into a new array when
// it outgrows max(dncMinBuffer, len(array)/dncBufferShare), so a load costs
// O(1) amortised copies per number and the memory stays near 8 bytes per
// number.
//
// Copy-on-write: the arrays are never modified once shared; clone shares
// them and clones the buffer in O(1) (btree.Clone), so readers and
// snapshots keep their version while Apply changes a copy.
type dncList struct {
	base []uint64 // ascending, unique
	exp  []int64  // parallel to base (unix ms; 0: never), nil when none expire
	// idx is every dncBlock-th number of base: a lookup binary-searches
	// it (small enough to stay in cache) and then one block of base,
	// instead of touching a cache line per step across all of base.
	idx []uint64
	buf *btree.BTreeG[dncEntry]
	n   int // numbers listed (expired ones included until removed)
}

// dncEntry is a number of a list: in the buffer, del marks a removal of a
// number of the array.
type dncEntry struct {
	num     uint64
	expires int64 // unix ms; 0: never
	del     bool
}

func dncLess(a, b dncEntry) bool { return a.num < b.num }

const (
	dncBlock       = 64
	dncDegree      = 32
	dncMinBuffer   = 1 << 16
	dncBufferShare = 16
)

func newDNCList() *dncList { return &dncList{buf: btree.NewG(dncDegree, dncLess)} }

// Len is the number of numbers listed.
func (l *dncList) Len() int { return l.n }

// clone returns a copy that may be changed without changing l.
func (l *dncList) clone() *dncList {
	return &dncList{base: l.base, exp: l.exp, idx: l.idx, buf: l.buf.Clone(), n: l.n}
}

// find returns n's position in base, if there.
func (l *dncList) find(n uint64) (int, bool) {
	if len(l.idx) == 0 {
		return slices.BinarySearch(l.base, n)
	}
	// The block whose first number is the last one <= n.
	b, found := slices.BinarySearch(l.idx, n)
	if found {
		return b * dncBlock, true
	}
	if b == 0 {
		return 0, false
	}
	lo := (b - 1) * dncBlock
	i, ok := slices.BinarySearch(l.base[lo:min(lo+dncBlock, len(l.base))], n)
	return lo + i, ok
}

// index rebuilds idx from base.
func (l *dncList) index() {
	l.idx = make([]uint64, 0, (len(l.base)+dncBlock-1)/dncBlock)
	for i := 0; i < len(l.base); i += dncBlock {
		l.idx = append(l.idx, l.base[i])
	}
}

// get returns n's entry if n is listed.
func (l *dncList) get(n uint64) (dncEntry, bool) {
	if l.buf.Len() > 0 {
		if e, ok := l.buf.Get(dncEntry{num: n}); ok {
			return e, !e.del
		}
	}
	i, ok := l.find(n)
	if !ok {
		return dncEntry{}, false
	}
	e := dncEntry{num: n}
	if l.exp != nil {
		e.expires = l.exp[i]
	}
	return e, true
}

// add lists n (or replaces its expiry).
func (l *dncList) add(n uint64, expires int64) {
	if _, ok := l.get(n); !ok {
		l.n++
	}
	l.buf.ReplaceOrInsert(dncEntry{num: n, expires: expires})
}

// remove unlists n.
func (l *dncList) remove(n uint64) {
	if _, ok := l.get(n); !ok {
		return
	}
	l.n--
	if _, inBase := l.find(n); inBase {
		l.buf.ReplaceOrInsert(dncEntry{num: n, del: true})
	} else {
		l.buf.Delete(dncEntry{num: n})
	}
}

// appendSorted appends n, above every number of the array, to the array
// (restore; the buffer must be empty and l not shared).
func (l *dncList) appendSorted(n uint64, expires int64) {
	if expires != 0 && l.exp == nil {
		l.exp = make([]int64, len(l.base), cap(l.base))
	}
	l.base = append(l.base, n)
	if l.exp != nil {
		l.exp = append(l.exp, expires)
	}
}

// maybeMerge rebuilds the array once the buffer has outgrown its share.
func (l *dncList) maybeMerge() {
	if l.buf.Len() > max(dncMinBuffer, len(l.base)/dncBufferShare) {
		l.merge()
	}
}

// merge folds the buffer into a new array (the old one may be shared).
func (l *dncList) merge() {
	base := make([]uint64, 0, l.n)
	var exp []int64
	anyExp := false
	l.ascend(func(e dncEntry) bool {
		anyExp = e.expires != 0
		return !anyExp // stop at the first expiry
	})
	if anyExp {
		exp = make([]int64, 0, l.n)
	}
	l.ascend(func(e dncEntry) bool {
		base = append(base, e.num)
		if anyExp {
			exp = append(exp, e.expires)
		}
		return true
	})
	l.base, l.exp, l.buf = base, exp, btree.NewG(dncDegree, dncLess)
	l.index()
}

// ascend calls fn for every listed number in ascending order until it
// returns false: the array and the buffer merged.
func (l *dncList) ascend(fn func(e dncEntry) bool) {
	i := 0
	emitBase := func(upTo uint64, inclusive bool) bool {
		for ; i < len(l.base) && (l.base[i] < upTo || (inclusive && l.base[i] == upTo)); i++ {
			e := dncEntry{num: l.base[i]}
			if l.exp != nil {
				e.expires = l.exp[i]
			}
			if !fn(e) {
				return false
			}
		}
		return true
	}
	ok := true
	l.buf.Ascend(func(b dncEntry) bool {
		if !emitBase(b.num, false) {
			ok = false
			return false
		}
		if i < len(l.base) && l.base[i] == b.num {
			i++ // replaced or removed by the buffer
		}
		if !b.del && !fn(dncEntry{num: b.num, expires: b.expires}) {
			ok = false
			return false
		}
		return true
	})
	if ok {
		emitBase(^uint64(0), true)
	}
}
