package dialer

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
	"github.com/seed-7bfc04c2/dialtone/internal/dialer/window"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// Store is the replicated state the engine reads (the FSM).
type Store interface {
	Get(id string) (*fsmpb.Request, bool)
	StateOf(id string) (fsmpb.State, bool)
	Tenants(state fsmpb.State) []string
	Profiles(tenant string, state fsmpb.State) map[string]int
	DueKeys(tenant, ivrProfile string, state fsmpb.State, limit int) []fsm.Queued
	Expired(nowUnixMs int64, limit int) []*fsmpb.Request
	InState(tenant string, state fsmpb.State, after string, limit int) []*fsmpb.Request
	Pacing(tenant string) (*fsmpb.Pacing, bool)
	CallingWindow(tenant, ivrProfile string) (*fsmpb.CallingWindow, bool)
	Suppressed(tenant, number string, nowUnixMs int64) (bool, int64)
	FreqBlockedUntil(tenant, number string, nowUnixMs int64) int64
}

// Applier commits commands on the leader, never forwarding
// (cluster.ApplyLeader).
type Applier interface {
	ApplyLeader(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, uint64, error)
}

// Ports reads a tenant's port figures (the port-usage cache).
type Ports interface {
	TenantPorts(tenant string) PortReport
}

// Sender delivers one result notification (notify.Sender).
type Sender interface {
	Send(ctx context.Context, r *fsmpb.Request) error
}

// Options configure an engine.
type Options struct {
	Store   Store
	Apply   Applier
	Ports   Ports
	Backend telephony.Backend // nil: no calls are placed
	// Lease fences every send (see gate.go); nil: no fence (tests).
	Lease   Lease
	Sender  Sender   // nil: notifications are not sent
	Metrics *Metrics // nil: unregistered metrics
	Logger  *slog.Logger

	// InterruptedRetryDelay: the earliest retry of an attempt a previous
	// leader left in progress.
	InterruptedRetryDelay time.Duration
	// HalfOpenHold is how long a call may stay up at the far end after
	// its send once the process that sent it is gone (SIP: an INVITE
	// rings until the far end gives up, an unacknowledged 200 OK is
	// retransmitted for 64×T1): a new leader re-dials an attempt its
	// predecessor left in progress, and could not revoke, no sooner than
	// its start + sendDeadline + HalfOpenHold, and counts it in the port
	// budget until then (takeover.go). 0: calls end with their dialer.
	HalfOpenHold time.Duration
	// Takeover: a new leader adopts the calls its predecessor left in
	// progress with replicated dialogs (a backend implementing Adopter)
	// instead of ending them as interrupted (adopt.go).
	Takeover bool
	// ReportMargin is the relay latency allowed for port reports (see
	// budget); default 100ms.
	ReportMargin time.Duration
	// NotifyMaxBackoff caps the delay between notification retries
	// (default 1 min); NotifyConcurrency bounds deliveries in flight
	// (default 64).
	NotifyMaxBackoff  time.Duration
	NotifyConcurrency int
	// Housekeeping is the period of the fetch, expiry and settings loop
	// (default 50ms).
	Housekeeping time.Duration
	// PortView is how the port budget sees the media platform:
	// PortViewLive (default) or PortViewSampled, the SSG-style baseline for
	// benchmarks (see sampledPorts). PortSampleInterval is the baseline's
	// sampling period (default 5s).
	PortView           string
	PortSampleInterval time.Duration
	// Clock is the engine's time (clock.go); nil: the real clock.
	Clock Clock
	// SendLog, when set, gets a line per call the backend reported
	// written, "<gate Unix ns> <written Unix ns>\n", in the order they
	// were written (the benchmark pairs them with a capture of the wire:
	// no call may reach the wire after it was counted written). Written
	// with the engine's lock held: give it a buffered writer.
	SendLog io.Writer
}

