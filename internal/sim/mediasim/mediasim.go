// Package mediasim is a simulated media (IVR) platform for development, tests
// and benchmarks: the platform the dialer places its calls on.
//
// A Platform is one tenant's media servers (a process may run several). It
// implements telephony.Backend in process, so engine tests can use it
// directly, and NewServer serves the same over gRPC (the MediaSim service of
// simpb) for the real multi-process setup, where Client is the dialer's
// backend:
//
//	plat, _ := mediasim.New(mediasim.Options{
//		Tenant: "acme", Servers: 2, PortsPerServer: 50,
//		Endpoints: []string{"127.0.0.1:9081", "127.0.0.1:9082", "127.0.0.1:9083"},
//		RingTime:  mediasim.Range{Min: time.Second, Max: 3 * time.Second},
//		TalkTime:  mediasim.Range{Min: 5 * time.Second, Max: 15 * time.Second},
//		Mix:       map[string]int{mediasim.Success: 80, mediasim.Busy: 20},
//		Rules:     []mediasim.Rule{{Prefix: "5550001", Outcome: mediasim.Busy}},
//	})
//	go plat.Run(ctx) // publish port usage to the cluster
//	out, err := plat.Place(ctx, telephony.Call{...})
//
// A call takes a port on the server with the most free ports (through
// portpub.Sim, so every change of the ports in use is published to the
// cluster at once), rings, and for a success holds the port for the talk
// time; the port is released before Place returns. With every port busy the
// call is refused with an error wrapping telephony.ErrFull: the
// oversubscription the dialer's port budget must prevent, so it is counted.
// Cancelling Place's context hangs the call up at once. A second call for a
// request that already has one in progress is counted as a concurrent
// violation and logged. Stats and Calls (and StatsHandler over HTTP) show
// what the platform saw.
package mediasim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
	"github.com/seed-7bfc04c2/dialtone/portpub"
)

// DefaultMaxLog is the default bound of the call log.
const DefaultMaxLog = 1_000_000

// shortRing bounds the ring of a call that fails before answer (busy, SIT,
// invalid number).
const shortRing = 500 * time.Millisecond

// Options configure a Platform.
type Options struct {
	// Tenant the platform's ports belong to (required).
	Tenant string
	// Servers media servers (default 1) of PortsPerServer ports each
	// (default 50), named <IDPrefix>-1, <IDPrefix>-2, ... (default "sim").
	Servers        int
	PortsPerServer uint32
	IDPrefix       string

	// Endpoints are the cluster's gRPC addresses port usage is published to
	// (Run); server i uses them rotated by i. Empty: nothing is published
	// (in-process tests).
	Endpoints []string
	// Publisher timing (portpub defaults when zero).
	Interval, AckTimeout, ReturnAfter time.Duration
	// DialOptions for publishing (TLS, credentials).
	DialOptions []grpc.DialOption
	// OnSwitch is called on every publisher endpoint change.
	OnSwitch func(server string, s portpub.Switch)

	// RingTime is how long a call rings before it is answered (or gives
	// up); TalkTime how long an answered call holds its port.
	RingTime Range
	TalkTime Range
	// Mix weights the outcomes (names: Success, Busy, ...); empty means
	// always Success.
	Mix map[string]int
	// Rules force an outcome by telnum prefix; the first match wins.
	Rules []Rule
	// Seed of the random choices; 0 picks one from the clock.
	Seed uint64
	// MaxLog bounds the call log (default DefaultMaxLog); the oldest
	// entries are dropped.
	MaxLog int

	// Logger receives the platform's lines (default slog.Default());
	// PublisherLogger the publishers' (default Logger).
	Logger          *slog.Logger
	PublisherLogger *slog.Logger
}

// Rule forces Outcome for every telnum starting with Prefix.
type Rule struct {
	Prefix  string `json:"prefix"`
	Outcome string `json:"outcome"`
}

// The states of a CallRecord.
const (
	StateInProgress = "in_progress"
	StateEnded      = "ended"
	StateRefused    = "refused"   // no free port
	StateCancelled  = "cancelled" // the caller hung up first, or the call was revoked
	StateRevoked    = "revoked"   // refused: its call UUID was revoked before it was placed
)

