// Package portpub is the publishing side of Dialtone's port-usage service:
// the library a media (VXML) server integration links to push its live port
// capacity and usage to a Dialtone cluster over the
// dialtone.v1.PortUsageService/Publish gRPC stream.
//
// A Publisher holds an ordered list of node endpoints (the first is the
// primary), streams a report every Interval and whenever the figures change,
// and treats each report as a heartbeat: a report not acknowledged within
// AckTimeout, or a broken stream, makes it fail over to the next endpoint in
// order that accepts a stream, and resend the current figures at once. While
// it is away from the primary it probes the primary in the background (a
// stream whose heartbeats must be acknowledged) and returns to it once the
// primary has been healthy for ReturnAfter. This is the failover behaviour of
// Cisco CVP's port-usage publisher ("How Failover Works").
//
//	pub := portpub.New(portpub.Options{
//		Endpoints: []string{"10.0.0.1:9081", "10.0.0.2:9081", "10.0.0.3:9081"},
//		ServerID:  "vxml-01", Tenant: "acme",
//		DialOptions: []grpc.DialOption{portpub.BasicAuth("vxml", pw)},
//	})
//	pub.Set(300, 0)
//	go pub.Run(ctx)
//	...
//	pub.Set(300, inUse) // on every session start and end
package portpub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// Options configure a Publisher.
type Options struct {
	// Endpoints are the nodes' gRPC addresses (host:port), in order of
	// preference: the first is the primary.
	Endpoints []string
	// ServerID is the media server's stable id (e.g. its host name).
	ServerID string
	// Address is the media server's address, reported for display and for
	// the Cisco ipAddress filter.
	Address string
	// Tenant the server's ports belong to.
	Tenant string

	// Interval between reports when nothing changes (default 1s). A change
	// is reported at once (at most one report per MinGap).
	Interval time.Duration
	// AckTimeout is the missed-heartbeat deadline: a report not
	// acknowledged within it fails the endpoint (default 1s).
	AckTimeout time.Duration
	// Heartbeat bounds the time between two reports so that a silent
	// endpoint is noticed within Heartbeat+AckTimeout (default the smaller
	// of Interval and AckTimeout/2: with the defaults a report goes out
	// every 500ms, so failover takes at most about 1.5s).
	Heartbeat time.Duration
	// ReturnAfter is how long the primary must have been healthy before the
	// publisher returns to it (default 5s).
	ReturnAfter time.Duration
	// MinGap is the least time between two reports caused by changes
	// (default 50ms); changes in between are coalesced.
	MinGap time.Duration

	// DialOptions are added to every connection after the defaults
	// (plaintext, fast reconnect backoff): pass WithTLS/WithCAFile and
	// BasicAuth/BearerToken here.
	DialOptions []grpc.DialOption
	// Logger receives a line per endpoint switch and failure (default
	// slog.Default()).
	Logger *slog.Logger

	// Source, when set, is read for every report and polled every MinGap*2
	// for changes; otherwise the figures come from Set.
	Source func() (total, inUse uint32)
	// OnSwitch, when set, is called (from the publisher's goroutine) after
	// every change of endpoint, including the first connection.
	OnSwitch func(Switch)
}

// Switch describes a change of endpoint.
type Switch struct {
	From string // "" for the first connection
	To   string
	// Kind is "connect" (first connection), "failover" or "return" (back
	// to the primary after it was healthy for ReturnAfter).
	Kind   string
	Reason string // why the previous endpoint was left
	At     time.Time
}

// Stats are a Publisher's counters.
type Stats struct {
	Current   string
	Failovers uint64
	Returns   uint64
	Sent      uint64 // reports written to a stream (probes included)
	Acked     uint64 // acknowledgements received
}

// Publisher publishes one media server's port usage.
type Publisher struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	total   uint32
	inUse   uint32
	current string
	reason  string // why the last endpoint was left
	changed chan struct{}

	seq       atomic.Uint64
	failovers atomic.Uint64
	returns   atomic.Uint64
	sent      atomic.Uint64
	acked     atomic.Uint64
	running   atomic.Bool
}

