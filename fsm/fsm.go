package fsm

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/fsm/fsmpb"
)

// CommandVersion is the newest Command envelope version this binary applies.
const CommandVersion = 1

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
	// and future callers need not know) and makes Snapshot see a memdb
	// version and applied index that belong together.
	writeMu sync.Mutex

	// db is swapped wholesale by Restore; readers load it once per call and
	// read from a txn on it, which is an immutable version.
	db    atomic.Pointer[memdb.MemDB]
	count atomic.Int64 // stored records, published after each commit

	// applied is published after the memdb commit, so a reader that sees
	// AppliedIndex() >= i also sees every change up to entry i.
	applied atomic.Uint64

	waitMu sync.Mutex
	waitCh chan struct{} // closed and replaced whenever applied advances
}

// New returns an empty FSM.
func New() *FSM {
	f := &FSM{waitCh: make(chan struct{})}
	f.db.Store(newDB())
	return f
}

func newDB() *memdb.MemDB {
	db, err := memdb.NewMemDB(schema)
	if err != nil {
		// The schema is validated in init; this cannot happen.
		panic(fmt.Sprintf("fsm: creating memdb: %v", err))
	}
	return db
}

// Apply applies one committed log entry and returns its *fsmpb.ApplyResult
// (nil for entries that are not commands). It panics if the entry cannot be
// understood: a replica that skipped it would silently diverge.
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in one memdb write transaction. The
// results equal those of calling Apply for each entry in turn.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	if len(logs) == 0 {
		return nil
	}
	f.writeMu.Lock()
	defer f.writeMu.Unlock()

	txn := f.db.Load().Txn(true)
	defer txn.Abort() // no-op after Commit; releases the write lock on panic

	a := applier{txn: txn, count: f.count.Load()}
	out := make([]interface{}, len(logs))
	last := f.applied.Load()
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			out[i] = a.apply(l)
		}
		last = l.Index
	}
	txn.Commit()
	f.count.Store(a.count)
	f.setApplied(last)
	return out
}

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

func (f *FSM) readTxn() *memdb.Txn { return f.db.Load().Txn(false) }

// Get returns the record with the given id. The record is shared and must
// not be modified.
func (f *FSM) Get(id string) (*fsmpb.Request, bool) {
	if id == "" {
		return nil, false
	}
	return getRequest(f.readTxn(), id)
}

func getRequest(txn *memdb.Txn, id string) (*fsmpb.Request, bool) {
	raw, err := txn.First(tableRequests, indexID, id)
	if err != nil {
		// Only possible with a broken indexer, i.e. a programming error.
		panic(fmt.Sprintf("fsm: lookup by id: %v", err))
	}
	if raw == nil {
		return nil, false
	}
	return raw.(*fsmpb.Request), true
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
	// Each filter combination has an index ending in the id, so a page
	// costs O(limit) however sparse the matches are.
	var index string
	args := []interface{}{q.Tenant}
	switch {
	case q.IVRProfile != "" && q.State != fsmpb.State_STATE_UNSPECIFIED:
		index = indexTenantProfileState
		args = append(args, q.IVRProfile, q.State)
	case q.IVRProfile != "":
		index = indexTenantProfile
		args = append(args, q.IVRProfile)
	case q.State != fsmpb.State_STATE_UNSPECIFIED:
		index = indexTenantState
		args = append(args, q.State)
	default:
		index = indexTenant
	}
	txn := f.readTxn()
	var (
		it  memdb.ResultIterator
		err error
	)
	if q.After != "" {
		it, err = txn.LowerBound(tableRequests, index, append(args, q.After)...)
	} else {
		it, err = txn.Get(tableRequests, index+"_prefix", args...)
	}
	if err != nil {
		panic(fmt.Sprintf("fsm: list: %v", err))
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		r := raw.(*fsmpb.Request)
		if !matches(r, q) {
			break // LowerBound runs past the prefix; the index is sorted.
		}
		if r.Id <= q.After {
			continue
		}
		if len(reqs) == limit {
			return reqs, reqs[len(reqs)-1].Id
		}
		reqs = append(reqs, r)
	}
	return reqs, ""
}

func matches(r *fsmpb.Request, q ListQuery) bool {
	return r.Tenant == q.Tenant &&
		(q.IVRProfile == "" || r.IvrProfile == q.IVRProfile) &&
		(q.State == fsmpb.State_STATE_UNSPECIFIED || r.State == q.State)
}

// Due returns up to limit records of (tenant, ivrProfile, state) in dialer
// priority order: earliest next retry, then least TTL remaining, then most
// attempts made, then id. limit <= 0 returns nil. It does not compare
// next_retry with the clock: the caller stops at the first record not yet
// due. Records are shared and must not be modified.
func (f *FSM) Due(tenant, ivrProfile string, state fsmpb.State, limit int) []*fsmpb.Request {
	if limit <= 0 {
		return nil
	}
	it, err := f.readTxn().Get(tableRequests, indexQueue+"_prefix", tenant, ivrProfile, state)
	if err != nil {
		panic(fmt.Sprintf("fsm: due: %v", err))
	}
	var out []*fsmpb.Request
	for raw := it.Next(); raw != nil && len(out) < limit; raw = it.Next() {
		out = append(out, raw.(*fsmpb.Request))
	}
	return out
}

// Profiles returns the number of the tenant's records in state per IVR
// profile (all states summed for STATE_UNSPECIFIED). Profiles without
// records are absent.
func (f *FSM) Profiles(tenant string, state fsmpb.State) map[string]int {
	args := []interface{}{tenant}
	if state != fsmpb.State_STATE_UNSPECIFIED {
		args = append(args, state)
	}
	it, err := f.readTxn().Get(tableCounts, indexID+"_prefix", args...)
	if err != nil {
		panic(fmt.Sprintf("fsm: profiles: %v", err))
	}
	out := make(map[string]int)
	for raw := it.Next(); raw != nil; raw = it.Next() {
		c := raw.(*profileCount)
		out[c.Profile] += c.N
	}
	return out
}

// Fingerprint returns the sha256 of the deterministic encoding of r's client
// spec (tenant, token, ivr_profile, telnum, ani, notification_url,
// custom_data, cpd, max_attempts, ttl_ms, idempotency_key). The proposer
// computes it once and stores it in the command; Apply only compares the
// stored bytes, because deterministic marshalling is not guaranteed stable
// across protobuf library versions and replicas may run different binaries.
func Fingerprint(r *fsmpb.Request) []byte {
	spec := &fsmpb.Request{
		Tenant:          r.GetTenant(),
		Token:           r.GetToken(),
		IvrProfile:      r.GetIvrProfile(),
		Telnum:          r.GetTelnum(),
		Ani:             r.GetAni(),
		NotificationUrl: r.GetNotificationUrl(),
		CustomData:      r.GetCustomData(), // shared read-only: marshalling does not modify
		Cpd:             r.GetCpd(),
		MaxAttempts:     r.GetMaxAttempts(),
		TtlMs:           r.GetTtlMs(),
		IdempotencyKey:  r.GetIdempotencyKey(),
	}
	// Marshalling fails only on invalid UTF-8, which Encode rejects too, so
	// such a request never reaches the log whatever is hashed here.
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(spec)
	sum := sha256.Sum256(b)
	return sum[:]
}

// Encode marshals cmd for raft.Apply, setting Version to CommandVersion when
// it is 0.
func Encode(cmd *fsmpb.Command) ([]byte, error) {
	if cmd.Version == 0 {
		cmd.Version = CommandVersion
	}
	b, err := proto.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("fsm: encoding command: %w", err)
	}
	return b, nil
}
