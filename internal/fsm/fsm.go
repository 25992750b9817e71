package fsm

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// defaultListLimit is the page size of List when ListQuery.Limit <= 0.
const defaultListLimit = 100

// Compile-time checks that FSM satisfies the raft interfaces.
var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// FSM is the replicated state machine. Apply, ApplyBatch, Snapshot and
// Restore are called by raft from one goroutine; the read methods may be
// called from any goroutine at any time.
type FSM struct {
	// writeMu serialises the mutating methods (raft already does, but tests
	// and future callers need not know), guards w and serialises publishing.
	writeMu sync.Mutex
	// w is the writer's version of the state, changed in place by Apply.
	w *state

	// cur is an immutable clone of w that readers and snapshots load
	// without locking. It is published lazily: stale says w has changed
	// since, and the first reader that finds it set publishes a new clone
	// (see view), so the copy-on-write cost is paid once per read that
	// follows a write, not once per batch.
	cur   atomic.Pointer[state]
	stale atomic.Bool

	count   atomic.Int64  // stored records, published with applied
	skipped atomic.Uint64 // entries skipped as unknown and ignorable (see decode)

	// applied is published after stale is set, so a reader that sees
	// AppliedIndex() >= i also sees every change up to entry i.
	applied atomic.Uint64

	waitMu sync.Mutex
	waitCh chan struct{} // closed and replaced whenever applied advances

	// eagerCreates makes ApplyBatch decode create entries rather than
	// store fresh records (fresh.go); tests compare the two.
	eagerCreates bool
}

// New returns an empty FSM.
func New() *FSM {
	f := &FSM{waitCh: make(chan struct{}), w: newState()}
	f.cur.Store(f.w.clone())
	return f
}

// view returns an immutable version of the state that includes every entry
// applied before the call.
func (f *FSM) view() *state {
	if f.stale.Load() {
		f.writeMu.Lock() // waits for a batch being applied
		f.publishLocked()
		f.writeMu.Unlock()
	}
	return f.cur.Load()
}

// publishLocked publishes a clone of w if cur is stale. writeMu must be held.
func (f *FSM) publishLocked() {
	if f.stale.Load() {
		f.cur.Store(f.w.clone())
		f.stale.Store(false)
	}
}

// Apply applies one committed log entry and returns its *fsmpb.ApplyResult
// (nil for entries that are not commands, and for unknown commands flagged
// ignore-unknown, which are skipped). It panics on any other entry it cannot
// understand: a replica that skipped it would silently diverge.
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries to the writer's version of the
// state in place; readers see them all at once afterwards. The results equal those of calling Apply for each entry
// in turn. Every entry is decoded before any is applied, so a batch with an
// entry that makes it panic changes nothing.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	if len(logs) == 0 {
		return nil
	}
	f.writeMu.Lock()
	defer f.writeMu.Unlock()

	cmds := make([]*fsmpb.Command, len(logs))
	var views []*createView // by entry, once there is one
	skipped := 0
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		if !f.eagerCreates {
			if v, ok := viewCreate(l); ok {
				if views == nil {
					views = make([]*createView, len(logs))
				}
				views[i] = &v
				continue
			}
		}
		var skip bool
		if cmds[i], skip = decode(l); skip {
			skipped++
		}
	}
	a := applier{st: f.w}
	out := make([]interface{}, len(logs))
	for i, cmd := range cmds {
		switch {
		case cmd != nil:
			out[i] = a.apply(logs[i].Index, cmd)
		case views != nil && views[i] != nil:
			a.index, a.now = logs[i].Index, views[i].now
			out[i] = a.createFresh(views[i])
		}
	}
	last := logs[len(logs)-1].Index
	f.w.applied = last
	f.stale.Store(true)
	f.count.Store(int64(f.w.count()))
	f.skipped.Add(uint64(skipped))
	f.setApplied(last)
	return out
}

// Skipped returns how many entries this replica skipped because their body
// is unknown to this binary and flagged ignore-unknown: more than 0 means
// a newer binary in the cluster uses commands this one cannot apply.
func (f *FSM) Skipped() uint64 { return f.skipped.Load() }

