package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Snapshot stream format (all integers big-endian):
//
//	magic   [8]byte "DTFSMSNP"
//	version uint32  snapshotVersion
//	applied uint64  index of the last applied entry
//	count   uint64  number of records that follow
//	count × varint-length-delimited fsmpb.Request, in id order
//	version 2 and later, the port-usage settings:
//	ecount  uint64  number of entitlements that follow
//	ecount × varint-length-delimited fsmpb.Entitlement, in tenant order
//	tcount  uint64  number of thresholds that follow
//	tcount × varint-length-delimited fsmpb.Threshold, in id order
//	version 3 and later, the dialer's pacing settings:
//	pcount  uint64  number of pacing entries that follow
//	pcount × varint-length-delimited fsmpb.Pacing, in tenant order (the
//	         global entry, tenant "", first)
//	version 4 and later, the calling windows:
//	wcount  uint64  number of calling windows that follow
//	wcount × varint-length-delimited fsmpb.CallingWindow, in (tenant,
//	         profile) order
//	version 5 and later, the suppression lists:
//	scount  uint64  number of suppression chunks that follow
//	scount × varint-length-delimited fsmpb.SuppressionChunk, by tenant
//	         then ascending number (up to 65,536 numbers each)
//	version 6 and later, the frequency caps and their attempt history:
//	fcount  uint64  number of frequency caps that follow
//	fcount × varint-length-delimited fsmpb.FreqCap, in tenant order
//	hcount  uint64  number of histories that follow
//	hcount × varint-length-delimited fsmpb.FreqHistory, by tenant then
//	         number
//
// The counts let Restore tell a complete stream from one truncated at a
// record boundary. Restore reads version 1 (records only, no settings),
// version 2 (no pacing), version 3 (no calling windows), version 4 (no
// suppression lists), version 5 (no frequency caps) and version 6;
// Snapshot writes version 6.
const (
	snapshotMagic   = "DTFSMSNP"
	snapshotVersion = 6
	// snapshotV1 is the format before settings: records only.
	snapshotV1 = 1
	// snapshotV2 adds the port-usage settings, but no pacing.
	snapshotV2 = 2
	// snapshotV3 adds the pacing settings, but no calling windows.
	snapshotV3 = 3
	// snapshotV4 adds the calling windows, but no suppression lists.
	snapshotV4 = 4
	// snapshotV5 adds the suppression lists, but no frequency caps.
	snapshotV5 = 5
	headerLen  = len(snapshotMagic) + 4 + 8 + 8

	// maxRecordSize bounds the allocation a corrupt length prefix can cause.
	maxRecordSize = 64 << 20
)

// Snapshot captures the current state in O(1): the published version is
// immutable, so Apply can go on while Persist streams it.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	st := f.view()
	return &snapshot{st: st, applied: st.applied, count: uint64(st.count())}, nil
}

type snapshot struct {
	st      *state
	applied uint64
	count   uint64
}

// Persist writes the snapshot to sink and closes it, or cancels it on error.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.writeTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persisting snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("fsm: closing snapshot sink: %w", err)
	}
	return nil
}

// Release implements raft.FSMSnapshot; the immutable version needs no cleanup.
func (s *snapshot) Release() {}

func (s *snapshot) writeTo(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	hdr := make([]byte, 0, headerLen)
	hdr = append(hdr, snapshotMagic...)
	hdr = binary.BigEndian.AppendUint32(hdr, snapshotVersion)
	hdr = binary.BigEndian.AppendUint64(hdr, s.applied)
	hdr = binary.BigEndian.AppendUint64(hdr, s.count)
	if _, err := bw.Write(hdr); err != nil {
		return fmt.Errorf("writing header: %w", err)
	}
	// Deterministic marshalling makes replicas with the same state write
	// byte-identical snapshots (within one binary version).
	opts := protodelim.MarshalOptions{MarshalOptions: proto.MarshalOptions{Deterministic: true}}
	var (
		n   uint64
		err error
	)
	var buf []byte
	s.st.byID.Ascend(func(it idItem) bool {
		if it.f != nil {
			// A fresh record in deterministic form is written from its
			// bytes, without decoding it (appendFresh).
			if b, ok := it.f.appendFresh(buf[:0]); ok {
				buf = b
				if _, err = bw.Write(protowire.AppendVarint(nil, uint64(len(b)))); err == nil {
					_, err = bw.Write(b)
				}
				if err != nil {
					err = fmt.Errorf("writing record %d: %w", n, err)
					return false
				}
				n++
				return true
			}
		}
		if _, err = opts.MarshalTo(bw, it.record()); err != nil {
			err = fmt.Errorf("writing record %d: %w", n, err)
			return false
		}
		n++
		return true
	})
	if err != nil {
		return err
	}
	if n != s.count {
		return fmt.Errorf("wrote %d records but the header says %d", n, s.count)
	}
	set := s.st.settings
	if err := writeSection(bw, opts, "entitlement", set.entitlements); err != nil {
		return err
	}
	if err := writeSection(bw, opts, "threshold", set.thresholds); err != nil {
		return err
	}
	if err := writeSection(bw, opts, "pacing", set.pacing); err != nil {
		return err
	}
	if err := writeSection(bw, opts, "calling window", set.windows); err != nil {
		return err
	}
	if err := writeSection(bw, opts, "suppression chunk", set.dncChunks()); err != nil {
		return err
	}
	if err := writeSection(bw, opts, "frequency cap", set.caps); err != nil {
		return err
	}
	if err := writeSection(bw, opts, "frequency history", s.st.freq.histories()); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("flushing: %w", err)
	}
	return nil
}