// Engine is the dialer: the leader-only loop that fetches due requests,
// paces attempts and records their outcomes, notifies trigger
// applications and cleans up. New builds it once per node; Run runs it for
// one term of leadership. The package doc describes the design; each job
// has its file (takeover, housekeep, fetch, expiry, dispatch, commit,
// notifier, stats).
type Engine struct {
	opts  Options
	clock Clock
	log   *slog.Logger
	m     *Metrics
	retry retryPolicy
	view  portView // chosen once from Options.PortView
	wins  windows  // compiled calling windows (rules.go)
	wait  waiting  // waiting requests by reason (waiting.go)

	// mu guards running, tenants and everything reachable from a tenant
	// (queues, ready list, pacer, budget, sampled port view, attempt log,
	// outcome counts), and the global pacer and gCAPS. It is one lock
	// because the jobs meet in the same figures: the dispatcher picks the
	// earliest ready attempt across all tenants under the global pacer and
	// arms against a tenant's budget, which commits (armed → ready, or
	// released), calls (a call ending) and refresh (new port figures)
	// change; per-tenant locks would have the dispatcher take them all
	// anyway. Nothing slow runs under it: every Raft apply, backend call
	// and notification happens outside, and only in-memory Store reads
	// (prune, Profiles) happen inside. State with a single owner has its
	// own lock: the batchers, the notifier and startLatency.
	mu      sync.Mutex
	running bool
	tenants map[string]*tenant
	linger  map[string][]time.Time // per tenant: hold ends of a predecessor's half-open attempts
	adopted map[string]int         // per tenant: adopted calls in progress
	// adopting holds the requests whose calls this term adopted (reconcile
	// may run more than once). Only reconcile uses it.
	adopting map[string]bool
	global   pacer // hand-off, over all tenants
	gwire    pacer // the send, over all tenants
	gCAPS    float64
	// sendToken numbers the sends whose time is pending in the wire
	// pacers (gate.go); settled is closed and replaced when one settles.
	sendToken int64
	settled   chan struct{}
	// sendLogLine is SendLog's line buffer (under mu).
	sendLogLine []byte

	// Per term: set in Run before any goroutine of the term starts, read
	// without mu afterwards.
	wake    chan struct{} // dispatcher: something changed
	fetchCh chan struct{} // fetcher: a queue fell below its watermark
	latency *startLatency
	starts  *batcher[*item]
	results *batcher[result]
	dialogs *batcher[dialogItem]
	notes   *notifier
	calls   sync.WaitGroup
}

// New builds an engine.
func New(o Options) *Engine {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ReportMargin <= 0 {
		o.ReportMargin = 100 * time.Millisecond
	}
	if o.NotifyMaxBackoff <= 0 {
		o.NotifyMaxBackoff = time.Minute
	}
	if o.NotifyConcurrency <= 0 {
		o.NotifyConcurrency = 64
	}
	if o.Housekeeping <= 0 {
		o.Housekeeping = 50 * time.Millisecond
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.PortView == "" {
		o.PortView = PortViewLive
	}
	if o.PortSampleInterval <= 0 {
		o.PortSampleInterval = 5 * time.Second
	}
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	e := &Engine{opts: o, clock: o.Clock, log: o.Logger.With("component", "dialer"), m: o.Metrics, view: newPortView(o)}
	e.wins.compiled = map[*fsmpb.CallingWindow]*window.Window{}
	e.retry = retryPolicy{nextRetryInterval: pacing.DefaultNextRetryInterval, interruptedDelay: o.InterruptedRetryDelay}
	return e
}

// Run runs the engine until ctx ends (leadership lost, or the node
// stopping), then hangs up every call it placed and returns once every
// goroutine it started has finished. Outcomes not committed by then are
// left for the next leader, which reconciles them.
func (e *Engine) Run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	e.running = true
	e.tenants = map[string]*tenant{}
	e.linger = map[string][]time.Time{}
	e.adopted = map[string]int{}
	e.adopting = map[string]bool{}
	e.global = pacer{handoff: true}
	e.gwire = pacer{}
	e.settled = make(chan struct{})
	e.latency = &startLatency{}
	e.wake = make(chan struct{}, 1)
	e.fetchCh = make(chan struct{}, 1)
	e.starts = newBatcher(maxEntryItems, e.commitStarts)
	e.results = newBatcher(maxEntryItems, e.commitResults)
	e.dialogs = newBatcher(maxEntryItems, e.commitDialogs)
	e.notes = newNotifier(e)
	e.wait.last = time.Time{}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.running = false
		e.tenants = nil
		e.mu.Unlock()
		e.m.reset()
	}()

	e.m.Running.Set(1)
	e.log.Info("dialer starting")
	if h, ok := e.opts.Backend.(AddressHolder); ok {
		// The service address first: adopted calls' requests come to it.
		release, err := h.Lead(ctx)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Error("could not take the service address; not dialling this term", "err", err)
				<-ctx.Done()
			}
			return
		}
		defer release() // after every call ended (deferred before e.calls.Wait returns)
	}
	if !e.reconcile(ctx) {
		e.calls.Wait()
		return
	}
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){e.starts.run, e.results.run, e.dialogs.run, e.notes.run, e.housekeep, e.dispatch} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	<-ctx.Done()
	wg.Wait()
	e.calls.Wait() // Place returns once ctx is done: every call is hung up
	e.log.Info("dialer stopped")
}

// Running reports whether the engine is running (this node leads).
func (e *Engine) Running() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.running
}

// signal wakes the dispatcher.
func (e *Engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// wantFetch wakes the housekeeping loop to fetch.
func (e *Engine) wantFetch() {
	select {
	case e.fetchCh <- struct{}{}:
	default:
	}
}