// setApplied publishes index and wakes WaitForIndex callers.
func (f *FSM) setApplied(index uint64) {
	f.waitMu.Lock()
	f.applied.Store(index)
	close(f.waitCh)
	f.waitCh = make(chan struct{})
	f.waitMu.Unlock()
}

// AppliedIndex returns the index of the last applied (or restored) entry.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// WaitForIndex blocks until AppliedIndex() >= index or ctx is done.
//
// Raft does not hand barrier or no-op entries to the FSM, so wait for the
// index of a command entry (ApplyFuture.Index), not raft's last index.
func (f *FSM) WaitForIndex(ctx context.Context, index uint64) error {
	for {
		f.waitMu.Lock()
		applied, ch := f.applied.Load(), f.waitCh
		f.waitMu.Unlock()
		if applied >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("fsm: waiting for index %d (applied %d): %w", index, applied, ctx.Err())
		}
	}
}

// Get returns the record with the given id. The record is shared and must
// not be modified.
func (f *FSM) Get(id string) (*fsmpb.Request, bool) {
	return f.view().get(id)
}

// StateOf returns the state of the record with the given id without
// reading the record (a fresh record is PENDING until its first change).
func (f *FSM) StateOf(id string) (fsmpb.State, bool) {
	return f.view().stateOf(id)
}

// Count returns the number of stored records in all states.
func (f *FSM) Count() int { return int(f.count.Load()) }

// ListQuery selects records of one tenant for List.
type ListQuery struct {
	Tenant     string      // required
	IVRProfile string      // "" = any
	State      fsmpb.State // STATE_UNSPECIFIED = any
	After      string      // paging token: only records with id > After
	Limit      int         // <= 0 means 100
}