// writeSection writes a count and then every message of a settings section.
func writeSection[M proto.Message](w io.Writer, opts protodelim.MarshalOptions, what string, msgs []M) error {
	if _, err := w.Write(binary.BigEndian.AppendUint64(nil, uint64(len(msgs)))); err != nil {
		return fmt.Errorf("writing %s count: %w", what, err)
	}
	for i, m := range msgs {
		if _, err := opts.MarshalTo(w, m); err != nil {
			return fmt.Errorf("writing %s %d: %w", what, i, err)
		}
	}
	return nil
}

// Restore replaces the whole state with the snapshot read from rc. The new
// state is built aside and swapped in only when the stream was read
// completely, so an error leaves the current state untouched.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer func() { _ = rc.Close() }()
	st, err := readSnapshot(bufio.NewReaderSize(rc, 64<<10))
	if err != nil {
		return fmt.Errorf("fsm: restoring snapshot: %w", err)
	}
	f.writeMu.Lock()
	defer f.writeMu.Unlock()
	f.w = st
	f.cur.Store(st.clone())
	f.stale.Store(false)
	f.count.Store(int64(st.count()))
	f.setApplied(st.applied)
	return nil
}

func readSnapshot(br *bufio.Reader) (*state, error) {
	hdr := make([]byte, headerLen)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	if !bytes.Equal(hdr[:len(snapshotMagic)], []byte(snapshotMagic)) {
		return nil, errors.New("not an fsm snapshot (bad magic)")
	}
	rest := hdr[len(snapshotMagic):]
	version := binary.BigEndian.Uint32(rest)
	if version < snapshotV1 || version > snapshotVersion {
		return nil, fmt.Errorf("snapshot version %d is not supported (want %d to %d)", version, snapshotV1, snapshotVersion)
	}
	st := newState()
	st.applied = binary.BigEndian.Uint64(rest[4:])
	count := binary.BigEndian.Uint64(rest[12:])

	opts := protodelim.UnmarshalOptions{MaxSize: maxRecordSize}
	kb := startKeyBuilder(st)
	defer kb.wait() // on an error too: the builder is stopped and waited for (a no-op after the wait below)
	var (
		buf  []byte
		last string // the greatest id restored so far
	)
	for i := uint64(0); i < count; i++ {
		b, err := readDelimited(br, buf)
		if err != nil {
			return nil, fmt.Errorf("reading record %d of %d: %w", i, count, err)
		}
		buf = b[:0]
		r := &fsmpb.Request{}
		if err := proto.Unmarshal(b, r); err != nil {
			return nil, fmt.Errorf("reading record %d of %d: %w", i, count, err)
		}
		if r.Id == "" || r.Tenant == "" {
			return nil, fmt.Errorf("record %d of %d: record without id or tenant", i, count)
		}
		// Snapshots hold the records in id order, so a record's id is
		// new when it is above every id so far; only one that is not
		// (a snapshot written otherwise) is looked up.
		if r.Id <= last {
			if _, dup := st.get(r.Id); dup {
				return nil, fmt.Errorf("record %d of %d: duplicate id %q", i, count, r.Id)
			}
		} else {
			last = r.Id
		}
		kb.add(st.restoreRecord(b, r, i))
	}
	if err := kb.wait(); err != nil {
		return nil, fmt.Errorf("record %d of %d: %w", err.rec, count, err)
	}
	if version >= snapshotV2 {
		set, err := readSettings(br, opts, version)
		if err != nil {
			return nil, err
		}
		st.settings = set
	}
	if version > snapshotV5 {
		hs, err := readSection(br, opts, "frequency history", func() *fsmpb.FreqHistory { return &fsmpb.FreqHistory{} }, nil, false)
		if err != nil {
			return nil, err
		}
		if st.freq, err = restoreFreq(hs); err != nil {
			return nil, err
		}
	}
	if _, err := br.ReadByte(); err == nil {
		return nil, fmt.Errorf("trailing data after %d records", count)
	} else if !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading end of snapshot: %w", err)
	}
	return st, nil
}

