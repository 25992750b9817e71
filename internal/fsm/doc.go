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
// an unknown body) makes Apply panic: stopping is safer than diverging. The
// one exception is an unknown body flagged ignore-unknown, which Apply
// skips (counted by Skipped): Encode sets the flag on settings bodies only,
// so that a rolling upgrade may introduce new settings commands without
// stopping the replicas not yet upgraded (Consul's and Nomad's
// IgnoreUnknownTypeFlag). Encode, Restamp and decode (command.go) are the
// only writers and reader of the log encoding: they stamp and check the
// envelope version, so no other package marshals commands. Restamp sets
// the leader's time on an entry a follower encoded, without decoding its
// body.
//
// Reads (Get, List, Due, Profiles, Count, Entitlement(s), Threshold(s),
// Pacing(s)) are safe concurrently with Apply.
// They return the stored records, which are immutable and may be shared
// with other readers: callers must not modify them. A record still as its
// create entry made it is decoded for each read (see "Fresh records"), so
// two reads of it return equal records, not the same pointer.
//
// # DESIGN
//
// State lives in google/btree generic B-trees (package btree, degree 16) of
// small key structs, one tree per order the reads need:
//
//	byID                (id) → record                    Get; snapshots (id order)
//	tenantProfileState  (tenant, profile, state, id)     List, InState (ranges merged)
//	idem                (tenant, idempotency_key) → id   only records with a key
//	queue               (tenant, profile, state, next_retry asc,
//	                     expires asc, attempts_made desc, id)  Due; waiting records only
//	expiry              (expires, id)                    Expired; waiting records only
//	counts              (tenant, state, profile) → n     Profiles, Tenants
//
// Every item copies its key fields out of the record (comparisons touch only
// the node's memory); only byID points to the record, the other indexes
// hold the id (issue 18: an update then touches only the indexes whose key
// fields changed, e.g. a notification mark only byID, and a secondary item
// is 8 bytes smaller). Lookups build their probe item on the stack, so no
// key is encoded or allocated. Strings compare byte-wise and states as
// uint32, the order the earlier byte-key indexes had. Due and a List page
// of one profile in one state cost O(log n + page) however sparse the
// matches. Every other page (List without a profile or a state, InState)
// merges the (profile, state) ranges that hold matching records, which the
// counts name (state.listIDs): each range is merged into the page as it is
// read and, once the page is full, stops at its last id, so a page costs
// at most O(ranges × page), and the states are few. No index by tenant or
// by (tenant, profile) is kept, as every create and purge would pay for
// it: dropping (tenant, profile, id), the last of them, took
// BenchmarkCreateCPU (100-record creates into 200,000 records) from 5.4
// to 4.1 µs of CPU per record (0.76; bytes allocated 0.90, allocations
// 0.98) and the live heap from 1,206 to 1,099 B per record, while
// BenchmarkListPage (4 profiles × 4 states interleaved, 100 per page) took
// 37 µs instead of 24 for a page of one profile without a state and 52
// µs instead of 65 for a tenant-wide page. Profiles costs O(profiles). Apply
// checks id and idempotency-key uniqueness itself (ReplaceOrInsert would
// overwrite): a create inserts into the id and key trees first and takes
// the insert back when it replaced a record (one descent of each tree, not
// a lookup and an insert). The (tenant, profile) of the queue and
// tenantProfileState items is a pointer to a group shared by the items of
// the pair's records (the count item of (tenant, state, profile) holds it),
// not two strings per item: items are 24 bytes smaller, comparisons within
// a group stop at the pointer, and a stored record takes the group's
// strings. Session 7 measured BenchmarkCreateCPU's bytes allocated 0.87×
// and the live heap 789 → 687 B per record with it.
//
// Records are immutable once stored: Apply changes one by building a copy
// (copyRequest: every field copied, a fresh Attempts slice, shared
// sub-messages that are replaced rather than modified), so readers may keep
// the records they got after the state has moved on.
//
// Fresh records (fresh.go). A create entry in the form Encode writes is
// not decoded: ApplyBatch copies the entry's bytes once, checks each
// request's bytes against the schema (checkMessage, as Restamp does: they
// would decode), reads the fields a create checks and indexes in place
// (id, tenant, profile, ttl, idempotency key, fingerprint) and stores the
// record as a fresh: the request's bytes in that copy and the entry's index
// and time, with the index keys aliasing the bytes. A read decodes it
// (decodeSpec: the spec fields only, strings aliasing the bytes, then the
// status fields as a create sets them), giving exactly the record a decoded
// create stores; the first command that changes it stores the changed
// record decoded, as before. Any other form (an unknown field in the
// envelope, a wire type that does not fit, bytes that would not decode, a
// version this binary does not apply) is decoded and applied or refused as
// before, so a fresh record is only ever made from bytes that decode.
// FuzzCreateEntry and FuzzApply apply the same entries with and without
// fresh records and compare the results and the snapshots byte for byte.
// Restore stores fresh the records that are exactly as their create stored
// them (isNew: every status field as a create sets it, no unknown fields),
// keeping a copy of each one's snapshot bytes, so a restarted replica holds
// its records in the same compact form. A snapshot writes a fresh record
// from its bytes when they are in deterministic form (appendFresh: spec
// fields ascending, each once, no zero values, shortest varints, the
// status fields a create sets spliced in before the time zone), which
// Encode's proto.Marshal gives; other forms are decoded and marshalled.
// A restored fresh record's bytes are its snapshot encoding, status fields
// included: appendFresh writes them as they are when those fields are
// exactly the ones a create sets (FuzzRestoreRecord and TestAppendFresh
// check restores against decoding). The dialer scans the queue's keys
// (DueKeys), not the records, so it decodes only the requests it takes,
// and reads a queued request's state without the record (StateOf).
// Measured (BENCHMARKS.md, issue 18, session 7): BenchmarkCreateCPU 1,116
// → 109 allocations per 100 records, the live heap 1,098 → 788 B per
// record; the first change of a fresh record pays its decode (about 1 µs),
// and so does every read of one.
//
// Apply mutates the writer's version of the trees (FSM.w) in place under
// writeMu. Readers and snapshots use an immutable clone of it (FSM.cur,
// loaded atomically, no lock): BTreeG.Clone is O(1) and marks every node
// shared, so the writer's next change copies the nodes on its path. The
// clone is made lazily: ApplyBatch only marks cur stale, and the first read
// (or Snapshot) after that takes writeMu, clones and publishes. So the
// copy-on-write cost is paid once per read that follows a write, not once
// per batch, and a reader waits at most for the batch being applied. An
// eager clone after every batch cost 27-35 µs per single-record Apply
// (copying a path of nodes in 8 trees, and the GC work for it) against 6 µs
// in place.
//
// This replaced a go-memdb database (immutable radix trees, one write
// transaction per raft batch). A batch of bulk creates modified more than
// 8,192 radix nodes, so go-immutable-radix took its slow path of walking the
// whole old and new trees to close watch channels the FSM never used, and
// allocated a channel per new node: ApplyBatch was ~75% of the cluster's CPU
// in the bulk benchmark, with a cost growing with the table. With the trees,
// BenchmarkApplyCreate100 went from ~2.5 ms to ~0.55 ms per 100-record entry
// and BenchmarkApplyBatchCreate100Large (32 entries per batch into 200,000
// records) from ~8.4 ms to ~0.55 ms per entry (see BENCHMARKS.md).
//
// Panics: ApplyBatch decodes and checks every entry of a batch before it
// applies any, so an entry this binary cannot apply (the only expected
// panic) leaves the state untouched. A panic in the middle of applying
// (a bug) leaves the writer's version undefined; the replica must stop.
//
// Snapshot format: a fixed 28-byte header (magic "DTFSMSNP", uint32 format
// version, uint64 applied index, uint64 record count, big-endian) followed by
// every record in id order as a varint-length-delimited protobuf message
// (protodelim), deterministically marshalled. Version 2 appends the
// port-usage settings: a uint64 count and the entitlements in tenant order,
// then a uint64 count and the thresholds in id order (see snapshot.go).
// Version 3 (written now) appends the dialer's pacing settings: a uint64
// count and the pacing entries in tenant order, the global entry (tenant
// "") first. Restore still reads version 1 (no settings) and version 2 (no
// pacing: every tenant runs on the built-in defaults). The counts and all
// indexes are rebuilt on Restore: the id index and the counts as the
// records are read, the other four trees on a second goroutine that the
// reader hands the keys to in chunks (keyBuilder), so a large restore takes
// the longer of the two shares, not their sum. Restore builds new state aside and swaps
// it in only after reading exactly the announced number of items and then
// EOF, so a corrupt or truncated snapshot leaves the state untouched.
//
// Port-usage settings (entitlements per tenant, alert thresholds) and the
// dialer's pacing settings (one entry per tenant plus the global entry,
// tenant "", resolved by package pacing) are replicated too
// (SetEntitlement, DeleteEntitlement, SetThreshold, DeleteThreshold,
// SetPacing, DeletePacing). They are few and change rarely, so they live
// in an immutable value of sorted slices that Apply replaces wholesale (see
// settings.go): cloning the state shares it for free and the request path
// is untouched. SetPacing replaces the whole entry of its tenant; the
// state machine checks only that there is an entry (the API validates the
// values with pacing.Validate before proposing).
package fsm