// New returns a publisher; Run starts it.
func New(o Options) *Publisher {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = time.Second
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = min(o.Interval, o.AckTimeout/2)
	}
	if o.ReturnAfter <= 0 {
		o.ReturnAfter = 5 * time.Second
	}
	if o.MinGap <= 0 {
		o.MinGap = 50 * time.Millisecond
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	p := &Publisher{opts: o, log: log.With("server_id", o.ServerID), changed: make(chan struct{}, 1)}
	// Seq starts at the wall clock in microseconds, so it also keeps
	// increasing across restarts of the media server (at fewer than a
	// million reports a second).
	p.seq.Store(uint64(time.Now().UnixMicro()))
	return p
}

// Set records the current figures; a change is reported at once.
func (p *Publisher) Set(total, inUse uint32) {
	p.mu.Lock()
	changed := total != p.total || inUse != p.inUse
	p.total, p.inUse = total, inUse
	p.mu.Unlock()
	if changed {
		p.notify()
	}
}

func (p *Publisher) notify() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// Current is the endpoint in use: the last one that acknowledged a report
// ("" before the first).
func (p *Publisher) Current() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current
}

// Failovers counts switches away from a failed endpoint.
func (p *Publisher) Failovers() uint64 { return p.failovers.Load() }

// Returns counts returns to the primary.
func (p *Publisher) Returns() uint64 { return p.returns.Load() }

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	return Stats{Current: p.Current(), Failovers: p.failovers.Load(), Returns: p.returns.Load(), Sent: p.sent.Load(), Acked: p.acked.Load()}
}

// figures reads the current figures (from Source when set).
func (p *Publisher) figures() (uint32, uint32) {
	if p.opts.Source != nil {
		return p.opts.Source()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total, p.inUse
}

// report builds the next report of the current figures.
func (p *Publisher) report() *pb.PortReport {
	total, inUse := p.figures()
	return &pb.PortReport{
		ServerId:   p.opts.ServerID,
		Address:    p.opts.Address,
		Tenant:     p.opts.Tenant,
		TotalPorts: total,
		PortsInUse: inUse,
		TimeUnixMs: time.Now().UnixMilli(),
		Seq:        p.seq.Add(1),
	}
}

// DefaultDialOptions are applied before Options.DialOptions: plaintext and a
// reconnect backoff capped at 1s, so a restarted node is seen again quickly.
func DefaultDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
}

// Run publishes until ctx ends, then returns nil (or an error at once when
// the options are unusable). It owns every goroutine it starts; Run may be
// called once.
func (p *Publisher) Run(ctx context.Context) error {
	if len(p.opts.Endpoints) == 0 {
		return errors.New("portpub: no endpoints")
	}
	if p.opts.ServerID == "" {
		return errors.New("portpub: ServerID is required")
	}
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("portpub: Run called twice")
	}
	dial := append(DefaultDialOptions(), p.opts.DialOptions...)
	clients := make([]pb.PortUsageServiceClient, len(p.opts.Endpoints))
	for i, ep := range p.opts.Endpoints {
		cc, err := grpc.NewClient(ep, dial...)
		if err != nil {
			return fmt.Errorf("portpub: endpoint %q: %w", ep, err)
		}
		defer cc.Close()
		clients[i] = pb.NewPortUsageServiceClient(cc)
	}

	var pr *prober
	stopProbe := func() {
		if pr != nil {
			pr.stop()
			pr = nil
		}
	}
	defer stopProbe()

	n := len(clients)
	cur, kind := 0, "connect"
	failedInRow := 0
	for ctx.Err() == nil {
		var ready chan struct{}
		if cur != 0 {
			if pr == nil {
				pr = p.startProbe(ctx, clients[0])
			}
			ready = pr.ready
		} else {
			stopProbe()
		}
		res, accepted, err := p.link(ctx, clients[cur], cur, linkOpts{stop: ready, kind: kind})
		switch res {
		case linkCanceled:
			return nil
		case linkStopped: // the primary has been healthy for ReturnAfter
			p.setReason("primary healthy for " + p.opts.ReturnAfter.String())
			cur, kind, failedInRow = 0, "return", 0
			continue
		}
		reason := err.Error()
		p.setReason(reason)
		if accepted {
			failedInRow = 0
			p.log.Warn("port-usage endpoint failed", "endpoint", p.opts.Endpoints[cur], "reason", reason)
		} else {
			p.log.Debug("port-usage endpoint refused", "endpoint", p.opts.Endpoints[cur], "reason", reason)
		}
		failedInRow++
		kind = "failover"
		cur = (cur + 1) % n
		if failedInRow >= n {
			// Every endpoint refused in turn: pause before the next round.
			failedInRow = 0
			t := time.NewTimer(min(p.opts.Interval, p.opts.AckTimeout))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
	}
	return nil
}

