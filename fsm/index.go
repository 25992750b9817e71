package fsm

import (
	"encoding/binary"
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/seed-7bfc04c2/dialtone/fsm/fsmpb"
)

// Table and index names.
const (
	tableRequests = "requests"
	tableCounts   = "counts"

	indexID                 = "id"
	indexTenant             = "tenant"
	indexTenantState        = "tenant_state"
	indexTenantProfile      = "tenant_profile"
	indexTenantProfileState = "tenant_profile_state"
	indexIdem               = "idem"
	indexQueue              = "queue"
)

// profileCount is one row of the counts table: how many records of a tenant
// are in a state for an IVR profile. It exists so Profiles costs
// O(profiles) rather than O(records). Rows are immutable like records.
type profileCount struct {
	Tenant  string
	State   fsmpb.State
	Profile string
	N       int
}

// schema is shared by every memdb the package creates; it is never modified.
var schema = &memdb.DBSchema{
	Tables: map[string]*memdb.TableSchema{
		tableRequests: {
			Name: tableRequests,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: {Name: indexID, Unique: true, Indexer: reqIndexer(func(b []byte, r *fsmpb.Request) ([]byte, bool) {
					return appendString(b, r.Id), r.Id != ""
				})},
				indexTenant: {Name: indexTenant, Unique: true, Indexer: reqIndexer(func(b []byte, r *fsmpb.Request) ([]byte, bool) {
					b = appendString(b, r.Tenant)
					return appendString(b, r.Id), true
				})},
				indexTenantState: {Name: indexTenantState, Unique: true, Indexer: reqIndexer(func(b []byte, r *fsmpb.Request) ([]byte, bool) {
					b = appendString(b, r.Tenant)
					b = appendState(b, r.State)
					return appendString(b, r.Id), true
				})},
				indexTenantProfile: {Name: indexTenantProfile, Unique: true, Indexer: reqIndexer(func(b []byte, r *fsmpb.Request) ([]byte, bool) {
					b = appendString(b, r.Tenant)
					b = appendString(b, r.IvrProfile)
					return appendString(b, r.Id), true
				})},
				indexTenantProfileState: {Name: indexTenantProfileState, Unique: true, Indexer: reqIndexer(func(b []byte, r *fsmpb.Request) ([]byte, bool) {
					b = appendString(b, r.Tenant)
					b = appendString(b, r.IvrProfile)
					b = appendState(b, r.State)
					return appendString(b, r.Id), true
				})},
				// Unique is not enforced by memdb (an insert silently
				// overwrites the entry); applyCreate checks it first.
				indexIdem: {Name: indexIdem, Unique: true, AllowMissing: true, Indexer: reqIndexer(func(b []byte, r *fsmpb.Request) ([]byte, bool) {
					if r.IdempotencyKey == "" {
						return nil, false
					}
					b = appendString(b, r.Tenant)
					return appendString(b, r.IdempotencyKey), true
				})},
				// The dialer's priority order within (tenant, profile,
				// state): earliest retry first, then least TTL remaining,
				// then most attempts made, then oldest.
				indexQueue: {Name: indexQueue, Unique: true, Indexer: reqIndexer(func(b []byte, r *fsmpb.Request) ([]byte, bool) {
					b = appendString(b, r.Tenant)
					b = appendString(b, r.IvrProfile)
					b = appendState(b, r.State)
					b = appendInt64(b, r.NextRetryUnixMs)
					b = appendInt64(b, r.ExpiresUnixMs)
					b = binary.BigEndian.AppendUint32(b, ^r.AttemptsMade)
					return appendString(b, r.Id), true
				})},
			},
		},
		tableCounts: {
			Name: tableCounts,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: {Name: indexID, Unique: true, Indexer: keyIndexer[*profileCount](func(b []byte, c *profileCount) ([]byte, bool) {
					b = appendString(b, c.Tenant)
					b = appendState(b, c.State)
					return appendString(b, c.Profile), true
				})},
			},
		},
	},
}

func init() {
	if err := schema.Validate(); err != nil {
		panic(fmt.Sprintf("fsm: invalid memdb schema: %v", err))
	}
}

// keyIndexer builds index keys for objects of type T with an order-preserving
// encoding. Every component is self-delimiting, so the encoding of the first
// k arguments is a prefix of the keys of exactly the objects whose first k
// components equal them; FromArgs and PrefixFromArgs are therefore the same
// encoding, taking the components in index order (string, fsmpb.State,
// int64 or uint32).
type keyIndexer[T any] func(b []byte, obj T) ([]byte, bool)

func reqIndexer(fn func(b []byte, r *fsmpb.Request) ([]byte, bool)) keyIndexer[*fsmpb.Request] {
	return fn
}

// FromObject implements memdb.SingleIndexer.
func (k keyIndexer[T]) FromObject(raw interface{}) (bool, []byte, error) {
	obj, ok := raw.(T)
	if !ok {
		return false, nil, fmt.Errorf("fsm: index: unexpected object type %T", raw)
	}
	b, ok := k(make([]byte, 0, 64), obj)
	return ok, b, nil
}

// FromArgs implements memdb.Indexer.
func (k keyIndexer[T]) FromArgs(args ...interface{}) ([]byte, error) {
	return encodeArgs(args)
}

// PrefixFromArgs implements memdb.PrefixIndexer.
func (k keyIndexer[T]) PrefixFromArgs(args ...interface{}) ([]byte, error) {
	return encodeArgs(args)
}

func encodeArgs(args []interface{}) ([]byte, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("fsm: index: no arguments")
	}
	b := make([]byte, 0, 64)
	for i, a := range args {
		switch v := a.(type) {
		case string:
			b = appendString(b, v)
		case fsmpb.State:
			b = appendState(b, v)
		case int64:
			b = appendInt64(b, v)
		case uint32:
			b = binary.BigEndian.AppendUint32(b, v)
		default:
			return nil, fmt.Errorf("fsm: index: argument %d has unsupported type %T", i, a)
		}
	}
	return b, nil
}

// appendString appends s so that byte-wise key order equals string order and
// no string's encoding is a prefix of another's: NUL bytes are escaped as
// 00 FF and the string ends with 00 01, which sorts below any continuation.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 {
			b = append(b, 0, 0xFF)
		} else {
			b = append(b, c)
		}
	}
	return append(b, 0, 1)
}

// appendInt64 appends v big-endian with the sign bit flipped, so negative
// values sort before positive ones.
func appendInt64(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(v)^(1<<63))
}

func appendState(b []byte, s fsmpb.State) []byte {
	return binary.BigEndian.AppendUint32(b, uint32(s))
}