// List returns up to q.Limit records of q.Tenant matching the filters, ordered
// by id (creation order). next is the last id returned when more records
// match, else "". Records are shared and must not be modified.
func (f *FSM) List(q ListQuery) (reqs []*fsmpb.Request, next string) {
	if q.Tenant == "" {
		return nil, ""
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	// One more than a page is read to tell whether another page follows.
	st := f.view()
	ids := st.listIDs(q.Tenant, q.IVRProfile, q.State, q.After, limit+1)
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	for _, id := range ids {
		reqs = append(reqs, st.mustGet(id))
	}
	return reqs, next
}

// Due returns up to limit records of (tenant, ivrProfile, state) in dialer
// priority order: earliest next retry, then least TTL remaining, then most
// attempts made, then id. Only waiting records (PENDING or INITIATED) are
// queued: other states return nil. limit <= 0 returns nil. It does not compare
// next_retry with the clock: the caller stops at the first record not yet
// due. Records are shared and must not be modified.
func (f *FSM) Due(tenant, ivrProfile string, state fsmpb.State, limit int) []*fsmpb.Request {
	var out []*fsmpb.Request
	st := f.view()
	st.scanQueue(tenant, ivrProfile, state, limit, func(it queueItem) {
		out = append(out, st.mustGet(it.id))
	})
	return out
}

// Queued is a waiting record's place in the dialer's queue: the fields
// Due orders by, as the queue index holds them.
type Queued struct {
	ID              string
	AttemptsMade    uint32
	NextRetryUnixMs int64
	ExpiresUnixMs   int64
}

// DueKeys is Due without the records: the queue entries, read from the
// index alone. A record kept fresh (fresh.go) is decoded on every read, so
// a caller that scans past records it will not take (the dialer reads past
// the ones it holds already) scans the keys and reads only the records it
// takes.
func (f *FSM) DueKeys(tenant, ivrProfile string, state fsmpb.State, limit int) []Queued {
	var out []Queued
	f.view().scanQueue(tenant, ivrProfile, state, limit, func(it queueItem) {
		out = append(out, Queued{ID: it.id, AttemptsMade: it.attempts, NextRetryUnixMs: it.nextRetry, ExpiresUnixMs: it.expires})
	})
	return out
}

// scanQueue calls fn for up to limit queue items of (tenant, profile,
// state) in order.
func (s *state) scanQueue(tenant, profile string, st fsmpb.State, limit int, fn func(queueItem)) {
	if limit <= 0 {
		return
	}
	// The smallest key of the (tenant, profile, state) range.
	first := queueItem{
		g: &group{tenant: tenant, profile: profile}, state: st,
		nextRetry: math.MinInt64, expires: math.MinInt64, attempts: math.MaxUint32,
	}
	n := 0
	s.queue.AscendGreaterOrEqual(first, func(it queueItem) bool {
		if !it.g.is(tenant, profile) || it.state != st {
			return false
		}
		fn(it)
		n++
		return n < limit
	})
}

// Profiles returns the number of the tenant's records in state per IVR
// profile (all states summed for STATE_UNSPECIFIED). Profiles without
// records are absent.
func (f *FSM) Profiles(tenant string, state fsmpb.State) map[string]int {
	out := make(map[string]int)
	f.view().counts.AscendGreaterOrEqual(countItem{tenant: tenant, state: state}, func(c countItem) bool {
		if c.tenant != tenant || (state != fsmpb.State_STATE_UNSPECIFIED && c.state != state) {
			return false
		}
		out[c.profile] += c.n
		return true
	})
	return out
}

// Fingerprint returns the sha256 of the deterministic encoding of r's client
// spec (tenant, token, ivr_profile, telnum, ani, notification_url,
// custom_data, cpd, max_attempts, ttl_ms, idempotency_key). The proposer
// computes it once and stores it in the command; Apply only compares the
// stored bytes, because deterministic marshalling is not guaranteed stable
// across protobuf library versions and replicas may run different binaries.
func Fingerprint(r *fsmpb.Request) []byte {
	var sum [sha256.Size]byte
	var f fingerprinter
	f.sum(r, &sum)
	return sum[:]
}

// SetFingerprints sets each record's Fingerprint, as Fingerprint computes
// it, reusing one spec message and one buffer for the batch and holding the
// sums in one array: a bulk create fingerprints every record on the node
// that receives it (per record, a message, a buffer and a sum allocated was
// 5% of that node's CPU in the bulk profile).
func SetFingerprints(recs []*fsmpb.Request) {
	sums := make([]byte, len(recs)*sha256.Size)
	var f fingerprinter
	for i, r := range recs {
		sum := (*[sha256.Size]byte)(sums[i*sha256.Size:])
		f.sum(r, sum)
		r.Fingerprint = sum[:len(sum):len(sum)]
	}
}

// fingerprinter holds what Fingerprint marshals, reused across records.
type fingerprinter struct {
	spec fsmpb.Request
	buf  []byte
}

func (f *fingerprinter) sum(r *fsmpb.Request, out *[sha256.Size]byte) {
	// Every field of the spec is set here for each record (the rest stay
	// zero), so nothing of the record before carries over.
	s := &f.spec
	s.Tenant = r.GetTenant()
	s.Token = r.GetToken()
	s.IvrProfile = r.GetIvrProfile()
	s.Telnum = r.GetTelnum()
	s.Ani = r.GetAni()
	s.NotificationUrl = r.GetNotificationUrl()
	s.CustomData = r.GetCustomData() // shared read-only: marshalling does not modify
	s.Cpd = r.GetCpd()
	s.MaxAttempts = r.GetMaxAttempts()
	s.TtlMs = r.GetTtlMs()
	s.IdempotencyKey = r.GetIdempotencyKey()
	s.TimeZone = r.GetTimeZone()
	// Marshalling fails only on invalid UTF-8, which Encode rejects too, so
	// such a request never reaches the log whatever is hashed here.
	b, _ := proto.MarshalOptions{Deterministic: true}.MarshalAppend(f.buf[:0], s)
	f.buf = b
	*out = sha256.Sum256(b)
	s.CustomData, s.Cpd = nil, nil // no reference kept past the call
}