// readSettings reads the settings sections of a version 2 or later
// snapshot: entitlements and thresholds, and from version 3 the pacing
// entries. Each must be in strictly ascending key order, as written.
func readSettings(br *bufio.Reader, opts protodelim.UnmarshalOptions, version uint32) (*settings, error) {
	ents, err := readSection(br, opts, "entitlement", func() *fsmpb.Entitlement { return &fsmpb.Entitlement{} },
		(*fsmpb.Entitlement).GetTenant, false)
	if err != nil {
		return nil, err
	}
	ths, err := readSection(br, opts, "threshold", func() *fsmpb.Threshold { return &fsmpb.Threshold{} },
		(*fsmpb.Threshold).GetId, false)
	if err != nil {
		return nil, err
	}
	var pac []*fsmpb.Pacing
	if version >= 3 {
		// The global entry has the empty key: it can only come first.
		if pac, err = readSection(br, opts, "pacing", func() *fsmpb.Pacing { return &fsmpb.Pacing{} },
			(*fsmpb.Pacing).GetTenant, true); err != nil {
			return nil, err
		}
	}
	var win []*fsmpb.CallingWindow
	if version > snapshotV3 {
		if win, err = readSection(br, opts, "calling window", func() *fsmpb.CallingWindow { return &fsmpb.CallingWindow{} },
			windowKeyOf, false); err != nil {
			return nil, err
		}
	}
	var dnc map[string]*dncList
	if version > snapshotV4 {
		chunks, err := readSection(br, opts, "suppression chunk", func() *fsmpb.SuppressionChunk { return &fsmpb.SuppressionChunk{} },
			nil, false)
		if err != nil {
			return nil, err
		}
		if dnc, err = restoreDNC(chunks); err != nil {
			return nil, err
		}
	}
	var caps []*fsmpb.FreqCap
	if version > snapshotV5 {
		if caps, err = readSection(br, opts, "frequency cap", func() *fsmpb.FreqCap { return &fsmpb.FreqCap{} },
			freqCapTenant, false); err != nil {
			return nil, err
		}
	}
	if len(ents) == 0 && len(ths) == 0 && len(pac) == 0 && len(win) == 0 && len(dnc) == 0 && len(caps) == 0 {
		return emptySettings, nil
	}
	return &settings{entitlements: ents, thresholds: ths, pacing: pac, windows: win, dnc: dnc, caps: caps}, nil
}

// readSection reads a count and that many messages with strictly
// ascending keys, non-empty unless emptyKey allows the first to be "" (a
// nil key reads them unchecked).
func readSection[M proto.Message](br *bufio.Reader, opts protodelim.UnmarshalOptions, what string, newM func() M, key func(M) string, emptyKey bool) ([]M, error) {
	var cnt [8]byte
	if _, err := io.ReadFull(br, cnt[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading %s count: %w", what, err)
	}
	n := binary.BigEndian.Uint64(cnt[:])
	var out []M
	prev := ""
	for i := uint64(0); i < n; i++ {
		m := newM()
		if err := opts.UnmarshalFrom(br, m); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("reading %s %d of %d: %w", what, i, n, err)
		}
		if key == nil {
			out = append(out, m) // unkeyed: the caller checks the order
			continue
		}
		k := key(m)
		if (k == "" && !(emptyKey && i == 0)) || (i > 0 && k <= prev) {
			return nil, fmt.Errorf("%s %d of %d: empty, duplicate or out-of-order key %q", what, i, n, k)
		}
		prev = k
		out = append(out, m)
	}
	return out, nil
}

