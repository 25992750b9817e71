package fsm

import (
	"cmp"
	"strings"

	"github.com/google/btree"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// btreeDegree is the degree of every tree: nodes hold up to 2*degree-1
// items. Small enough that copying a node on a copy-on-write path is cheap,
// large enough to keep the trees shallow.
const btreeDegree = 16

// Index items. Each holds the fields it is ordered by (copied out of the
// record, so comparisons touch only the node's memory) and the record. Items
// are values: a lookup builds its probe on the stack.

// idItem orders records by id (UUIDv7: creation order).
type idItem struct {
	id string
	r  *fsmpb.Request
}

// tenantItem orders (tenant, id): List by tenant.
type tenantItem struct {
	tenant, id string
	r          *fsmpb.Request
}

// tenantStateItem orders (tenant, state, id): List filtered by state.
type tenantStateItem struct {
	tenant string
	state  fsmpb.State
	id     string
	r      *fsmpb.Request
}

// tenantProfileItem orders (tenant, profile, id): List filtered by profile.
type tenantProfileItem struct {
	tenant, profile, id string
	r                   *fsmpb.Request
}

// tenantProfileStateItem orders (tenant, profile, state, id): List filtered
// by both.
type tenantProfileStateItem struct {
	tenant, profile string
	state           fsmpb.State
	id              string
	r               *fsmpb.Request
}

// idemItem orders (tenant, idempotency key); only records with a key have
// one. The pair is unique (Apply and Restore check it).
type idemItem struct {
	tenant, key string
	r           *fsmpb.Request
}

// queueItem is the dialer's priority order within (tenant, profile, state):
// earliest retry first, then least TTL remaining, then most attempts made,
// then oldest (id).
type queueItem struct {
	tenant, profile string
	state           fsmpb.State
	attempts        uint32
	nextRetry       int64
	expires         int64
	id              string
	r               *fsmpb.Request
}

// expiryItem orders records that wait for the dialer (PENDING or
// INITIATED) by (expires, id), so the dialer finds the ones whose TTL ran
// out without scanning the queues.
type expiryItem struct {
	expires int64
	id      string
	r       *fsmpb.Request
}

func lessExpiry(a, b expiryItem) bool {
	if a.expires != b.expires {
		return a.expires < b.expires
	}
	return a.id < b.id
}

// waiting reports whether r is in the expiry index.
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
}

// States compare as uint32, the order the previous (byte-key) indexes had,
// so even out-of-range values restored from a snapshot sort the same way.
func cmpState(a, b fsmpb.State) int { return cmp.Compare(uint32(a), uint32(b)) }

func lessID(a, b idItem) bool { return a.id < b.id }

func lessTenant(a, b tenantItem) bool {
	if a.tenant != b.tenant {
		return a.tenant < b.tenant
	}
	return a.id < b.id
}

func lessTenantState(a, b tenantStateItem) bool {
	if c := strings.Compare(a.tenant, b.tenant); c != 0 {
		return c < 0
	}
	if c := cmpState(a.state, b.state); c != 0 {
		return c < 0
	}
	return a.id < b.id
}

func lessTenantProfile(a, b tenantProfileItem) bool {
	if c := strings.Compare(a.tenant, b.tenant); c != 0 {
		return c < 0
	}
	if c := strings.Compare(a.profile, b.profile); c != 0 {
		return c < 0
	}
	return a.id < b.id
}