func (p *Publisher) setReason(r string) {
	p.mu.Lock()
	p.reason = r
	p.mu.Unlock()
}

// accepted records that endpoint idx acknowledged its first report.
func (p *Publisher) accepted(idx int, kind string) {
	to := p.opts.Endpoints[idx]
	p.mu.Lock()
	from, reason := p.current, p.reason
	p.current = to
	p.mu.Unlock()
	if from == to {
		return
	}
	switch {
	case from == "":
		kind = "connect"
		p.log.Info("port-usage publisher connected", "endpoint", to)
	case kind == "return" && idx == 0:
		p.returns.Add(1)
		p.log.Info("port-usage publisher returned to primary", "from", from, "to", to, "reason", reason)
	default:
		kind = "failover"
		p.failovers.Add(1)
		p.log.Warn("port-usage publisher failed over", "from", from, "to", to, "reason", reason)
	}
	if p.opts.OnSwitch != nil {
		p.opts.OnSwitch(Switch{From: from, To: to, Kind: kind, Reason: reason, At: time.Now()})
	}
}

type linkResult int

const (
	linkCanceled linkResult = iota // ctx ended
	linkFailed                     // stream broke or an ack was late
	linkStopped                    // opts.stop closed
	linkHealthy                    // acknowledged continuously for opts.healthyFor
)

type linkOpts struct {
	stop       <-chan struct{} // ends the link (return to the primary)
	healthyFor time.Duration   // probe: end with linkHealthy after this long acknowledged
	probe      bool
	kind       string
}

type pending struct {
	seq uint64
	at  time.Time
}

