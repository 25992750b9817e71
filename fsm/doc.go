// Package fsm is Dialtone's replicated state machine: a deterministic
// hashicorp/raft FSM that stores outbound-call request records
// (fsmpb.Request) and moves them through their lifecycle
//
//	PENDING → INITIATED → IN_PROGRESS → (PENDING again for a retry) → PROCESSED
//
// in response to committed fsmpb.Command entries. Apply reads no clock, no
// randomness and does no I/O: time is the command's now_unix_ms and ids come
// in the command, so every replica that applies the same log holds the same
// state. An entry this binary cannot understand (bad bytes, a newer version,
// an unknown body) makes Apply panic: stopping is safer than diverging.
//
// Reads (Get, List, Due, Profiles, Count) are safe concurrently with Apply.
// They return the stored records themselves, which are immutable and shared:
// callers must not modify them.
//
// # DESIGN
//
// State lives in a go-memdb database (immutable radix trees). Apply changes
// records copy-on-write (proto.Clone, modify, re-insert), so a read
// transaction is a consistent point-in-time view that costs O(1) to take;
// readers never block Apply, and Snapshot is just a read transaction that
// Persist streams while Apply continues. ApplyBatch applies a whole raft
// batch in one write transaction.
//
// Table "requests" holds *fsmpb.Request with these indexes, all built from
// order-preserving byte keys (strings NUL-escaped and terminated, int64
// big-endian with the sign bit flipped, descending fields complemented):
//
//	id                    unique record id (UUIDv7: sorts in creation order)
//	tenant                (tenant, id)                   List by tenant
//	tenant_state          (tenant, state, id)            List filtered by state
//	tenant_profile        (tenant, profile, id)          List filtered by profile
//	tenant_profile_state  (tenant, profile, state, id)   List filtered by both
//	idem                  (tenant, idempotency_key)      only records with a key
//	queue                 (tenant, profile, state, next_retry asc,
//	                       expires asc, attempts_made desc, id)  Due
//
// so every List page and every Due call costs O(page) however sparse the
// matches. Table "counts" keeps one row per (tenant, state, profile) with
// the number of records there, maintained in the same transactions, so
// Profiles costs O(profiles). memdb does not enforce unique indexes, so
// Apply checks id and idempotency-key uniqueness itself.
//
// Snapshot format: a fixed 28-byte header (magic "DTFSMSNP", uint32 format
// version, uint64 applied index, uint64 record count, big-endian) followed by
// every record in id order as a varint-length-delimited protobuf message
// (protodelim), deterministically marshalled. The counts table and all
// indexes are rebuilt on Restore. Restore builds a new database aside and
// swaps it in only after reading exactly the announced number of records and
// then EOF, so a corrupt or truncated snapshot leaves the state untouched.
package fsm
