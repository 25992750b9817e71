// Package dialer is Dialtone's outbound engine: the SSG's processing loop,
// run on the Raft leader only. It reads the replicated requests through
// Store, commits every change through Applier (cluster.ApplyLeader, which
// never forwards), learns ports through Ports, places calls through a
// telephony.Backend and delivers result notifications through Sender. The
// operator's view of every rule below is docs/dialer.md; the runtime
// settings it reads are resolved by package pacing.
//
// # Leader-only lifecycle
//
// A node builds one Engine (New) and runs it (Run) for each term of
// leadership, after a Raft barrier has applied every earlier entry. Run
// first takes over what the previous leader left (takeover.go): INITIATED
// requests go back to PENDING, and IN_PROGRESS attempts, whose outcome
// nobody will learn, are revoked on the media platform when the backend can
// (telephony.Revoker) and ended as interrupted (not counted, retried after
// InterruptedRetryDelay) — unless they have replicated dialogs and the
// backend adopts calls (adopt.go, Options.Takeover): then the backend
// continues them (after taking the service address, AddressHolder) and
// their real outcome is recorded on the same attempt. Dialog state the
// backend reports while placing calls is group-committed like starts and
// results. Then it runs its jobs until leadership ends;
// ending cancels every call it placed and waits for all of its goroutines.
// Because proposals never forward, a deposed leader's commands fail instead
// of reaching its successor after the successor has reconciled.
//
// # Batch fetch and queues
//
// Every Housekeeping period (housekeep.go) the engine re-reads settings
// and port figures, and fetches for each tenant whose in-memory queues fell
// below the low watermark (fetch.go): batch size − queued due requests,
// divided among IVR profiles (PROPORTIONATE or EQUAL, slots.go), new
// requests and retries alternating when asked. Nothing is committed at
// fetch: the requests stay PENDING in the queues (held, so no later fetch
// takes them twice) and are claimed with their attempt's start. Queues are
// per profile and served round robin.
//
// # Port budget
//
// Attempts are armed only within the tenant's port view (portview.go),
// chosen once in New: the live budget (budget.go: this engine's calls plus
// armed attempts below floor(ports × PortLoadFactor / 100), and an estimate
// of ports in use from late reports below the physical total), or, for
// benchmarks, the SSG-style view sampled every 5 s. No fresh report means
// no capacity.
//
// # CAPS pacing, at the send
//
// Each tenant has a pacer at its CAPS and the global CAPS is a second pacer
// over all tenants (pacer.go). The dispatcher (dispatch.go) hands the ready
// attempt whose slot comes first to its call goroutine on that schedule;
// the send itself is paced by the wire pacers in the call's gate
// (gate.go), which the backend runs immediately before the call leaves the
// process (telephony.Call.Send). Slots are 1/X apart, late slots are made
// up within 50 ms, a cold pacer has no debt, and no one-second (100 ms)
// window holds more than floor(X) + 1 (ceil(X/8) + 1) sends
// (pacing.WindowLimits).
//
// # Fencing
//
// The gate also checks the leader lease (Lease, cluster.CheckLease) right
// before the send: a deposed or cut-off leader sends nothing, and an
// attempt refused there is handled as not placed (gate.go, commit.go). An
// attempt a previous leader left in progress is not re-dialled while it
// may still be up at the far end (the half-open rule, takeover.go).
//
// # Commit, then dial
//
// An attempt's start (call UUID, attempt number) is committed before it is
// dialled (commit.go): the dispatcher arms attempts ahead of their slots
// (the lookahead follows the recent commit latency), a batcher
// group-commits their starts in one entry (BatchStartAttempts: claim and
// start in one update of each record), and each started attempt is dialled
// when its slot comes. So Raft latency never delays a dial. The state
// machine refuses a start for a request that no longer waits or is not due
// (cancelled, expired, deferred) and a cancel while an attempt is in
// progress, so nothing is dialled after its cancel was acknowledged; an
// attempt whose TTL ends before its slot is not dialled. Outcomes are
// group-committed the same way (RecordResults).
//
// # Retries
//
// The state machine decides whether a request is retried; retry.go says
// when: internal failures after NextRetryInterval, interrupted attempts
// after InterruptedRetryDelay, temporary outcomes spread evenly over the
// TTL left, busy outcomes doubling from 15 s, all capped at the expiry.
// Requests still waiting when their TTL ends are expired within 250 ms
// (expiry.go).
//
// # Notifications
//
// Every finished request with a pending notification is delivered at least
// once (notifier.go, by NotifyConcurrency long-lived workers): retried with
// capped exponential backoff until a 2xx, then committed as notified
// (MarkNotified, group-committed). A new leader resends what was not
// committed.
//
// # Cleanup
//
// Every CleanInterval per tenant, finished requests whose notification is
// done and whose retention has passed are purged (expiry.go), 1,000 per
// entry; the first cleanup of a term waits one interval.
//
// # Proposals and locking
//
// Every command is built by an fsm constructor and committed through
// propose (propose.go), which chunks items into entries of maxEntryItems
// and hands back the items the state machine accepted. The per-tenant
// state is guarded by Engine.mu (see there for why it is one lock); the
// batchers, the notifier and the start latency have their own. Stats
// (stats.go) and Metrics (metrics.go) report the engine's figures.
package dialer