// CallRecord is one entry of the call log.
type CallRecord struct {
	RequestID  string             `json:"request_id"`
	CallUUID   string             `json:"call_uuid"`
	Attempt    uint32             `json:"attempt"`
	Telnum     string             `json:"telnum"`
	Tenant     string             `json:"tenant"`
	ServerID   string             `json:"server_id,omitempty"`
	Start      time.Time          `json:"start"`
	End        time.Time          `json:"end,omitzero"`
	State      string             `json:"state"`
	Outcome    string             `json:"outcome,omitempty"` // once ended
	Reason     string             `json:"reason,omitempty"`
	Class      fsmpb.OutcomeClass `json:"-"`
	Concurrent bool               `json:"concurrent,omitempty"` // another call of the request was in progress
	// Caller is the id the dialer that placed the call gave (CallerDialOption;
	// the node id), "" when it gave none: which node dialled, for checks
	// that a deposed leader places no call.
	Caller string `json:"caller,omitempty"`
}

// MarshalJSON writes Class by name.
func (r CallRecord) MarshalJSON() ([]byte, error) {
	type plain CallRecord
	var class string
	if r.Class != fsmpb.OutcomeClass_OUTCOME_UNSPECIFIED {
		class = r.Class.String()
	}
	return json.Marshal(struct {
		plain
		Class string `json:"class,omitempty"`
	}{plain(r), class})
}

// ServerStats is one media server's port figures.
type ServerStats struct {
	ID         string `json:"id"`
	TotalPorts uint32 `json:"total_ports"`
	PortsInUse uint32 `json:"ports_in_use"`
}

// Stats are a platform's counters.
type Stats struct {
	Tenant  string        `json:"tenant"`
	Servers []ServerStats `json:"servers"`
	// Placed counts calls that got a port; Refused those that found every
	// port busy; Cancelled those hung up by the caller before they ended.
	Placed    uint64 `json:"placed"`
	Refused   uint64 `json:"refused"`
	Cancelled uint64 `json:"cancelled"`
	// ByOutcome counts the calls that ended, by outcome name.
	ByOutcome      map[string]uint64 `json:"by_outcome"`
	InProgress     int64             `json:"in_progress"`
	PeakInProgress int64             `json:"peak_in_progress"`
	// ConcurrentViolations counts calls placed while another call of the
	// same request was in progress.
	ConcurrentViolations uint64 `json:"concurrent_violations"`
}

// Platform is one tenant's simulated media servers. Safe for concurrent use.
type Platform struct {
	opts   Options
	log    *slog.Logger
	sim    *portpub.Sim
	names  []string // outcome names of the mix, with cumulative weights
	cumul  []int
	weight int

	rngMu sync.Mutex
	rng   *rand.Rand

	mu         sync.Mutex
	active     map[string]int      // calls in progress per request id
	live       map[string]liveCall // calls in progress by call UUID
	revoked    map[string]bool     // revoked call UUIDs (bounded by revokedOrder)
	revokedQ   []string
	calls      []*CallRecord // ring buffer of at most opts.MaxLog
	head       int           // oldest entry once calls is full
	placed     uint64
	refused    uint64
	cancelled  uint64
	violations uint64
	byOutcome  map[string]uint64
	inProgress int64
	peak       int64
}

// liveCall is a call in progress that Revoke can end.
type liveCall struct {
	hangUp context.CancelFunc
	ended  chan struct{}
}

// maxRevoked bounds the revoked call UUIDs remembered.
const maxRevoked = 100_000