func lessTenantProfileState(a, b tenantProfileStateItem) bool {
	if c := strings.Compare(a.tenant, b.tenant); c != 0 {
		return c < 0
	}
	if c := strings.Compare(a.profile, b.profile); c != 0 {
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
	if c := strings.Compare(a.tenant, b.tenant); c != 0 {
		return c
	}
	if c := strings.Compare(a.profile, b.profile); c != 0 {
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

func queueKey(r *fsmpb.Request) queueItem {
	return queueItem{
		tenant: r.Tenant, profile: r.IvrProfile, state: r.State,
		attempts: r.AttemptsMade, nextRetry: r.NextRetryUnixMs, expires: r.ExpiresUnixMs,
		id: r.Id, r: r,
	}
}

// state is one version of the whole state machine: the records, their
// indexes and the counts. The writer (Apply, Restore) owns one version and
// mutates it in place; readers get immutable clones of it (see FSM).
type state struct {
	byID               *btree.BTreeG[idItem]
	tenant             *btree.BTreeG[tenantItem]
	tenantState        *btree.BTreeG[tenantStateItem]
	tenantProfile      *btree.BTreeG[tenantProfileItem]
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
		tenant:             btree.NewG(btreeDegree, lessTenant),
		tenantState:        btree.NewG(btreeDegree, lessTenantState),
		tenantProfile:      btree.NewG(btreeDegree, lessTenantProfile),
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
		tenant:             s.tenant.Clone(),
		tenantState:        s.tenantState.Clone(),
		tenantProfile:      s.tenantProfile.Clone(),
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
	return it.r, ok
}

func (s *state) getByKey(tenant, key string) (*fsmpb.Request, bool) {
	it, ok := s.idem.Get(idemItem{tenant: tenant, key: key})
	return it.r, ok
}

// insert adds r, which must not be stored yet (no record with its id or its
// idempotency key), to every index.
func (s *state) insert(r *fsmpb.Request) {
	s.byID.ReplaceOrInsert(idItem{id: r.Id, r: r})
	s.tenant.ReplaceOrInsert(tenantItem{tenant: r.Tenant, id: r.Id, r: r})
	s.tenantState.ReplaceOrInsert(tenantStateItem{tenant: r.Tenant, state: r.State, id: r.Id, r: r})
	s.tenantProfile.ReplaceOrInsert(tenantProfileItem{tenant: r.Tenant, profile: r.IvrProfile, id: r.Id, r: r})
	s.tenantProfileState.ReplaceOrInsert(tenantProfileStateItem{tenant: r.Tenant, profile: r.IvrProfile, state: r.State, id: r.Id, r: r})
	if r.IdempotencyKey != "" {
		s.idem.ReplaceOrInsert(idemItem{tenant: r.Tenant, key: r.IdempotencyKey, r: r})
	}
	s.queue.ReplaceOrInsert(queueKey(r))
	if waiting(r) {
		s.expiry.ReplaceOrInsert(expiryItem{expires: r.ExpiresUnixMs, id: r.Id, r: r})
	}
	s.adjust(r.Tenant, r.IvrProfile, r.State, 1)
}

// replace stores n in place of old, the stored record with the same id,
// tenant, profile and idempotency key.
func (s *state) replace(old, n *fsmpb.Request) {
	s.byID.ReplaceOrInsert(idItem{id: n.Id, r: n})
	s.tenant.ReplaceOrInsert(tenantItem{tenant: n.Tenant, id: n.Id, r: n})
	s.tenantProfile.ReplaceOrInsert(tenantProfileItem{tenant: n.Tenant, profile: n.IvrProfile, id: n.Id, r: n})
	if n.IdempotencyKey != "" {
		s.idem.ReplaceOrInsert(idemItem{tenant: n.Tenant, key: n.IdempotencyKey, r: n})
	}
	if n.State != old.State {
		s.tenantState.Delete(tenantStateItem{tenant: old.Tenant, state: old.State, id: old.Id})
		s.tenantProfileState.Delete(tenantProfileStateItem{tenant: old.Tenant, profile: old.IvrProfile, state: old.State, id: old.Id})
		s.adjust(old.Tenant, old.IvrProfile, old.State, -1)
		s.adjust(n.Tenant, n.IvrProfile, n.State, 1)
	}
	s.tenantState.ReplaceOrInsert(tenantStateItem{tenant: n.Tenant, state: n.State, id: n.Id, r: n})
	s.tenantProfileState.ReplaceOrInsert(tenantProfileStateItem{tenant: n.Tenant, profile: n.IvrProfile, state: n.State, id: n.Id, r: n})
	oldKey, newKey := queueKey(old), queueKey(n)
	if cmpQueue(oldKey, newKey) != 0 {
		s.queue.Delete(oldKey)
	}
	s.queue.ReplaceOrInsert(newKey)
	if waiting(old) && (!waiting(n) || old.ExpiresUnixMs != n.ExpiresUnixMs) {
		s.expiry.Delete(expiryItem{expires: old.ExpiresUnixMs, id: old.Id})
	}
	if waiting(n) {
		s.expiry.ReplaceOrInsert(expiryItem{expires: n.ExpiresUnixMs, id: n.Id, r: n})
	}
}

// remove deletes the stored record r from every index.
func (s *state) remove(r *fsmpb.Request) {
	s.byID.Delete(idItem{id: r.Id})
	s.tenant.Delete(tenantItem{tenant: r.Tenant, id: r.Id})
	s.tenantState.Delete(tenantStateItem{tenant: r.Tenant, state: r.State, id: r.Id})
	s.tenantProfile.Delete(tenantProfileItem{tenant: r.Tenant, profile: r.IvrProfile, id: r.Id})
	s.tenantProfileState.Delete(tenantProfileStateItem{tenant: r.Tenant, profile: r.IvrProfile, state: r.State, id: r.Id})
	if r.IdempotencyKey != "" {
		s.idem.Delete(idemItem{tenant: r.Tenant, key: r.IdempotencyKey})
	}
	s.queue.Delete(queueKey(r))
	if waiting(r) {
		s.expiry.Delete(expiryItem{expires: r.ExpiresUnixMs, id: r.Id})
	}
	s.adjust(r.Tenant, r.IvrProfile, r.State, -1)
}

// adjust adds delta to the (tenant, state, profile) count, dropping items
// that reach zero.
func (s *state) adjust(tenant, profile string, st fsmpb.State, delta int) {
	key := countItem{tenant: tenant, state: st, profile: profile}
	if c, ok := s.counts.Get(key); ok {
		key.n = c.n
	}
	key.n += delta
	if key.n == 0 {
		s.counts.Delete(key)
	} else {
		s.counts.ReplaceOrInsert(key)
	}
}
