package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/fsm/fsmpb"
)

// Snapshot stream format (all integers big-endian):
//
//	magic   [8]byte "DTFSMSNP"
//	version uint32  snapshotVersion
//	applied uint64  index of the last applied entry
//	count   uint64  number of records that follow
//	count × varint-length-delimited fsmpb.Request, in id order
//
// The record count lets Restore tell a complete stream from one truncated at
// a record boundary.
const (
	snapshotMagic   = "DTFSMSNP"
	snapshotVersion = 1
	headerLen       = len(snapshotMagic) + 4 + 8 + 8

	// maxRecordSize bounds the allocation a corrupt length prefix can cause.
	maxRecordSize = 64 << 20
)

// Snapshot captures the current state in O(1): a memdb read transaction is an
// immutable version of the trees, so Apply can go on while Persist streams it.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.writeMu.Lock()
	defer f.writeMu.Unlock()
	return &snapshot{
		txn:     f.db.Load().Txn(false),
		applied: f.applied.Load(),
		count:   uint64(f.count.Load()),
	}, nil
}

type snapshot struct {
	txn     *memdb.Txn
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

// Release implements raft.FSMSnapshot; the read transaction needs no cleanup.
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
	it, err := s.txn.Get(tableRequests, indexID)
	if err != nil {
		return fmt.Errorf("iterating records: %w", err)
	}
	// Deterministic marshalling makes replicas with the same state write
	// byte-identical snapshots (within one binary version).
	opts := protodelim.MarshalOptions{MarshalOptions: proto.MarshalOptions{Deterministic: true}}
	var n uint64
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if _, err := opts.MarshalTo(bw, raw.(*fsmpb.Request)); err != nil {
			return fmt.Errorf("writing record %d: %w", n, err)
		}
		n++
	}
	if n != s.count {
		return fmt.Errorf("wrote %d records but the header says %d", n, s.count)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("flushing: %w", err)
	}
	return nil
}

// Restore replaces the whole state with the snapshot read from rc. The new
// state is built aside and swapped in only when the stream was read
// completely, so an error leaves the current state untouched.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer func() { _ = rc.Close() }()
	db, applied, count, err := readSnapshot(bufio.NewReaderSize(rc, 64<<10))
	if err != nil {
		return fmt.Errorf("fsm: restoring snapshot: %w", err)
	}
	f.writeMu.Lock()
	defer f.writeMu.Unlock()
	f.db.Store(db)
	f.count.Store(int64(count))
	f.setApplied(applied)
	return nil
}

func readSnapshot(br *bufio.Reader) (db *memdb.MemDB, applied, count uint64, err error) {
	hdr := make([]byte, headerLen)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, 0, 0, fmt.Errorf("reading header: %w", err)
	}
	if !bytes.Equal(hdr[:len(snapshotMagic)], []byte(snapshotMagic)) {
		return nil, 0, 0, errors.New("not an fsm snapshot (bad magic)")
	}
	rest := hdr[len(snapshotMagic):]
	if v := binary.BigEndian.Uint32(rest); v != snapshotVersion {
		return nil, 0, 0, fmt.Errorf("snapshot version %d is not supported (want %d)", v, snapshotVersion)
	}
	applied = binary.BigEndian.Uint64(rest[4:])
	count = binary.BigEndian.Uint64(rest[12:])

	db = newDB()
	txn := db.Txn(true)
	defer txn.Abort()
	opts := protodelim.UnmarshalOptions{MaxSize: maxRecordSize}
	for i := uint64(0); i < count; i++ {
		r := &fsmpb.Request{}
		if err := opts.UnmarshalFrom(br, r); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, 0, 0, fmt.Errorf("reading record %d of %d: %w", i, count, err)
		}
		if err := checkRestored(txn, r); err != nil {
			return nil, 0, 0, fmt.Errorf("record %d of %d: %w", i, count, err)
		}
		if err := txn.Insert(tableRequests, r); err != nil {
			return nil, 0, 0, fmt.Errorf("record %d of %d: %w", i, count, err)
		}
		adjustCount(txn, r.Tenant, r.IvrProfile, r.State, 1)
	}
	if _, err := br.ReadByte(); err == nil {
		return nil, 0, 0, fmt.Errorf("trailing data after %d records", count)
	} else if !errors.Is(err, io.EOF) {
		return nil, 0, 0, fmt.Errorf("reading end of snapshot: %w", err)
	}
	txn.Commit()
	return db, applied, count, nil
}

// checkRestored rejects records that would break the indexes' uniqueness,
// which memdb itself does not enforce.
func checkRestored(txn *memdb.Txn, r *fsmpb.Request) error {
	if r.Id == "" || r.Tenant == "" {
		return errors.New("record without id or tenant")
	}
	if _, dup := getRequest(txn, r.Id); dup {
		return fmt.Errorf("duplicate id %q", r.Id)
	}
	if r.IdempotencyKey != "" {
		raw, err := txn.First(tableRequests, indexIdem, r.Tenant, r.IdempotencyKey)
		if err != nil {
			return fmt.Errorf("checking idempotency key: %w", err)
		}
		if raw != nil {
			return fmt.Errorf("duplicate idempotency key in tenant %q", r.Tenant)
		}
	}
	return nil
}