// New builds a platform; Run publishes its port usage.
func New(o Options) (*Platform, error) {
	if o.Tenant == "" {
		return nil, errors.New("mediasim: Tenant is required")
	}
	if o.Servers == 0 {
		o.Servers = 1
	}
	if o.PortsPerServer == 0 {
		o.PortsPerServer = 50
	}
	if o.Servers < 0 {
		return nil, fmt.Errorf("mediasim: %d servers", o.Servers)
	}
	if o.MaxLog <= 0 {
		o.MaxLog = DefaultMaxLog
	}
	if o.RingTime.Min < 0 || o.TalkTime.Min < 0 {
		return nil, errors.New("mediasim: negative ring or talk time")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PublisherLogger == nil {
		o.PublisherLogger = o.Logger
	}
	for _, r := range o.Rules {
		if _, ok := outcomes[r.Outcome]; !ok {
			return nil, fmt.Errorf("mediasim: rule %q: unknown outcome %q", r.Prefix, r.Outcome)
		}
	}
	p := &Platform{
		opts:      o,
		log:       o.Logger.With("tenant", o.Tenant),
		active:    map[string]int{},
		live:      map[string]liveCall{},
		revoked:   map[string]bool{},
		byOutcome: map[string]uint64{},
	}
	mix := o.Mix
	if len(mix) == 0 {
		mix = map[string]int{Success: 1}
	}
	for _, name := range Outcomes() { // sorted: the same seed gives the same choices
		w, ok := mix[name]
		if !ok {
			continue
		}
		if w < 0 {
			return nil, fmt.Errorf("mediasim: mix: negative weight for %q", name)
		}
		if w > 0 {
			p.weight += w
			p.names = append(p.names, name)
			p.cumul = append(p.cumul, p.weight)
		}
	}
	for name := range mix {
		if _, ok := outcomes[name]; !ok {
			return nil, fmt.Errorf("mediasim: mix: unknown outcome %q", name)
		}
	}
	if p.weight == 0 {
		return nil, errors.New("mediasim: mix: every weight is 0")
	}
	seed := o.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	p.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p.sim = portpub.NewSim(portpub.SimOptions{
		Servers: o.Servers, Ports: o.PortsPerServer, Tenant: o.Tenant, IDPrefix: o.IDPrefix,
		Endpoints: o.Endpoints, Interval: o.Interval, AckTimeout: o.AckTimeout, ReturnAfter: o.ReturnAfter,
		DialOptions: o.DialOptions, Logger: o.PublisherLogger, OnSwitch: o.OnSwitch,
	})
	return p, nil
}

// Tenant is the platform's tenant.
func (p *Platform) Tenant() string { return p.opts.Tenant }

// Servers are the simulated media servers (their InUse and Publisher show
// the ports in use).
func (p *Platform) Servers() []*portpub.SimServer { return p.sim.Servers() }

// Run publishes the servers' port usage to Options.Endpoints until ctx ends
// (without endpoints it just waits for ctx).
func (p *Platform) Run(ctx context.Context) error {
	if len(p.opts.Endpoints) == 0 {
		<-ctx.Done()
		return nil
	}
	return p.sim.Run(ctx)
}

// Place places one call and blocks until it has ended; see the package
// documentation. It implements telephony.Backend.
func (p *Platform) Place(ctx context.Context, c telephony.Call) (telephony.Outcome, error) {
	out, _, err := p.place(ctx, c, "", time.Time{})
	return out, err
}

// As is the platform as a backend whose calls record caller (a node id)
// as CallRecord.Caller, like calls through simcall.CallerDialOption: for
// in-process clusters whose nodes share one platform.
func (p *Platform) As(caller string) telephony.Backend { return callerBackend{p, caller} }

type callerBackend struct {
	p      *Platform
	caller string
}

func (b callerBackend) Place(ctx context.Context, c telephony.Call) (telephony.Outcome, error) {
	out, _, err := b.p.place(ctx, c, b.caller, time.Time{})
	return out, err
}

func (b callerBackend) Revoke(ctx context.Context, tenant, callUUID string) error {
	return b.p.Revoke(ctx, tenant, callUUID)
}

// place is Place, also reporting the outcome's record; caller is recorded
// as the record's Caller, and received (when not zero) as its start.
func (p *Platform) place(ctx context.Context, c telephony.Call, caller string, received time.Time) (telephony.Outcome, CallRecord, error) {
	if err := ctx.Err(); err != nil {
		return telephony.Outcome{}, CallRecord{}, err
	}
	// In process, the platform is the far end: the call's gate (the
	// dialer's pacer and fence) runs right before it is received.
	if err := c.Send(ctx); err != nil {
		return telephony.Outcome{}, CallRecord{}, err
	}
	c.Written() // received
	if received.IsZero() {
		received = time.Now()
	}
	rec := &CallRecord{
		RequestID: c.RequestID, CallUUID: c.CallUUID, Attempt: c.Attempt, Telnum: c.Telnum,
		Tenant: c.Tenant, Start: received, State: StateInProgress, Caller: caller,
	}
	ctx, hangUp := context.WithCancel(ctx)
	defer hangUp()
	lc := liveCall{hangUp: hangUp, ended: make(chan struct{})}
	defer close(lc.ended)
	p.mu.Lock()
	if c.CallUUID != "" && p.revoked[c.CallUUID] {
		rec.State, rec.End = StateRevoked, rec.Start
		p.appendLog(rec)
		p.mu.Unlock()
		p.log.Warn("mediasim: refused a call whose UUID was revoked", "request_id", c.RequestID, "call_uuid", c.CallUUID)
		return telephony.Outcome{}, *rec, fmt.Errorf("mediasim: call %s: %w", c.CallUUID, telephony.ErrRevoked)
	}
	if p.active[c.RequestID] > 0 {
		rec.Concurrent = true
		p.violations++
	}
	p.active[c.RequestID]++
	if c.CallUUID != "" {
		p.live[c.CallUUID] = lc
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		if p.active[c.RequestID]--; p.active[c.RequestID] <= 0 {
			delete(p.active, c.RequestID)
		}
		if c.CallUUID != "" && p.live[c.CallUUID].ended == lc.ended {
			delete(p.live, c.CallUUID)
		}
		p.mu.Unlock()
	}()
	if rec.Concurrent {
		p.log.Warn("mediasim: concurrent call for a request already in progress",
			"request_id", c.RequestID, "call_uuid", c.CallUUID, "attempt", c.Attempt)
	}

	srv, ok := p.sim.Acquire()
	if !ok {
		p.mu.Lock()
		p.refused++
		rec.State, rec.End = StateRefused, time.Now()
		p.appendLog(rec)
		r := *rec
		p.mu.Unlock()
		p.log.Warn("mediasim: call refused, every port busy", "request_id", c.RequestID, "call_uuid", c.CallUUID)
		return telephony.Outcome{}, r, fmt.Errorf("mediasim: tenant %q: all %d ports busy: %w",
			p.opts.Tenant, p.opts.Servers*int(p.opts.PortsPerServer), telephony.ErrFull)
	}
	p.mu.Lock()
	p.placed++
	p.inProgress++
	p.peak = max(p.peak, p.inProgress)
	rec.ServerID = srv.ID
	p.appendLog(rec)
	p.mu.Unlock()

	name, hold := p.choose(c)
	var err error
	if hold > 0 {
		t := time.NewTimer(hold)
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-t.C:
		}
		t.Stop()
	}
	srv.Release()

	out := outcomes[name]
	p.mu.Lock()
	p.inProgress--
	rec.End = time.Now()
	if err != nil {
		p.cancelled++
		rec.State = StateCancelled
	} else {
		p.byOutcome[name]++
		rec.State, rec.Outcome, rec.Reason, rec.Class = StateEnded, name, out.Reason, out.Class
	}
	r := *rec
	p.mu.Unlock()
	if err != nil {
		p.log.Debug("mediasim: call hung up by the caller", "request_id", c.RequestID, "call_uuid", c.CallUUID, "server", srv.ID)
		return telephony.Outcome{}, r, err
	}
	p.log.Debug("mediasim: call ended", "request_id", c.RequestID, "call_uuid", c.CallUUID, "server", srv.ID,
		"outcome", name, "held", r.End.Sub(r.Start))
	return out, r, nil
}