// link runs one Publish stream to endpoint idx: it sends the current figures
// at once, then every Heartbeat and on change, and fails when a report is not
// acknowledged within AckTimeout (which also bounds opening the stream).
func (p *Publisher) link(ctx context.Context, c pb.PortUsageServiceClient, idx int, o linkOpts) (res linkResult, accepted bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	out := make(chan *pb.PortReport, 16)
	acks := make(chan uint64, 64)
	errc := make(chan error, 2)
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Add(1)
	go func() { // sender; starts the receiver once the stream is open
		defer wg.Done()
		stream, err := c.Publish(sctx)
		if err != nil {
			errc <- err
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ack, err := stream.Recv()
				if err != nil {
					errc <- err
					return
				}
				select {
				case acks <- ack.GetSeq():
				case <-sctx.Done():
					return
				}
			}
		}()
		for {
			select {
			case r, ok := <-out:
				if !ok {
					_ = stream.CloseSend()
					return
				}
				if err := stream.Send(r); err != nil {
					errc <- err
					return
				}
				p.sent.Add(1)
			case <-sctx.Done():
				return
			}
		}
	}()

	var (
		queue    []pending
		lastSend time.Time
		dirty    bool
		healthy  time.Time // first ack (probe)
		lastT    uint32
		lastU    uint32
	)
	send := func(now time.Time) {
		r := p.report()
		lastT, lastU = r.TotalPorts, r.PortsInUse
		select {
		case out <- r:
			queue = append(queue, pending{r.Seq, now})
		default: // the stream is stuck; the ack deadline will end it
		}
		lastSend, dirty = now, false
	}
	send(time.Now())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	pollEvery := 2 * p.opts.MinGap
	nextPoll := time.Now().Add(pollEvery)
	for {
		now := time.Now()
		wake := lastSend.Add(p.opts.Heartbeat)
		if len(queue) > 0 {
			wake = earliest(wake, queue[0].at.Add(p.opts.AckTimeout))
		}
		if dirty {
			wake = earliest(wake, lastSend.Add(p.opts.MinGap))
		}
		if p.opts.Source != nil && !o.probe {
			wake = earliest(wake, nextPoll)
		}
		if !healthy.IsZero() && o.healthyFor > 0 {
			wake = earliest(wake, healthy.Add(o.healthyFor))
		}
		timer.Reset(max(wake.Sub(now), 0))
		select {
		case <-ctx.Done():
			return linkCanceled, accepted, ctx.Err()
		case err := <-errc:
			if ctx.Err() != nil {
				return linkCanceled, accepted, ctx.Err()
			}
			return linkFailed, accepted, fmt.Errorf("stream: %w", err)
		case <-o.stop:
			close(out)
			// Let the server see the half-close and end the stream.
			t := time.NewTimer(p.opts.AckTimeout)
			select {
			case <-errc:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			return linkStopped, accepted, nil
		case seq := <-acks:
			p.acked.Add(1)
			popped := false
			for len(queue) > 0 && queue[0].seq <= seq {
				queue, popped = queue[1:], true
			}
			if !popped && len(queue) > 0 {
				queue = queue[1:] // a server that does not echo seq acks in order
			}
			if !accepted {
				accepted = true
				healthy = time.Now()
				if !o.probe {
					p.accepted(idx, o.kind)
				}
			}
		case <-p.changedChan(o.probe):
			if time.Since(lastSend) >= p.opts.MinGap {
				send(time.Now())
			} else {
				dirty = true
			}
		case now = <-timer.C:
			if len(queue) > 0 && !now.Before(queue[0].at.Add(p.opts.AckTimeout)) {
				if !accepted {
					return linkFailed, false, fmt.Errorf("no acknowledgement within %s of opening the stream", p.opts.AckTimeout)
				}
				return linkFailed, true, fmt.Errorf("report %d not acknowledged within %s", queue[0].seq, p.opts.AckTimeout)
			}
			if !healthy.IsZero() && o.healthyFor > 0 && !now.Before(healthy.Add(o.healthyFor)) {
				return linkHealthy, true, nil
			}
			if p.opts.Source != nil && !o.probe && !now.Before(nextPoll) {
				nextPoll = now.Add(pollEvery)
				if t, u := p.opts.Source(); t != lastT || u != lastU {
					dirty = true
				}
			}
			if (dirty && !now.Before(lastSend.Add(p.opts.MinGap))) || !now.Before(lastSend.Add(p.opts.Heartbeat)) {
				send(now)
			}
		}
	}
}

// changedChan is the change notification for the main link; probes ignore
// changes (a nil channel never fires).
func (p *Publisher) changedChan(probe bool) <-chan struct{} {
	if probe {
		return nil
	}
	return p.changed
}

// prober runs probe in the background.
type prober struct {
	cancel context.CancelFunc
	done   chan struct{}
	ready  chan struct{}
}

func (p *Publisher) startProbe(ctx context.Context, c pb.PortUsageServiceClient) *prober {
	pctx, cancel := context.WithCancel(ctx)
	pr := &prober{cancel: cancel, done: make(chan struct{}), ready: make(chan struct{})}
	go func() {
		defer close(pr.done)
		p.probe(pctx, c, pr.ready)
	}()
	return pr
}

func (pr *prober) stop() {
	pr.cancel()
	<-pr.done
}

// probe checks the primary while the publisher is away from it: a stream
// whose heartbeats are all acknowledged for ReturnAfter closes ready.
func (p *Publisher) probe(ctx context.Context, c pb.PortUsageServiceClient, ready chan struct{}) {
	for {
		res, _, err := p.link(ctx, c, 0, linkOpts{healthyFor: p.opts.ReturnAfter, probe: true})
		switch res {
		case linkCanceled:
			return
		case linkHealthy:
			close(ready)
			return
		}
		p.log.Debug("port-usage primary not healthy", "endpoint", p.opts.Endpoints[0], "reason", err)
		t := time.NewTimer(min(p.opts.Interval, p.opts.AckTimeout))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
