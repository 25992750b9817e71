package fsm

import (
	"bytes"
	"fmt"
	"math"
	"unsafe"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Fresh records (issue 18, "a compact in-memory form"): a create entry in
// its usual form is applied without decoding its requests. Each request's
// bytes are checked against the schema (checkMessage: they would decode),
// the fields a create checks and indexes are read in place, and the record
// is stored as a fresh: the request's bytes in one copy of the entry, and
// the entry's index and time. Until a command changes it, a fresh record
// is decoded only when it is read (fresh.request), giving exactly the
// record an eager create stores (newRecord). The first change stores the
// changed record decoded, as before. A bulk create of 100 records then
// costs each replica one allocation for the entry's bytes and one small
// fresh per record, instead of a decoded message with a string per field.

// fresh is a stored record as its create entry made it, kept encoded.
type fresh struct {
	// raw is the Request as proposed: a slice of the replica's own copy
	// of the entry (or, for a restored record, a copy of its snapshot
	// bytes, status fields included, which decodeSpec skips), never
	// modified, which the record's id and the index keys alias.
	raw []byte
	// tenant and profile are the strings of the record's group (state.group).
	tenant, profile string
	created         int64  // the entry's time (now_unix_ms)
	index           uint64 // the entry's index
}

// request decodes the record. Its bytes were checked when the entry was
// applied, so decoding cannot fail; were it to, the replica's state would
// be wrong, and stopping is safer than serving it.
func (f *fresh) request() *fsmpb.Request {
	r, err := decodeSpec(f.raw)
	if err != nil {
		panic(fmt.Sprintf("fsm: a stored record created by entry %d does not decode: %v", f.index, err))
	}
	setNew(r, f.created, f.index)
	r.Tenant, r.IvrProfile = f.tenant, f.profile
	return r
}

// isNew reports whether r is exactly as a create stored it: nothing but
// its spec and the status a create sets (no unknown fields either). A
// restored record that is, is stored fresh.
func isNew(r *fsmpb.Request) bool {
	// Every status field (TestIsNew sets each in turn), without
	// proto.Equal's reflection: this runs for every restored record.
	return r.State == fsmpb.State_PENDING && r.Result == fsmpb.Result_RESULT_UNSPECIFIED &&
		r.AttemptsMade == 0 && r.NextRetryUnixMs == r.CreatedUnixMs &&
		r.ExpiresUnixMs == r.CreatedUnixMs+r.TtlMs && r.LastCallUuid == "" && len(r.Attempts) == 0 &&
		!r.DeleteFlag && r.NotifyState == fsmpb.NotifyState_NOTIFY_NONE && r.UpdatedUnixMs == r.CreatedUnixMs &&
		r.ResultReason == "" && r.ModifyIndex == r.CreateIndex && r.WaitReason == "" &&
		len(r.ProtoReflect().GetUnknown()) == 0
}

// newRecord is the record a create stores for spec, decoded from entry
// index at time now: the spec's fields and fingerprint, every status field
// set as for a new request. Status fields in spec, and fields this binary
// does not know, are dropped.
func newRecord(spec *fsmpb.Request, now int64, index uint64) *fsmpb.Request {
	r := &fsmpb.Request{
		Id:              spec.Id,
		Tenant:          spec.Tenant,
		Token:           spec.Token,
		IvrProfile:      spec.IvrProfile,
		Telnum:          spec.Telnum,
		Ani:             spec.Ani,
		NotificationUrl: spec.NotificationUrl,
		CustomData:      spec.CustomData,
		Cpd:             spec.Cpd,
		MaxAttempts:     spec.MaxAttempts,
		TtlMs:           spec.TtlMs,
		IdempotencyKey:  spec.IdempotencyKey,
		Fingerprint:     spec.Fingerprint,
		TimeZone:        spec.TimeZone,
	}
	setNew(r, now, index)
	return r
}

// setNew sets the status fields of r, which has none, as a create entry
// at index and time now sets them.
func setNew(r *fsmpb.Request, now int64, index uint64) {
	r.State = fsmpb.State_PENDING
	r.CreatedUnixMs = now
	r.NextRetryUnixMs = now
	r.ExpiresUnixMs = now + r.TtlMs
	r.NotifyState = fsmpb.NotifyState_NOTIFY_NONE
	r.UpdatedUnixMs = now
	r.CreateIndex = index
	r.ModifyIndex = index
}

// The spec fields of fsm.proto's Request, which decodeSpec reads
// (TestSpecFields checks them against the schema).
const (
	specID              protowire.Number = 1
	specTenant          protowire.Number = 2
	specToken           protowire.Number = 3
	specProfile         protowire.Number = 4
	specTelnum          protowire.Number = 5
	specAni             protowire.Number = 6
	specNotificationURL protowire.Number = 7
	specCustomData      protowire.Number = 8
	specCpd             protowire.Number = 9
	specMaxAttempts     protowire.Number = 10
	specTTL             protowire.Number = 11
	specKey             protowire.Number = 12
	specFingerprint     protowire.Number = 13
	specTimeZone        protowire.Number = 35
)

// decodeSpec decodes the spec fields of raw, a Request that checkMessage
// accepted, as proto.Unmarshal and newRecord keep them: the last value of
// a field given more than once, every custom data pair, the Cpd messages
// merged. Its strings and fingerprint alias raw instead of copying it (a
// fresh record's raw is never modified). Every other field is dropped.
func decodeSpec(raw []byte) (*fsmpb.Request, error) {
	r := &fsmpb.Request{}
	for b := raw; len(b) > 0; {
		num, typ, val, rest, ok := nextField(b)
		if !ok {
			return nil, errWire
		}
		b = rest
		switch typ {
		case protowire.VarintType:
			x, _ := protowire.ConsumeVarint(val)
			switch num {
			case specMaxAttempts:
				r.MaxAttempts = uint32(x)
			case specTTL:
				r.TtlMs = int64(x)
			}
		case protowire.BytesType:
			v, _ := protowire.ConsumeBytes(val)
			switch num {
			case specID:
				r.Id = aliasString(v)
			case specTenant:
				r.Tenant = aliasString(v)
			case specToken:
				r.Token = aliasString(v)
			case specProfile:
				r.IvrProfile = aliasString(v)
			case specTelnum:
				r.Telnum = aliasString(v)
			case specAni:
				r.Ani = aliasString(v)
			case specNotificationURL:
				r.NotificationUrl = aliasString(v)
			case specKey:
				r.IdempotencyKey = aliasString(v)
			case specTimeZone:
				r.TimeZone = aliasString(v)
			case specFingerprint:
				r.Fingerprint = v[:len(v):len(v)]
			case specCustomData:
				kv := &fsmpb.KeyValue{}
				if err := proto.Unmarshal(v, kv); err != nil {
					return nil, err
				}
				r.CustomData = append(r.CustomData, kv)
			case specCpd:
				if r.Cpd == nil {
					r.Cpd = &fsmpb.Cpd{}
				}
				if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, r.Cpd); err != nil {
					return nil, err
				}
			}
		}
	}
	return r, nil
}

