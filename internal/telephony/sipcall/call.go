package sipcall

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// ivrPool is one [[telephony.sip.ivr]] entry: an application on a pool of
// media servers.
type ivrPool struct {
	config.SIPIVR
	transport string
	cli       *sipgo.Client
	contact   sip.ContactHeader
	mu        sync.Mutex // serialises picking, so two legs never take one last port
	servers   []*mediaServer
}

// mediaServer counts the IVR legs Dialtone has up on one server.
type mediaServer struct {
	addr   string
	active atomic.Int64
}

func newIVRPool(v config.SIPIVR, clients map[string]*sipgo.Client, contacts map[string]sip.ContactHeader) *ivrPool {
	p := &ivrPool{SIPIVR: v, transport: strings.ToUpper(v.Transport)}
	if p.transport == "" {
		p.transport = "UDP"
	}
	if p.URI == "" {
		p.URI = "sip:{ivr_profile}@{server}"
	}
	if p.Profile == "" {
		p.Profile = "*"
	}
	p.cli, p.contact = clients[p.transport], contacts[p.transport]
	for _, s := range v.Servers {
		p.servers = append(p.servers, &mediaServer{addr: s})
	}
	return p
}

// ivrFor is the pool serving a tenant's profile: an entry naming both
// first, then one naming the profile for every tenant, then a "*" profile.
func (b *Backend) ivrFor(tenant, profile string) *ivrPool {
	score := func(p *ivrPool) int {
		tenantOK := len(p.Tenants) == 0 || slices.Contains(p.Tenants, "*")
		named := slices.Contains(p.Tenants, tenant)
		switch {
		case p.Profile == profile && named:
			return 4
		case p.Profile == profile && tenantOK:
			return 3
		case p.Profile == "*" && named:
			return 2
		case p.Profile == "*" && tenantOK:
			return 1
		}
		return 0
	}
	var best *ivrPool
	for _, p := range b.ivr {
		if s := score(p); s > 0 && (best == nil || s > score(best)) {
			best = p
		}
	}
	return best
}

// pick takes a leg slot on the least loaded media server with a free port:
// its free ports as reported to the port-usage cache (a stale server has
// none), else its configured ports less Dialtone's legs on it. nil when
// every server is full.
func (p *ivrPool) pick(ports ServerPorts) *mediaServer {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best *mediaServer
	bestFree := 0
	for _, s := range p.servers {
		free, reported := 0, false
		if ports != nil {
			free, reported = ports.FreePorts(s.addr)
		}
		if !reported {
			free = math.MaxInt32 - int(s.active.Load())
			if p.Ports > 0 {
				free = p.Ports - int(s.active.Load())
			}
		}
		if free > bestFree {
			best, bestFree = s, free
		}
	}
	if best != nil {
		best.active.Add(1)
	}
	return best
}

// onRequest dispatches a request from the network: within one of our
// dialogs to its leg; otherwise OPTIONS is answered with our capabilities,
// a new INVITE declined (Dialtone only calls out), BYE and other in-dialog
// requests get 481, and an unknown method 405 with Allow.
func (b *Backend) onRequest(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && req.CallID() != nil {
		if tag, ok := to.Params.Get("tag"); ok {
			if v, ok := b.legs.Load(legKey(req.CallID().Value(), tag)); ok {
				v.(*leg).onRequest(req, tx)
				return
			}
			if b.unsettled() {
				// Not answered: this node's term ended (the dialog was
				// handed over) or began moments ago (still adopting), and
				// a 481 would end a call the leader holds. The far end
				// retransmits to the service address.
				return
			}
			if req.Method != sip.ACK && req.Method != sip.OPTIONS {
				_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
				return
			}
		}
	}
	switch req.Method {
	case sip.ACK:
	case sip.OPTIONS:
		res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		res.AppendHeader(sip.NewHeader("Allow", allowed))
		res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
		_ = tx.Respond(res)
	case sip.INVITE:
		res := sip.NewResponseFromRequest(req, sip.StatusNotAcceptableHere, "Not Acceptable Here", nil)
		res.AppendHeader(warning("Dialtone places outbound calls only"))
		_ = tx.Respond(res)
	case sip.BYE, sip.UPDATE, sip.INFO:
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
	default:
		res := sip.NewResponseFromRequest(req, sip.StatusMethodNotAllowed, "Method Not Allowed", nil)
		res.AppendHeader(sip.NewHeader("Allow", allowed))
		_ = tx.Respond(res)
	}
}

func legKey(callID, localTag string) string { return callID + "\x00" + localTag }