// Revoke hangs up the call with callUUID if it is in progress, waiting
// until it has ended, and refuses any later Place with that UUID. It
// implements telephony.Revoker (tenant is the platform's own).
func (p *Platform) Revoke(ctx context.Context, _ string, callUUID string) error {
	if callUUID == "" {
		return errors.New("mediasim: revoke: no call UUID")
	}
	p.mu.Lock()
	if !p.revoked[callUUID] {
		p.revoked[callUUID] = true
		p.revokedQ = append(p.revokedQ, callUUID)
		if len(p.revokedQ) > maxRevoked {
			delete(p.revoked, p.revokedQ[0])
			p.revokedQ = p.revokedQ[1:]
		}
	}
	lc, ok := p.live[callUUID]
	p.mu.Unlock()
	if !ok {
		return nil
	}
	p.log.Info("mediasim: revoking a call in progress", "call_uuid", callUUID)
	lc.hangUp()
	select {
	case <-lc.ended:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// choose picks the call's outcome (a rule, else the mix) and how long it
// holds its port.
func (p *Platform) choose(c telephony.Call) (name string, hold time.Duration) {
	for _, r := range p.opts.Rules {
		if strings.HasPrefix(c.Telnum, r.Prefix) {
			name = r.Outcome
			break
		}
	}
	p.rngMu.Lock()
	defer p.rngMu.Unlock()
	if name == "" {
		n := p.rng.IntN(p.weight)
		for i, cum := range p.cumul {
			if n < cum {
				name = p.names[i]
				break
			}
		}
	}
	ring := p.opts.RingTime.sample(p.rng)
	switch name {
	case Success:
		return name, ring + p.opts.TalkTime.sample(p.rng)
	case NoAnswer:
		if ms := c.Cpd.GetRnaTimeoutMs(); ms > 0 {
			return name, time.Duration(ms) * time.Millisecond
		}
		return name, ring
	case AnsweringMachine, Fax:
		return name, ring
	case InternalError:
		return name, 0
	default: // busy, SIT, invalid number: a short ring
		return name, min(ring, shortRing)
	}
}

// appendLog adds r to the call log (p.mu held).
func (p *Platform) appendLog(r *CallRecord) {
	if len(p.calls) < p.opts.MaxLog {
		p.calls = append(p.calls, r)
		return
	}
	p.calls[p.head] = r
	p.head = (p.head + 1) % len(p.calls)
}

// Stats returns the counters.
func (p *Platform) Stats() Stats {
	s := Stats{Tenant: p.opts.Tenant, ByOutcome: map[string]uint64{}}
	for _, v := range p.sim.Servers() {
		s.Servers = append(s.Servers, ServerStats{ID: v.ID, TotalPorts: v.Total, PortsInUse: v.InUse()})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s.Placed, s.Refused, s.Cancelled = p.placed, p.refused, p.cancelled
	s.InProgress, s.PeakInProgress, s.ConcurrentViolations = p.inProgress, p.peak, p.violations
	for k, v := range p.byOutcome {
		s.ByOutcome[k] = v
	}
	return s
}

// Calls returns a copy of the call log, oldest first.
func (p *Platform) Calls() []CallRecord {
	return p.CallsOf("", 0)
}

// CallsOf returns the log's entries for requestID ("" for all), oldest
// first; limit > 0 keeps only the newest limit of them.
func (p *Platform) CallsOf(requestID string, limit int) []CallRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []CallRecord
	if requestID == "" {
		out = make([]CallRecord, 0, len(p.calls))
	}
	for i := range p.calls {
		r := p.calls[(p.head+i)%len(p.calls)]
		if requestID == "" || r.RequestID == requestID {
			out = append(out, *r)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

// CallStarts are the start times of the calls in a platform's log, in Unix
// nanoseconds, ascending: Placed got a port, Refused found every port busy.
// A compact form of the log for benchmarks that count attempts at
// thousands per second.
type CallStarts struct {
	Tenant  string  `json:"tenant"`
	Placed  []int64 `json:"placed_unix_ns"`
	Refused []int64 `json:"refused_unix_ns"`
}

// Starts returns the start times of every call in the log.
func (p *Platform) Starts() CallStarts {
	p.mu.Lock()
	out := CallStarts{Tenant: p.opts.Tenant, Placed: make([]int64, 0, len(p.calls)), Refused: []int64{}}
	for _, r := range p.calls {
		if r.State == StateRefused {
			out.Refused = append(out.Refused, r.Start.UnixNano())
		} else {
			out.Placed = append(out.Placed, r.Start.UnixNano())
		}
	}
	p.mu.Unlock()
	slices.Sort(out.Placed)
	slices.Sort(out.Refused)
	return out
}
