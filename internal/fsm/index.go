package fsm

import (
	"cmp"
	"strings"

	"github.com/google/btree"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// btreeDegree is the degree of every tree: nodes hold up to 2*degree-1
// items. Small enough that copying a node on a copy-on-write path is cheap,
// large enough to keep the trees shallow. 32 against 16 (BENCHMARKS.md,
// issue 18, session 8): 9-20% less CPU per created record, 6% less heap
// per record, and no difference beyond noise in the attempt cycle with a
// read after every entry (the copy-on-write case).
const btreeDegree = 32

// Index items. Each holds the fields it is ordered by (copied out of the
// record, so comparisons touch only the node's memory). Only byID points
// to the record: the secondary indexes hold keys and the id, so an update
// that changes none of an index's key fields (a notification mark, a
// result that keeps the state) does not touch that index at all, and reads
// resolve ids through byID. Items are values: a lookup builds its probe on
// the stack.

// idItem orders records by id (UUIDv7: creation order).
type idItem struct {
	id string
	// Either r, the record, or f, the record still in its create entry's
	// encoding (see fresh.go); record returns it either way.
	r *fsmpb.Request
	f *fresh
}

// tenantProfileStateItem orders (tenant, profile, state, id): every List
// and InState page, merged over the (profile, state) ranges that match
// (see state.listIDs).
type tenantProfileStateItem struct {
	g     *group
	state fsmpb.State
	id    string
}

// group is a (tenant, IVR profile) pair. The index items of a group's
// records point to one group rather than each holding both strings: an
// item is 24 bytes smaller (a tree insert moves and allocates less), and
// items of one group compare equal by pointer. Items may point to
// different but equal groups (a lookup's probe, a pair met again after its
// count dropped to zero), which compare by their strings.
type group struct{ tenant, profile string }

func cmpGroup(a, b *group) int {
	if a == b {
		return 0
	}
	if c := strings.Compare(a.tenant, b.tenant); c != 0 {
		return c
	}
	return strings.Compare(a.profile, b.profile)
}

// is reports whether g is the pair (tenant, profile).
func (g *group) is(tenant, profile string) bool { return g.tenant == tenant && g.profile == profile }

// idemItem orders (tenant, idempotency key); only records with a key have
// one. The pair is unique (Apply and Restore check it).
type idemItem struct {
	tenant, key, id string
}

// queueItem is the dialer's priority order within (tenant, profile, state):
// earliest retry first, then least TTL remaining, then most attempts made,
// then oldest (id). Only waiting records (PENDING or INITIATED) are in it:
// the dialer takes nothing else.
type queueItem struct {
	g         *group
	state     fsmpb.State
	attempts  uint32
	nextRetry int64
	expires   int64
	id        string
}

// expiryItem orders records that wait for the dialer (PENDING or
// INITIATED) by (expires, id), so the dialer finds the ones whose TTL ran
// out without scanning the queues.
type expiryItem struct {
	expires int64
	id      string
}

func lessExpiry(a, b expiryItem) bool {
	if a.expires != b.expires {
		return a.expires < b.expires
	}
	return a.id < b.id
}

// waiting reports whether r is in the queue and expiry indexes.
func waiting(r *fsmpb.Request) bool {
	return r.State == fsmpb.State_PENDING || r.State == fsmpb.State_INITIATED
}

// countItem is how many records of a tenant are in a state for an IVR
// profile, so Profiles costs O(profiles) rather than O(records). Items with
// n == 0 are removed.
type countItem struct {
	tenant  string
	state   fsmpb.State
	profile string
	n       int
	// g is the group the index items of these records share, if they
	// were stored after this item existed (see state.group).
	g *group
}

// States compare as uint32, the order the previous (byte-key) indexes had,
// so even out-of-range values restored from a snapshot sort the same way.
func cmpState(a, b fsmpb.State) int { return cmp.Compare(uint32(a), uint32(b)) }

func lessID(a, b idItem) bool { return a.id < b.id }

func lessTenantProfileState(a, b tenantProfileStateItem) bool {
	if c := cmpGroup(a.g, b.g); c != 0 {
		return c < 0
	}
	if c := cmpState(a.state, b.state); c != 0 {
		return c < 0
	}
	return a.id < b.id
}

func lessIdem(a, b idemItem) bool {
	if a.tenant != b.tenant {
		return a.tenant < b.tenant
	}
	return a.key < b.key
}

func cmpQueue(a, b queueItem) int {
	if c := cmpGroup(a.g, b.g); c != 0 {
		return c
	}
	if c := cmpState(a.state, b.state); c != 0 {
		return c
	}
	if a.nextRetry != b.nextRetry {
		return cmp.Compare(a.nextRetry, b.nextRetry)
	}
	if a.expires != b.expires {
		return cmp.Compare(a.expires, b.expires)
	}
	if a.attempts != b.attempts {
		return cmp.Compare(b.attempts, a.attempts) // descending
	}
	return strings.Compare(a.id, b.id)
}

func lessQueue(a, b queueItem) bool { return cmpQueue(a, b) < 0 }

func lessCount(a, b countItem) bool {
	if c := strings.Compare(a.tenant, b.tenant); c != 0 {
		return c < 0
	}
	if c := cmpState(a.state, b.state); c != 0 {
		return c < 0
	}
	return a.profile < b.profile
}

func queueKey(r *fsmpb.Request, g *group) queueItem {
	return queueItem{
		g: g, state: r.State,
		attempts: r.AttemptsMade, nextRetry: r.NextRetryUnixMs, expires: r.ExpiresUnixMs,
		id: r.Id,
	}
}

// state is one version of the whole state machine: the records, their
// indexes and the counts. The writer (Apply, Restore) owns one version and
// mutates it in place; readers get immutable clones of it (see FSM).
type state struct {
	byID               *btree.BTreeG[idItem]
	tenantProfileState *btree.BTreeG[tenantProfileStateItem]
	idem               *btree.BTreeG[idemItem]
	queue              *btree.BTreeG[queueItem]
	counts             *btree.BTreeG[countItem]
	expiry             *btree.BTreeG[expiryItem]

	// settings is immutable and replaced, never modified (see settings).
	settings *settings
	// freq is the recent attempt starts of capped tenants (freq.go).
	freq freqLog

	applied uint64 // index of the last applied (or restored) entry
}

func newState() *state {
	return &state{
		byID:               btree.NewG(btreeDegree, lessID),
		tenantProfileState: btree.NewG(btreeDegree, lessTenantProfileState),
		idem:               btree.NewG(btreeDegree, lessIdem),
		queue:              btree.NewG(btreeDegree, lessQueue),
		counts:             btree.NewG(btreeDegree, lessCount),
		expiry:             btree.NewG(btreeDegree, lessExpiry),
		settings:           emptySettings,
		freq:               newFreqLog(),
	}
}

// clone returns a copy of s in O(1). Both share their nodes copy-on-write:
// later writes to s copy the nodes they touch and never change the clone.
// Clone modifies s itself (its copy-on-write context), so only s's owner may
// call it.
func (s *state) clone() *state {
	return &state{
		byID:               s.byID.Clone(),
		tenantProfileState: s.tenantProfileState.Clone(),
		idem:               s.idem.Clone(),
		queue:              s.queue.Clone(),
		counts:             s.counts.Clone(),
		expiry:             s.expiry.Clone(),
		settings:           s.settings,
		freq:               s.freq.clone(),
		applied:            s.applied,
	}
}

// count returns the number of stored records.
func (s *state) count() int { return s.byID.Len() }

func (s *state) get(id string) (*fsmpb.Request, bool) {
	if id == "" {
		return nil, false
	}
	it, ok := s.byID.Get(idItem{id: id})
	if !ok {
		return nil, false
	}
	return it.record(), true
}

func (s *state) stateOf(id string) (fsmpb.State, bool) {
	it, ok := s.byID.Get(idItem{id: id})
	switch {
	case !ok:
		return fsmpb.State_STATE_UNSPECIFIED, false
	case it.f != nil:
		return fsmpb.State_PENDING, true // as its create stored it
	}
	return it.r.State, true
}

// mustGet returns the record of an id taken from a secondary index, which
// always has one.
func (s *state) mustGet(id string) *fsmpb.Request {
	it, _ := s.byID.Get(idItem{id: id})
	return it.record()
}

// insertNew starts storing it, the item of a record not stored yet whose
// tenant and idempotency key (if any) are given, unless a stored record
// holds its (tenant, key) or its id: then it changes nothing and returns
// that record's item, found, and whether it was found by the key.
// Otherwise it is in the id and idempotency indexes, and the caller
// completes the insert with insertKeys or undoes it with dropNew. Each of
// the two trees is descended once, where a lookup and then an insert
// would descend it twice: the insert goes first and is taken back when it
// replaced a record.
func (s *state) insertNew(it idItem, tenant, key string) (prev idItem, found, byKey bool) {
	if key != "" {
		if old, found := s.idem.ReplaceOrInsert(idemItem{tenant: tenant, key: key, id: it.id}); found {
			if p, ok := s.byID.Get(idItem{id: old.id}); ok {
				s.idem.ReplaceOrInsert(old)
				return p, true, true
			}
			// A key without its record cannot be stored (Apply and
			// Restore store and remove both together); were it, the key
			// would be free as for a lookup, and r's item replaces it.
		}
	}
	if old, found := s.byID.ReplaceOrInsert(it); found {
		s.byID.ReplaceOrInsert(old)
		if key != "" {
			s.idem.Delete(idemItem{tenant: tenant, key: key})
		}
		return old, true, false
	}
	return idItem{}, false, false
}

// dropNew takes the record of id, just added by insertNew, out of the
// indexes again.
func (s *state) dropNew(id, tenant, key string) {
	s.byID.Delete(idItem{id: id})
	if key != "" {
		s.idem.Delete(idemItem{tenant: tenant, key: key})
	}
}

// insertKeys adds a record, in the id and idempotency indexes already,
// to the others and counts it: q is its queue key (every other index's key
// fields are in it), and waiting whether it waits for the dialer.
func (s *state) insertKeys(q queueItem, waiting bool) {
	s.insertSecondary(q, waiting)
	s.adjust(q.g, q.state, 1)
}

// insertSecondary adds a record's items to the (tenant, profile, state)
// index and, if it is waiting, to the queue and expiry indexes.
func (s *state) insertSecondary(q queueItem, waiting bool) {
	s.tenantProfileState.ReplaceOrInsert(tenantProfileStateItem{g: q.g, state: q.state, id: q.id})
	if waiting {
		s.queue.ReplaceOrInsert(q)
		s.expiry.ReplaceOrInsert(expiryItem{expires: q.expires, id: q.id})
	}
}

// group returns the group of (tenant, profile) for a record in state st:
// the one the count item of (tenant, st, profile) holds, when there is one,
// else a new one. A record that takes the group's strings keeps no copies
// of its own, and index comparisons of its items with the other items of
// the group stop at the pointer.
func (s *state) group(tenant, profile string, st fsmpb.State) *group {
	if c, ok := s.counts.Get(countItem{tenant: tenant, state: st, profile: profile}); ok && c.g != nil {
		return c.g
	}
	return &group{tenant: tenant, profile: profile}
}

// replace stores n in place of old, the stored record with the same id,
// tenant, profile and idempotency key. Only the indexes whose key fields
// changed are touched.
func (s *state) replace(old, n *fsmpb.Request) {
	s.byID.ReplaceOrInsert(idItem{id: n.Id, r: n})
	g := s.group(old.Tenant, old.IvrProfile, old.State)
	if n.State != old.State {
		s.tenantProfileState.Delete(tenantProfileStateItem{g: g, state: old.State, id: old.Id})
		s.tenantProfileState.ReplaceOrInsert(tenantProfileStateItem{g: g, state: n.State, id: n.Id})
		s.adjust(g, old.State, -1)
		s.adjust(g, n.State, 1)
	}
	wasWaiting, isWaiting := waiting(old), waiting(n)
	oldKey, newKey := queueKey(old, g), queueKey(n, g)
	if wasWaiting && (!isWaiting || oldKey != newKey) {
		s.queue.Delete(oldKey)
	}
	if isWaiting && (!wasWaiting || oldKey != newKey) {
		s.queue.ReplaceOrInsert(newKey)
	}
	if wasWaiting && (!isWaiting || old.ExpiresUnixMs != n.ExpiresUnixMs) {
		s.expiry.Delete(expiryItem{expires: old.ExpiresUnixMs, id: old.Id})
	}
	if isWaiting && (!wasWaiting || old.ExpiresUnixMs != n.ExpiresUnixMs) {
		s.expiry.ReplaceOrInsert(expiryItem{expires: n.ExpiresUnixMs, id: n.Id})
	}
}

// remove deletes the stored record r from every index.
func (s *state) remove(r *fsmpb.Request) {
	s.byID.Delete(idItem{id: r.Id})
	g := s.group(r.Tenant, r.IvrProfile, r.State)
	s.tenantProfileState.Delete(tenantProfileStateItem{g: g, state: r.State, id: r.Id})
	if r.IdempotencyKey != "" {
		s.idem.Delete(idemItem{tenant: r.Tenant, key: r.IdempotencyKey})
	}
	if waiting(r) {
		s.queue.Delete(queueKey(r, g))
		s.expiry.Delete(expiryItem{expires: r.ExpiresUnixMs, id: r.Id})
	}
	s.adjust(g, r.State, -1)
}

// profileState is one (profile, state) range of the tenant's records in
// tenantProfileState.
type profileState struct {
	profile string
	state   fsmpb.State
}

// ranges returns the (profile, state) ranges of the tenant's records of
// profile ("" = any) in state (STATE_UNSPECIFIED = any). Unless both are
// given, only the ranges that hold records are returned, from the counts.
func (s *state) ranges(tenant, profile string, state fsmpb.State) []profileState {
	if profile != "" && state != fsmpb.State_STATE_UNSPECIFIED {
		return []profileState{{profile, state}}
	}
	var out []profileState
	// The counts order (tenant, state, profile): a given state is one run.
	s.counts.AscendGreaterOrEqual(countItem{tenant: tenant, state: state}, func(c countItem) bool {
		if c.tenant != tenant || (state != fsmpb.State_STATE_UNSPECIFIED && c.state != state) {
			return false
		}
		if profile == "" || c.profile == profile {
			out = append(out, profileState{c.profile, c.state})
		}
		return true
	})
	return out
}

// listIDs returns, in id order, up to n ids greater than after of the
// tenant's records of profile ("" = any) in state (STATE_UNSPECIFIED =
// any), merged from the matching (profile, state) ranges of
// tenantProfileState: O(ranges × n) at most. Indexes by tenant alone or by
// (tenant, profile) would cost every create and purge one more tree insert
// or delete, for reads that are paged and the states are few.
func (s *state) listIDs(tenant, profile string, state fsmpb.State, after string, n int) []string {
	var ids, run, merged []string
	for _, r := range s.ranges(tenant, profile, state) {
		run = run[:0]
		probe := tenantProfileStateItem{g: &group{tenant: tenant, profile: r.profile}, state: r.state, id: after}
		s.tenantProfileState.AscendGreaterOrEqual(probe, func(it tenantProfileStateItem) bool {
			if !it.g.is(tenant, r.profile) || it.state != r.state {
				return false
			}
			// With n ids held, only a smaller one can still be on the page.
			if len(ids) == n && it.id > ids[n-1] {
				return false
			}
			if it.id != after {
				run = append(run, it.id)
			}
			return len(run) < n
		})
		if len(ids) == 0 {
			ids, run = run, nil // most pages have one range
			continue
		}
		merged = mergeIDs(merged[:0], ids, run, n)
		ids, merged = merged, ids
	}
	return ids
}

// mergeIDs appends to dst the up to n smallest ids of a and b, which are
// ascending and disjoint.
func mergeIDs(dst, a, b []string, n int) []string {
	for len(dst) < n && (len(a) > 0 || len(b) > 0) {
		if len(b) == 0 || len(a) > 0 && a[0] < b[0] {
			dst, a = append(dst, a[0]), a[1:]
		} else {
			dst, b = append(dst, b[0]), b[1:]
		}
	}
	return dst
}

// adjust adds delta to the count of g's records in state st, dropping
// items that reach zero. A new item keeps g (see group).
func (s *state) adjust(g *group, st fsmpb.State, delta int) {
	key := countItem{tenant: g.tenant, state: st, profile: g.profile, g: g}
	if c, ok := s.counts.Get(key); ok {
		key = c // its strings and group
	}
	key.n += delta
	if key.n == 0 {
		s.counts.Delete(key)
	} else {
		s.counts.ReplaceOrInsert(key)
	}
}