// createView is a create entry read in place (viewCreate).
type createView struct {
	now        int64
	maxRecords uint64
	reqs       []freshSpec
}

// freshSpec is what a create checks and indexes of one request, read from
// its bytes: the strings and fingerprint alias raw.
type freshSpec struct {
	raw                 []byte
	id, tenant, profile string
	idempotencyKey      string
	ttlMs               int64
	fingerprint         []byte
}

// The field numbers viewCreate reads (fsm.proto: Command.create,
// CreateRequests).
const (
	createBodyField     protowire.Number = 10
	createRequestsField protowire.Number = 1
	createMaxRecords    protowire.Number = 2
)

// requestDesc is the record's descriptor, for checkMessage.
var requestDesc = (&fsmpb.Request{}).ProtoReflect().Descriptor()

// viewCreate reads l as a create entry without decoding its requests. It
// reports ok only for the form Encode writes (the envelope's version, time
// and flag, one create body holding requests and the record limit, each
// field with its own wire type) with a version this binary applies and
// requests that decode; for anything else the caller decodes the entry
// (decode), which applies it the same way or refuses it. The view owns a
// copy of the entry's bytes: raft's buffer is not kept.
func viewCreate(l *raft.Log) (v createView, ok bool) {
	var (
		version uint64
		body    bool
	)
	if !hasCreateBody(l.Data) {
		return createView{}, false
	}
	data := bytes.Clone(l.Data)
	for b := data; len(b) > 0; {
		num, typ, val, rest, ok := nextField(b)
		if !ok {
			return createView{}, false
		}
		b = rest
		switch {
		case num == versionField && typ == protowire.VarintType:
			version, _ = protowire.ConsumeVarint(val)
		case num == nowField && typ == protowire.VarintType:
			x, _ := protowire.ConsumeVarint(val)
			v.now = int64(x)
		case num == ignoreUnknownField && typ == protowire.VarintType:
		case num == createBodyField && typ == protowire.BytesType:
			// A message field repeated on the wire is merged: the
			// requests of every occurrence, the last record limit.
			c, _ := protowire.ConsumeBytes(val)
			if v.reqs == nil {
				v.reqs = make([]freshSpec, 0, countField(c, createRequestsField))
			}
			if !v.readCreate(c) {
				return createView{}, false
			}
			body = true
		default:
			return createView{}, false
		}
	}
	// decode's checks: the version is 32 bits and one this binary applies.
	if !body || version == 0 || version > CommandVersion {
		return createView{}, false
	}
	return v, true
}