// readDelimited reads one varint-length-delimited message, as
// protodelim.UnmarshalFrom does, into buf (grown as needed) and returns its
// bytes, so that a restored record may keep them.
func readDelimited(br *bufio.Reader, buf []byte) ([]byte, error) {
	size, err := binary.ReadUvarint(br)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if size > maxRecordSize {
		return nil, fmt.Errorf("message of %d bytes exceeds the maximum of %d", size, maxRecordSize)
	}
	if uint64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(br, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// restoredKey is what the idempotency and secondary indexes hold of a
// restored record, the rec-th of the snapshot.
type restoredKey struct {
	q       queueItem
	waiting bool
	key     string // idempotency key, if any
	rec     uint64
}

// restoreRecord adds r, the rec-th record of a snapshot, decoded from raw
// (which it may keep, copied), to the id index and the counts, and returns
// the record's keys for the other indexes (see keyBuilder).
func (s *state) restoreRecord(raw []byte, r *fsmpb.Request, rec uint64) restoredKey {
	id, tenant, profile, key := r.Id, r.Tenant, r.IvrProfile, r.IdempotencyKey
	asFresh := isNew(r)
	if asFresh {
		// Stored as fresh, as its create stored it (fresh.go): a restart
		// keeps the memory it had. Its index keys alias its bytes, not
		// r's strings.
		raw = bytes.Clone(raw)
		spec, err := decodeSpec(raw)
		if err != nil {
			panic(fmt.Sprintf("fsm: restoring record %q: %v", r.Id, err)) // r decoded from raw
		}
		id, tenant, profile, key = spec.Id, spec.Tenant, spec.IvrProfile, spec.IdempotencyKey
	}
	g := s.group(tenant, profile, r.State)
	if asFresh {
		s.byID.ReplaceOrInsert(idItem{id: id, f: &fresh{raw: raw, tenant: g.tenant, profile: g.profile, created: r.CreatedUnixMs, index: r.CreateIndex}})
	} else {
		r.Tenant, r.IvrProfile = g.tenant, g.profile
		s.byID.ReplaceOrInsert(idItem{id: id, r: r})
	}
	s.adjust(g, r.State, 1)
	q := queueKey(r, g)
	q.id = id
	return restoredKey{q: q, waiting: waiting(r), key: key, rec: rec}
}

// keyBuilder fills the idempotency, (tenant, profile, state), queue and
// expiry indexes of a state being restored, on a goroutine of its own,
// from the keys the restoring goroutine hands it in chunks. Those inserts
// need no answer back before the end (a repeated idempotency key fails the
// whole restore, at wait), so a restore takes about the longer of the two
// goroutines' shares rather than their sum (BENCHMARKS.md, issue 18,
// session 9). Only the builder touches those four trees until wait.
type keyBuilder struct {
	chunk []restoredKey
	ch    chan []restoredKey
	done  chan struct{}
	err   *duplicateKeyError // the builder's, read after done
}

// duplicateKeyError is a restored record whose idempotency key an earlier
// record of its tenant has.
type duplicateKeyError struct {
	rec    uint64
	tenant string
}

func (e *duplicateKeyError) Error() string {
	return fmt.Sprintf("duplicate idempotency key in tenant %q", e.tenant)
}

const restoreChunk = 4096

func startKeyBuilder(st *state) *keyBuilder {
	kb := &keyBuilder{ch: make(chan []restoredKey, 4), done: make(chan struct{})}
	ch := kb.ch
	go func() {
		defer close(kb.done)
		for chunk := range ch {
			if kb.err != nil {
				continue // the restore fails: drain
			}
			for _, k := range chunk {
				if k.key != "" {
					if _, dup := st.idem.ReplaceOrInsert(idemItem{tenant: k.q.g.tenant, key: k.key, id: k.q.id}); dup {
						kb.err = &duplicateKeyError{rec: k.rec, tenant: k.q.g.tenant}
						break
					}
				}
				st.insertSecondary(k.q, k.waiting)
			}
		}
	}()
	return kb
}

func (kb *keyBuilder) add(k restoredKey) {
	if kb.chunk == nil {
		kb.chunk = make([]restoredKey, 0, restoreChunk)
	}
	kb.chunk = append(kb.chunk, k)
	if len(kb.chunk) == restoreChunk {
		kb.ch <- kb.chunk
		kb.chunk = nil
	}
}

// wait hands over the last keys and returns when every key is in its
// indexes, or the first repeated idempotency key. Later calls return nil
// at once.
func (kb *keyBuilder) wait() *duplicateKeyError {
	if kb.ch == nil {
		return nil
	}
	if len(kb.chunk) > 0 {
		kb.ch <- kb.chunk
		kb.chunk = nil
	}
	close(kb.ch)
	kb.ch = nil
	<-kb.done
	return kb.err
}