func (b *Backend) newLeg(name string, cli *sipgo.Client, inv *sip.Request) *leg {
	tag, _ := inv.From().Params.Get("tag")
	return &leg{b: b, cli: cli, name: name, invite: inv, key: legKey(inv.CallID().Value(), tag)}
}

// Place places one call and blocks until it has ended. See the package
// doc for the flows; outcomes are mapped by the outcome table.
func (b *Backend) Place(ctx context.Context, c telephony.Call) (telephony.Outcome, error) {
	t := b.route(c.Tenant)
	if t == nil {
		return telephony.Outcome{}, fmt.Errorf("sipcall: %w %q", ErrNoTrunk, c.Tenant)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return telephony.Outcome{}, fmt.Errorf("sipcall: backend closed: %w", context.Canceled)
	}
	b.calls.Add(1) // under mu: never concurrent with Close's Wait from zero
	b.mu.Unlock()
	defer b.calls.Done()
	if !t.acquire() {
		b.m.refused.WithLabelValues(t.Name).Inc()
		return telephony.Outcome{}, fmt.Errorf("sipcall: trunk %s has %d calls in progress (max_calls): %w", t.Name, t.MaxCalls, telephony.ErrFull)
	}
	b.m.inProgress.WithLabelValues(t.Name).Inc()
	defer func() {
		t.active.Add(-1)
		b.m.inProgress.WithLabelValues(t.Name).Dec()
	}()
	pool := b.ivrFor(c.Tenant, c.IVRProfile)
	var server *mediaServer
	if pool != nil {
		if server = pool.pick(b.ports); server == nil {
			b.m.refused.WithLabelValues(t.Name).Inc()
			return telephony.Outcome{}, fmt.Errorf("sipcall: IVR profile %s: every media server is full or stale: %w", c.IVRProfile, telephony.ErrFull)
		}
		defer server.active.Add(-1)
	}
	// The backend's own lifetime bounds every call too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()

	if t.limiter != nil {
		if err := t.limiter.Wait(ctx); err != nil {
			return telephony.Outcome{}, fmt.Errorf("sipcall: trunk %s caps: %w", t.Name, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return telephony.Outcome{}, err // stopped before the INVITE: send nothing
	}
	req, err := b.invite(t, c)
	if err != nil {
		return telephony.Outcome{}, err
	}
	out, err := b.dial(ctx, t, c, req, pool, server)
	if err == nil {
		b.m.outcomes.WithLabelValues(t.Name, strings.ToLower(strings.TrimPrefix(out.Class.String(), "OUTCOME_"))).Inc()
	}
	return out, err
}

// event is the outcome table's entry for a call-level event, with what
// happened in SIP terms.
func (b *Backend) event(name, detail string) telephony.Outcome {
	o := b.outcomes["event:"+name]
	o.Reason += " (" + detail + ")"
	return o
}

// dial runs the callee's leg and, with an IVR pool, the IVR leg (RFC 3725
// flow I, see docs/sip.md).
func (b *Backend) dial(ctx context.Context, t *trunk, c telephony.Call, req *sip.Request, pool *ivrPool, server *mediaServer) (telephony.Outcome, error) {
	if pool != nil && c.Cpd.GetPreconnect() {
		return b.preconnect(ctx, t, c, req, pool, server) // the IVR leg first (preconnect.go)
	}
	callee := b.newLeg("callee", t.cli, req)
	callee.bind(ctx, c)        // replication; the dialer stops: handover or bounded teardown (leg.go)
	callee.written = c.Written // the dialer's window logs: the INVITE left
	ring := b.ringTimeout(c.Cpd)
	if ring > 0 {
		callee.deadline = time.Now().Add(ring) // while pending: when a new leader CANCELs it
	}
	// Write-ahead of the INVITE (before the pacer's slot, so that the
	// commit's latency does not move the send off its slot).
	if err := callee.precommit(ctx); err != nil {
		return telephony.Outcome{}, err
	}
	// The dialer's pacer and leadership fence decide here, immediately
	// before the INVITE is written: a refusal sends nothing.
	if err := c.Send(ctx); err != nil {
		return telephony.Outcome{}, err
	}
	b.m.invites.WithLabelValues(t.Name).Inc()
	ans := callee.sendInvite(ctx, ring, t.Username, t.Password)
	if ans.err != nil {
		switch {
		case ctx.Err() != nil:
			return telephony.Outcome{}, ctx.Err()
		case errors.Is(ans.err, errNoAnswer):
			b.m.responses.WithLabelValues(t.Name, "487").Inc()
			return b.ringNoAnswer(), nil
		default:
			b.log.Debug("INVITE failed", "trunk", t.Name, "request", c.RequestID, "err", ans.err)
			if errors.Is(ans.err, sip.ErrTransactionTimeout) {
				return internal("timeout"), nil
			}
			return internal("transport"), nil
		}
	}
	b.m.responses.WithLabelValues(t.Name, strconv.Itoa(ans.res.StatusCode)).Inc()
	if !ans.res.IsSuccess() {
		// The transaction layer ACKed it.
		if ctx.Err() != nil {
			return telephony.Outcome{}, ctx.Err()
		}
		if ans.cancelled && ans.res.StatusCode == sip.StatusRequestTerminated {
			return b.ringNoAnswer(), nil
		}
		return b.outcomes.classify(ans.res, b.cfg.DetectionHeader), nil
	}
	return b.answered(ctx, t, c, callee, ans, pool, server)
}

// answered goes on with a callee's 2xx: direct mode ACKs and holds it;
// 3PCC sets the IVR leg up with its offer first.
func (b *Backend) answered(ctx context.Context, t *trunk, c telephony.Call, callee *leg, ans answer, pool *ivrPool, server *mediaServer) (telephony.Outcome, error) {
	if err := callee.establish(ans.res); err != nil {
		b.log.Debug("bad 2xx", "trunk", t.Name, "request", c.RequestID, "err", err)
		return internal("bad 2xx"), nil
	}
	offer := sdpBody(ans.res)
	// Until the callee is connected to something, its ACK carries an
	// answer that sends and receives nothing.
	hangUp := func() {
		var body []byte
		if offer != nil {
			body, _ = inactiveAnswer(offer, b.host)
		}
		if err := callee.ack(body); err != nil {
			b.log.Warn("ACK failed", "err", err)
		}
		callee.bye()
	}
	if ans.cancelled || ctx.Err() != nil {
		// A 2xx crossed our CANCEL: answer it and hang up.
		hangUp()
		if ctx.Err() != nil {
			return telephony.Outcome{}, ctx.Err()
		}
		return b.ringNoAnswer(), nil
	}
	out := b.outcomes.classify(ans.res, b.cfg.DetectionHeader)
	if out.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS {
		// The far end reported an answering machine or fax: hang up.
		hangUp()
		return out, nil
	}
	if pool == nil {
		// Direct mode: the far end applies the treatment itself.
		var body []byte
		if offer != nil {
			var err error
			if body, err = inactiveAnswer(offer, b.host); err != nil {
				_ = callee.ack(nil)
				callee.bye()
				return b.event("no-offer", err.Error()), nil
			}
		}
		callee.mu.Lock()
		callee.localSDP = body // the ACK's answer, replicated with it
		callee.mu.Unlock()
		if err := b.connect(ctx, callee, nil); err != nil {
			_ = callee.ack(body)
			callee.bye()
			return telephony.Outcome{}, err
		}
		if err := callee.ack(body); err != nil {
			callee.bye()
			if ctx.Err() != nil {
				return telephony.Outcome{}, ctx.Err() // handed over (or hung up) with leadership
			}
			return internal("ACK failed"), nil
		}
		return b.hold(ctx, out, callee, nil)
	}
	if offer == nil {
		// RFC 3261 §13.3.1.4: a 2xx to an offerless INVITE must offer.
		_ = callee.ack(nil)
		callee.bye()
		return b.event("no-offer", "SIP 200 without SDP"), nil
	}

	// The IVR leg: the callee's offer to the application; stopped when the
	// callee hangs up (it may once it gives up on its ACK) or ctx ends.
	if server == nil { // an adopted call whose pool had no free server
		hangUp()
		return b.event("ivr-failed", "every media server is full or stale"), nil
	}
	ivr, err := b.ivrInvite(pool, server, c, offer)
	if err != nil {
		hangUp()
		return b.event("ivr-failed", err.Error()), nil
	}
	ivr.server = server.addr
	callee.deadline = time.Time{}
	callee.commit() // answered, not yet ACKed: a new leader ends it

	ivr.bind(ctx, c)
	ivrCtx, ivrCancel := context.WithCancel(ctx)
	go func() { // ends with ivrCancel below at the latest
		select {
		case <-callee.ended:
			ivrCancel()
		case <-ivrCtx.Done():
		}
	}()
	ia := ivr.sendInvite(ivrCtx, b.cfg.IVRAnswerTimeout.Duration, "", "")
	ivrCancel()
	b.m.ivrResponses.WithLabelValues(pool.Profile, ivrCode(ia)).Inc()
	if ia.res == nil || !ia.res.IsSuccess() || sdpBody(ia.res) == nil || ivr.establish(ia.res) != nil {
		detail := "SIP " + ivrCode(ia)
		if ia.res != nil && ia.res.IsSuccess() {
			// A 2xx without an answer (or unusable): confirm and end it.
			if ivr.ended != nil {
				_ = ivr.ack(nil)
				ivr.bye()
			}
			detail = "SIP 200 without SDP answer"
		}
		switch {
		case ctx.Err() != nil:
			hangUp()
			return telephony.Outcome{}, ctx.Err()
		case callee.isEnded():
			return b.event("callee-hangup", "before the IVR answered"), nil
		}
		hangUp()
		return b.event("ivr-failed", detail), nil
	}
	if callee.isEnded() || ctx.Err() != nil {
		_ = ivr.ack(nil)
		ivr.bye()
		if ctx.Err() != nil {
			return telephony.Outcome{}, ctx.Err()
		}
		return b.event("callee-hangup", "before the IVR answered"), nil
	}
	// Linked before the ACKs: either party may re-INVITE as soon as it has
	// its ACK, and its offer must then be relayed.
	callee.mu.Lock()
	callee.peer, callee.localSDP = ivr, sdpBody(ia.res)
	callee.mu.Unlock()
	ivr.mu.Lock()
	ivr.peer, ivr.localSDP = callee, offer
	ivr.mu.Unlock()
	if err := b.connect(ctx, callee, ivr); err != nil {
		_ = ivr.ack(nil)
		ivr.bye()
		_ = callee.ack(sdpBody(ia.res))
		callee.bye()
		return telephony.Outcome{}, err
	}
	_ = ivr.ack(nil)
	if err := callee.ack(sdpBody(ia.res)); err != nil {
		ivr.bye()
		callee.bye()
		if ctx.Err() != nil {
			return telephony.Outcome{}, ctx.Err() // handed over (or hung up) with leadership
		}
		return internal("ACK failed"), nil
	}
	if o := b.outcomes.classify(ia.res, b.cfg.DetectionHeader); o.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS {
		// The media server detected a machine or fax at once.
		ivr.bye()
		callee.bye()
		return o, nil
	}
	return b.hold(ctx, out, callee, ivr)
}

// ivrCode is the IVR leg's final status code, or what went wrong.
func ivrCode(a answer) string {
	switch {
	case a.res != nil:
		return strconv.Itoa(a.res.StatusCode)
	case errors.Is(a.err, errNoAnswer):
		return "timeout"
	case errors.Is(a.err, sip.ErrTransactionTimeout):
		return "timeout"
	}
	return "transport"
}

// ivrInvite composes the IVR leg's INVITE: the application's URI on the
// chosen server, Dialtone's headers, and the callee's offer.
func (b *Backend) ivrInvite(p *ivrPool, s *mediaServer, c telephony.Call, offer []byte) (*leg, error) {
	host, _, _ := net.SplitHostPort(s.addr)
	uri := strings.NewReplacer("{ivr_profile}", c.IVRProfile, "{server}", s.addr, "{host}", host, "{tenant}", c.Tenant).Replace(p.URI)
	var recipient sip.Uri
	if err := sip.ParseUri(uri, &recipient); err != nil {
		return nil, fmt.Errorf("Request-URI %q: %w", uri, err)
	}
	route := ""
	if net.JoinHostPort(recipient.Host, strconv.Itoa(recipient.Port)) != s.addr {
		route = s.addr
	}
	req := b.buildInvite(recipient, p.transport, route, p.contact, c)
	setSDP(req, offer)
	return b.newLeg("ivr", p.cli, req), nil
}

// hold keeps a connected call up until either party hangs up (the other
// is then hung up), max_call_duration, or ctx ends, and classifies how it
// ended: a far-end hang-up within min_connected is a ShortCall; a CPD
// result the media server reports in an INFO or its BYE overrides
// success.
func (b *Backend) hold(ctx context.Context, out telephony.Outcome, callee, ivr *leg) (telephony.Outcome, error) {
	callee.mu.Lock()
	connected, deadline := callee.connected, callee.deadline
	callee.mu.Unlock()
	if connected.IsZero() {
		connected = time.Now()
	}
	var limit <-chan time.Time
	if !deadline.IsZero() {
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		limit = timer.C
	}
	var ivrEnded <-chan struct{}
	if ivr != nil {
		ivrEnded = ivr.ended
	}
	// Session timers of both legs: a leg whose session expired (or whose
	// refresh the far end refused) ends the call.
	sctx, scancel := context.WithCancel(ctx)
	expired := make(chan string, 2)
	var watchers sync.WaitGroup
	for _, l := range []*leg{callee, ivr} {
		if l != nil {
			watchers.Go(func() {
				if l.sessionWatch(sctx) {
					expired <- l.name
				}
			})
		}
	}
	defer func() { scancel(); watchers.Wait() }()
	who := ""
	select {
	case <-callee.ended:
		who = "callee"
	case <-ivrEnded:
		who = "IVR"
	case name := <-expired:
		b.log.Info("session expired", "leg", name)
		who = name
	case <-limit:
	case <-ctx.Done():
	}
	if who == "" && ctx.Err() != nil && b.handsOver() {
		// Leadership ended with the service address: the calls are handed
		// over to the next leader, which adopts them from their replicated
		// dialogs. Nothing is sent; the dialogs are forgotten here.
		callee.forget()
		if ivr != nil {
			ivr.forget()
		}
		return telephony.Outcome{}, ctx.Err()
	}
	callee.bye()
	if ivr != nil {
		ivr.bye()
	}
	if who == "" && ctx.Err() != nil {
		return telephony.Outcome{}, ctx.Err()
	}
	if ivr != nil {
		if o, ok := b.reported(ivr); ok {
			return o, nil
		}
	}
	if who != "" && time.Since(connected) < b.cfg.MinConnected.Duration {
		b.log.Debug("short call", "who", who, "connected", time.Since(connected))
		return b.event("short-call", who+" hung up"), nil
	}
	return out, nil
}

// connect marks the call connected, immediately before its legs' 2xx are
// ACKed: it is held until max_call_duration from now, and the legs' state
// is committed confirmed before the ACKs leave (write-ahead): a far end
// that has its ACK has a call the next leader knows of. An error means
// the commit failed — leadership is being lost (the error often comes
// before the call's context ends) or the node stops: with handover the
// legs are then forgotten (their ACK and BYE send nothing) and the 2xx's
// retransmissions left to the next leader; the caller ACKs and hangs up,
// which without handover ends the call.
func (b *Backend) connect(ctx context.Context, callee, ivr *leg) error {
	now := time.Now()
	var deadline time.Time
	if d := b.cfg.MaxCallDuration.Duration; d > 0 {
		deadline = now.Add(d)
	}
	for _, l := range []*leg{callee, ivr} {
		if l != nil {
			l.mu.Lock()
			if l.connected.IsZero() {
				l.connected, l.deadline = now, deadline
			}
			l.confirmed = true
			l.mu.Unlock()
		}
	}
	if err := commitSync(ctx, callee, ivr); err != nil {
		b.log.Warn("dialog state not committed: the ACK is left to the next leader", "call_id", callee.invite.CallID().Value(), "err", err)
		if b.handover {
			callee.forget()
			if ivr != nil {
				ivr.forget()
			}
		}
		return fmt.Errorf("sipcall: dialog state not committed before the ACK: %w", err)
	}
	return nil
}

// reported is a CPD result the media server sent in the detection header
// of an INFO or its BYE.
func (b *Backend) reported(ivr *leg) (telephony.Outcome, bool) {
	h := b.cfg.DetectionHeader
	if h == "" {
		return telephony.Outcome{}, false
	}
	ivr.mu.Lock()
	msgs := slices.Clone(ivr.info)
	if ivr.byeReq != nil {
		msgs = append(msgs, ivr.byeReq)
	}
	ivr.mu.Unlock()
	for i := len(msgs) - 1; i >= 0; i-- {
		if v := msgs[i].GetHeader(h); v != nil {
			if o, ok := b.outcomes["detect:"+strings.ToLower(strings.TrimSpace(v.Value()))]; ok {
				o.Reason += " (SIP " + string(msgs[i].Method) + ")"
				return o, true
			}
		}
	}
	return telephony.Outcome{}, false
}

func (b *Backend) ringNoAnswer() telephony.Outcome {
	out := telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_TEMPORARY, Reason: "RingNoAnswer"}
	if o, ok := b.outcomes["487"]; ok {
		out = o
	}
	out.Reason += " (SIP 487)"
	return out
}

func (b *Backend) ringTimeout(cpd *fsmpb.Cpd) time.Duration {
	if ms := cpd.GetRnaTimeoutMs(); ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return b.cfg.RingTimeout.Duration
}