// hasCreateBody reports whether entry's envelope holds a create body, reading
// only its top-level tags, so that other entries are not copied.
func hasCreateBody(entry []byte) bool {
	for b := entry; len(b) > 0; {
		num, typ, _, rest, ok := nextField(b)
		if !ok {
			return false
		}
		if num == createBodyField && typ == protowire.BytesType {
			return true
		}
		b = rest
	}
	return false
}

// countField returns how many times field num occurs in the message b, or
// as many as it could read of a malformed one.
func countField(b []byte, num protowire.Number) int {
	n := 0
	for len(b) > 0 {
		got, _, _, rest, ok := nextField(b)
		if !ok {
			break
		}
		if got == num {
			n++
		}
		b = rest
	}
	return n
}

// readCreate appends the requests of c, a CreateRequests body, to v.
func (v *createView) readCreate(c []byte) bool {
	for len(c) > 0 {
		num, typ, val, rest, ok := nextField(c)
		if !ok {
			return false
		}
		c = rest
		switch {
		case num == createRequestsField && typ == protowire.BytesType:
			raw, _ := protowire.ConsumeBytes(val)
			spec, ok := readSpec(raw)
			if !ok {
				return false
			}
			v.reqs = append(v.reqs, spec)
		case num == createMaxRecords && typ == protowire.VarintType:
			v.maxRecords, _ = protowire.ConsumeVarint(val)
		default:
			return false
		}
	}
	return true
}

// readSpec checks that raw decodes as a Request and reads the fields a
// create needs; a field given more than once counts with its last value,
// as a decode takes it.
func readSpec(raw []byte) (freshSpec, bool) {
	if checkMessage(raw, requestDesc) != nil {
		return freshSpec{}, false
	}
	s := freshSpec{raw: raw}
	for b := raw; len(b) > 0; {
		num, typ, val, rest, _ := nextField(b) // checked above
		b = rest
		if typ == protowire.VarintType && num == specTTL {
			x, _ := protowire.ConsumeVarint(val)
			s.ttlMs = int64(x)
			continue
		}
		if typ != protowire.BytesType {
			continue
		}
		switch num {
		case specID, specTenant, specProfile, specKey:
			f, _ := protowire.ConsumeBytes(val)
			str := aliasString(f)
			switch num {
			case specID:
				s.id = str
			case specTenant:
				s.tenant = str
			case specProfile:
				s.profile = str
			default:
				s.idempotencyKey = str
			}
		case specFingerprint:
			s.fingerprint, _ = protowire.ConsumeBytes(val)
		}
	}
	return s, true
}

// nextField splits the first field off the message bytes b: its number,
// wire type and value (the bytes after the tag), and the rest. ok is false
// when b does not start with a well-formed field of a valid number.
func nextField(b []byte) (num protowire.Number, typ protowire.Type, val, rest []byte, ok bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || !num.IsValid() {
		return 0, 0, nil, nil, false
	}
	m := protowire.ConsumeFieldValue(num, typ, b[n:])
	if m < 0 {
		return 0, 0, nil, nil, false
	}
	return num, typ, b[n : n+m], b[n+m:], true
}

// aliasString returns b as a string without copying it: b is part of a
// fresh record's bytes, which nothing modifies.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// record returns the item's record, decoding a fresh one.
func (it idItem) record() *fsmpb.Request {
	if it.f != nil {
		return it.f.request()
	}
	return it.r
}

// The status fields a create sets (fsm.proto, Request), for appendFresh.
const (
	statusState       protowire.Number = 20
	statusCreated     protowire.Number = 23
	statusNextRetry   protowire.Number = 24
	statusExpires     protowire.Number = 25
	statusNotifyState protowire.Number = 29
	statusUpdated     protowire.Number = 30
	statusCreateIndex protowire.Number = 32
	statusModifyIndex protowire.Number = 33
)

// appendFresh appends the record's deterministic encoding (what
// proto.Marshal with Deterministic writes for f.request()) to dst without
// decoding it, when f.raw is in the form that encoding takes: its fields
// in ascending order, each once (custom data pairs in one run), no zero
// values, nothing but spec fields, every varint in its shortest form, and
// its custom data and Cpd messages in that form too. Then the encoding is raw's fields below the status
// fields, the status fields a create sets, and raw's time zone. A
// restored record's raw is its snapshot encoding, which holds the status
// fields already: when they are exactly the ones a create sets, in that
// form, the encoding is raw itself. ok is false for any other form, which
// the caller encodes the slow way.
// Snapshots of a store of fresh records cost about a third of the CPU
// this way (BENCHMARKS.md, issue 18, session 7).
func (f *fresh) appendFresh(dst []byte) (out []byte, ok bool) {
	split := len(f.raw) // where the fields above the status fields start
	var ttl int64
	withStatus := false
	last := protowire.Number(0)
	for b := f.raw; len(b) > 0; {
		num, typ, val, rest, ok := nextCanonical(b)
		if !ok || num < last || (num == last && num != specCustomData) {
			return dst, false
		}
		if num > specFingerprint && split == len(f.raw) {
			split = len(f.raw) - len(b)
		}
		if num > specFingerprint && num < specTimeZone {
			// Status fields (a restored record): all of them, as
			// appendStatus writes them, or the slow way.
			var st [64]byte
			want := f.appendStatus(st[:0], ttl)
			if withStatus || !bytes.HasPrefix(b, want) {
				return dst, false
			}
			withStatus, last, b = true, statusModifyIndex, b[len(want):]
			continue
		}
		last, b = num, rest
		switch num {
		case specMaxAttempts, specTTL:
			x, _ := protowire.ConsumeVarint(val)
			if typ != protowire.VarintType || x == 0 || (num == specMaxAttempts && x > math.MaxUint32) {
				return dst, false
			}
			if num == specTTL {
				ttl = int64(x)
			}
		case specID, specTenant, specToken, specProfile, specTelnum, specAni, specNotificationURL,
			specKey, specFingerprint, specTimeZone:
			if v, _ := protowire.ConsumeBytes(val); typ != protowire.BytesType || len(v) == 0 {
				return dst, false
			}
		case specCustomData:
			v, _ := protowire.ConsumeBytes(val)
			if typ != protowire.BytesType || !canonicalFields(v, 2, nil) {
				return dst, false
			}
		case specCpd:
			v, _ := protowire.ConsumeBytes(val)
			// Fields 1-4 are optional scalars (explicit presence: a zero
			// value set is written), 1 and 4 bools; 5 is a string.
			if typ != protowire.BytesType || !canonicalFields(v, 5, cpdScalars) {
				return dst, false
			}
		default:
			return dst, false
		}
	}
	if withStatus {
		return append(dst, f.raw...), true
	}
	dst = append(dst, f.raw[:split]...)
	dst = f.appendStatus(dst, ttl)
	return append(dst, f.raw[split:]...), true
}

// appendStatus appends the status fields a create sets, in deterministic
// form, for a record with TTL ttl.
func (f *fresh) appendStatus(dst []byte, ttl int64) []byte {
	put := func(num protowire.Number, v uint64) {
		if v != 0 {
			dst = protowire.AppendTag(dst, num, protowire.VarintType)
			dst = protowire.AppendVarint(dst, v)
		}
	}
	put(statusState, uint64(fsmpb.State_PENDING))
	put(statusCreated, uint64(f.created))
	put(statusNextRetry, uint64(f.created))
	put(statusExpires, uint64(f.created+ttl))
	put(statusNotifyState, uint64(fsmpb.NotifyState_NOTIFY_NONE))
	put(statusUpdated, uint64(f.created))
	put(statusCreateIndex, f.index)
	put(statusModifyIndex, f.index)
	return dst
}

// cpdScalars are Cpd's optional scalar fields, true for the bools.
var cpdScalars = map[protowire.Number]bool{1: true, 2: false, 3: false, 4: true}

// canonicalFields reports whether b, a message of fields 1 to max, the
// scalars among them varints (true for a bool) and the others strings, is
// in deterministic form: ascending, each once, no empty string, shortest
// varints, bools 0 or 1.
func canonicalFields(b []byte, max protowire.Number, scalars map[protowire.Number]bool) bool {
	last := protowire.Number(0)
	for len(b) > 0 {
		num, typ, val, rest, ok := nextCanonical(b)
		if !ok || num <= last || num > max {
			return false
		}
		if isBool, scalar := scalars[num]; scalar {
			x, _ := protowire.ConsumeVarint(val)
			if typ != protowire.VarintType || (isBool && x > 1) {
				return false
			}
		} else if v, _ := protowire.ConsumeBytes(val); typ != protowire.BytesType || len(v) == 0 {
			return false
		}
		last, b = num, rest
	}
	return true
}

// nextCanonical is nextField for a field written as proto.Marshal writes
// it: a varint or length-delimited value, its tag, length and varint value
// in their shortest forms.
func nextCanonical(b []byte) (num protowire.Number, typ protowire.Type, val, rest []byte, ok bool) {
	num, typ, val, rest, ok = nextField(b)
	if !ok || len(b)-len(val)-len(rest) != protowire.SizeTag(num) {
		return 0, 0, nil, nil, false
	}
	switch typ {
	case protowire.VarintType:
		x, n := protowire.ConsumeVarint(val)
		ok = n == protowire.SizeVarint(x)
	case protowire.BytesType:
		v, n := protowire.ConsumeBytes(val)
		ok = n-len(v) == protowire.SizeVarint(uint64(len(v)))
	default:
		ok = false
	}
	return num, typ, val, rest, ok
}
