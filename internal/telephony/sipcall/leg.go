package sipcall

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// The SIP capabilities Dialtone states (RFC 3261 §20.5, §20.37): on every
// INVITE, on 405 and on OPTIONS. Supported is empty: Dialtone uses no
// extension (no 100rel, no session timers of its own).
const allowed = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"

// cancelWait is how long a cancelled INVITE waits for its final response
// (RFC 3261 §9.1: 64*T1) before its transaction is destroyed.
const cancelWait = 64 * 500 * time.Millisecond

// stopGrace and byeStopWait bound a leg's INVITE (CANCEL included) and its
// BYE once the dialer stops, so that a node that lost leadership or shuts
// down sends nothing more after 2 s even to far ends that never answer
// (a 3PCC call: the IVR's BYE, then the callee's).
const (
	stopGrace   = time.Second
	byeStopWait = 800 * time.Millisecond
)

var (
	// errNoAnswer: the INVITE was cancelled and no final response came
	// within 64*T1.
	errNoAnswer = errors.New("no final response to a cancelled INVITE")
	// errTimeout: the INVITE transaction timed out (Timer B) or failed in
	// transport.
	errTimeout = errors.New("INVITE transaction timed out")
	// errHandedOver: the dialer stopped and the call is left, as it is on
	// the wire, to the next leader (Options.Handover): nothing was sent.
	errHandedOver = errors.New("call handed over to the next leader")
)

// precommit commits the callee INVITE's pending state before the INVITE
// is sent (write-ahead, with handover): an INVITE a far end has is one the
// next leader can adopt (its final response, its CANCEL at the ring
// deadline). Without, a leader change between the INVITE and its commit
// left a ringing call no leader knew of, and its request was dialled again
// while it rang. The INVITE's Via (its branch) is added here so that the
// state names it. A failed commit sends nothing (telephony.ErrNotSent).
func (l *leg) precommit(ctx context.Context) error {
	if l.commitNow == nil || !l.b.handover {
		return nil
	}
	if err := sipgo.ClientRequestBuild(l.cli, l.invite); err != nil {
		return fmt.Errorf("sipcall: INVITE: %w", err)
	}
	if err := commitSync(ctx, l); err != nil {
		return fmt.Errorf("%w: dialog state not committed before the INVITE: %w", telephony.ErrNotSent, err)
	}
	l.precommitted = true
	return nil
}

// handedOver reports whether the call's dialer stopped with handover on:
// from then on the leg sends nothing (no CANCEL, ACK or BYE); the next
// leader adopts it from its replicated state, and the far end's
// retransmissions (of a final response, of a BYE) reach that leader at
// the service address.
func (l *leg) handedOver() bool {
	if !l.b.handover || l.stop == nil {
		return false
	}
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// leg is one dialog Dialtone set up as UAC: the callee's, or the IVR
// application's on a media server. It is built on sipgo's transaction
// layer (retransmissions, ACK of non-2xx, Timer B), but every request of
// the dialog — INVITE, CANCEL, ACK, BYE, re-INVITE — is composed here, so
// that CANCEL carries exactly the INVITE's Request-URI, top Via, Route,
// From, To, Call-ID and CSeq number (§9.1) and nothing of the early
// dialog, which sipgo's DialogClientSession gets wrong (it adds the 1xx's
// Record-Route and a Contact, and terminates the INVITE transaction when
// the CANCEL fails, so a late final response goes un-ACKed).
type leg struct {
	b    *Backend
	cli  *sipgo.Client
	name string // "callee" or "ivr", for logs

	invite *sip.Request // the INVITE as last sent (after a digest challenge, the second)
	tx     sip.ClientTransaction

	mu        sync.Mutex
	ok        *sip.Response       // the 2xx that set the dialog up
	target    sip.Uri             // remote target (the 2xx's Contact)
	routes    []string            // route set: the 2xx's Record-Route, reversed
	cseq      uint32              // last local CSeq
	key       string              // Call-ID and local tag
	remoteSDP []byte              // the far end's current session description
	localSDP  []byte              // ours (what we last gave the far end)
	busy      bool                // a re-INVITE or UPDATE of ours is pending (glare: 491)
	peer      *leg                // the other leg of a 3PCC call (nil in direct mode)
	written   func()              // called once the INVITE's write returned (nil: nothing)
	early     func(*sip.Response) // called with each provisional response but 100 (preconnect.go: early media)
	stop      <-chan struct{}     // closed when the dialer stops (the call's ctx): hand over, or give up within stopGrace
	cctx      context.Context     // the call's ctx (nil: not bound to a call)

	ended    chan struct{} // closed when the dialog ended (either side's BYE)
	endOnce  sync.Once
	byRemote bool // the far end sent BYE
	endedAt  time.Time
	info     []*sip.Request // INFO requests received (CPD reports)
	byeReq   *sip.Request   // the far end's BYE

	// Replicated state (adopt.go): report, when set, commits the leg's
	// DialogState (INVITE sent, dialog established and confirmed, CSeq or
	// session changes) for a new leader to adopt.
	report        func(*leg)
	commitNow     func(context.Context, []*fsmpb.DialogState) error // write-ahead (commitSync); nil: not replicated
	remoteEnded   time.Time                                         // the far end's BYE came (committed before its 200)
	byeCommitting bool                                              // its commit is in progress (retransmissions wait for it)
	precommitted  bool                                              // the pending INVITE's state was committed before it was sent
	handed        bool                                              // forgotten (handed over): sends nothing more
	to            *sip.ToHeader                                     // the dialog's To (with the remote tag), once established
	confirmed     bool                                              // the 2xx was ACKed
	connected     time.Time                                         // when the call was connected (for min_connected)
	deadline      time.Time                                         // when it must end (max_call_duration); zero: never
	server        string                                            // the media server of an IVR leg
	ackTmpl       *sip.Request                                      // the ACK of the 2xx, re-sent to its retransmissions
	// Session timer (RFC 4028): the negotiated interval, whether we
	// refresh, and when the session was last refreshed.
	sessionExpires time.Duration
	weRefresh      bool
	refreshed      time.Time
}

// commit reports the leg's state for replication, if it is replicated.
func (l *leg) commit() {
	if l.report != nil {
		l.report(l)
	}
}

// answer is what the INVITE transaction of a leg ended with.
type answer struct {
	res       *sip.Response // the final response (nil: none, see err)
	cancelled bool          // we sent CANCEL (ring timeout or ctx)
	err       error         // errTimeout, errNoAnswer or a transport error
}

// sendInvite sends the leg's INVITE and waits until its INVITE client
// transaction has a final response or has ended: a ring timeout (ring > 0)
// or ctx sends CANCEL once a provisional response has come (§9.1), and
// the transaction is still waited for — its final response (487, or a 2xx
// or other code that crossed the CANCEL) is ACKed by the transaction layer
// for a non-2xx and returned — for up to 64*T1. So an attempt never ends
// while its INVITE transaction may still produce a call.
func (l *leg) sendInvite(ctx context.Context, ring time.Duration, username, password string) answer {
	tx, err := l.cli.TransactionRequest(context.WithoutCancel(ctx), l.invite)
	if l.written != nil {
		l.written() // the INVITE's write returned (sipgo writes in the call)
	}
	if err != nil {
		return answer{err: fmt.Errorf("%w: %w", errTimeout, err)}
	}
	l.tx = tx
	if !l.precommitted {
		l.commit() // the pending INVITE: a new leader can CANCEL it
	}
	var ringC <-chan time.Time
	if ring > 0 {
		t := time.NewTimer(ring)
		defer t.Stop()
		ringC = t.C
	}
	done, stopC := ctx.Done(), l.stop
	provisional, wantCancel, cancelled, stopping := false, false, false, false
	var giveUp <-chan time.Time
	var cancelTx sip.ClientTransaction
	auth, sessionRetries := 0, 0
	cancel := func() {
		wantCancel, ringC, done = true, nil, nil
		if provisional && !cancelled {
			cancelled = true
			cancelTx = l.sendCancel()
			if !stopping {
				giveUp = time.After(cancelWait)
			}
		}
	}
	for {
		select {
		case r := <-l.tx.Responses():
			switch {
			case r.IsProvisional():
				if r.StatusCode > 100 && l.early != nil {
					l.early(r)
				}
				if r.StatusCode > 100 || !provisional {
					provisional = true
					if wantCancel {
						cancel()
					}
				}
				continue
			case r.IsSuccess():
				return answer{res: r, cancelled: wantCancel}
			}
			if (r.StatusCode == 401 || r.StatusCode == 407) && password != "" && auth < 2 && !wantCancel {
				auth++
				// The failed transaction ACKs the challenge itself; the
				// new INVITE (CSeq+1, new branch) is a new transaction.
				l.tx.Terminate()
				tx, err := l.cli.TransactionDigestAuth(context.WithoutCancel(ctx), l.invite, r, sipgo.DigestAuth{Username: username, Password: password})
				if err != nil {
					return answer{err: fmt.Errorf("%w: %w", errTimeout, err)}
				}
				l.tx, provisional = tx, false
				l.commit()
				continue
			}
			if r.StatusCode == statusSessionIntervalTooSmall && sessionRetries < 2 && !wantCancel {
				// 422 (RFC 4028 §6): ask again with the far end's Min-SE.
				if mse := minSE(r); mse > 0 {
					sessionRetries++
					l.tx.Terminate()
					inv := l.invite.Clone()
					inv.RemoveHeader("Via")
					inv.ReplaceHeader(sip.NewHeader("Session-Expires", strconv.Itoa(int(mse/time.Second))+";refresher=uac"))
					inv.CSeq().SeqNo++
					l.invite = inv
					tx, err := l.cli.TransactionRequest(context.WithoutCancel(ctx), l.invite)
					if err != nil {
						return answer{err: fmt.Errorf("%w: %w", errTimeout, err)}
					}
					l.tx, provisional = tx, false
					l.commit()
					continue
				}
			}
			return answer{res: r, cancelled: wantCancel}
		case <-l.tx.Done():
			return answer{err: fmt.Errorf("%w: %w", errTimeout, l.tx.Err()), cancelled: wantCancel}
		case <-ringC:
			cancel()
		case <-done:
			if l.handedOver() {
				l.tx.Terminate() // no retransmission, no CANCEL
				return answer{err: errHandedOver, cancelled: wantCancel}
			}
			cancel()
		case <-stopC:
			if l.handedOver() {
				l.tx.Terminate()
				return answer{err: errHandedOver, cancelled: wantCancel}
			}
			// The dialer stops (leadership lost, shutdown): CANCEL, then
			// stop sending within stopGrace whatever the far end does
			// (issue: stopped entirely within 2 s). A final response after
			// that goes unACKed; the half-open rule (docs/dialer.md) covers
			// the next leader's re-dial.
			stopC, stopping = nil, true
			cancel()
			giveUp = time.After(stopGrace)
		case <-giveUp:
			l.tx.Terminate()
			if cancelTx != nil {
				cancelTx.Terminate() // no more CANCEL retransmissions
			}
			return answer{err: errNoAnswer, cancelled: true}
		}
	}
}

// inviteHopRequest is a request of the INVITE's own transaction (a CANCEL,
// or the ACK of a non-2xx final response; RFC 3261 §9.1, §17.1.1.3): the
// INVITE's Request-URI, top Via (same branch), Route, From, Call-ID and
// CSeq number with method, the given To, Max-Forwards, and no body.
func inviteHopRequest(inv *sip.Request, method sip.RequestMethod, to *sip.ToHeader) *sip.Request {
	r := sip.NewRequest(method, *inv.Recipient.Clone())
	r.SipVersion = inv.SipVersion
	r.AppendHeader(sip.HeaderClone(inv.Via()))
	for _, h := range inv.GetHeaders("Route") {
		r.AppendHeader(sip.HeaderClone(h))
	}
	mf := sip.MaxForwardsHeader(70)
	r.AppendHeader(&mf)
	r.AppendHeader(sip.HeaderClone(inv.From()))
	r.AppendHeader(sip.HeaderClone(to))
	r.AppendHeader(sip.HeaderClone(inv.CallID()))
	r.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: method})
	r.SetBody(nil)
	r.SetTransport(inv.Transport())
	r.SetDestination(inv.Destination())
	r.Laddr = inv.Laddr
	return r
}

// sendCancel sends CANCEL for the pending INVITE (RFC 3261 §9.1): the same
// Request-URI, Call-ID, To, From and CSeq number, the INVITE's top Via
// only (same branch), the INVITE's Route, Max-Forwards, no Contact and no
// body. Its own transaction runs in the background: whether it is answered
// or not, the INVITE transaction is what the caller waits for.
func (l *leg) sendCancel() sip.ClientTransaction {
	if l.handedOver() {
		return nil
	}
	c := inviteHopRequest(l.invite, sip.CANCEL, l.invite.To())
	if ua := l.b.cfg.UserAgent; ua != "" {
		c.AppendHeader(sip.NewHeader("User-Agent", ua))
	}
	tx, err := l.cli.TransactionRequest(context.Background(), c, keepHeaders)
	if err != nil {
		l.b.log.Debug("CANCEL not sent", "leg", l.name, "err", err)
		return nil
	}
	go func() {
		defer tx.Terminate()
		for {
			select {
			case r := <-tx.Responses():
				if !r.IsProvisional() {
					return
				}
			case <-tx.Done():
				return
			}
		}
	}()
	return tx
}

// keepHeaders sends a request exactly as composed (sipgo's default build
// would add what is missing; a CANCEL or ACK here misses nothing).
func keepHeaders(*sipgo.Client, *sip.Request) error { return nil }

// establish records the dialog of a 2xx (RFC 3261 §12.1.2) and registers
// it for in-dialog requests.
func (l *leg) establish(res *sip.Response) error {
	if res.Contact() == nil {
		return errors.New("2xx without Contact")
	}
	if res.To() == nil || !res.To().Params.Has("tag") {
		return errors.New("2xx without To tag")
	}
	l.mu.Lock()
	l.ok = res
	l.to = sip.HeaderClone(res.To()).(*sip.ToHeader)
	l.sessionExpires, l.weRefresh = sessionTimer(res)
	l.refreshed = time.Now()
	l.target = *res.Contact().Address.Clone()
	l.routes = nil
	rr := res.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- {
		l.routes = append(l.routes, rr[i].Value())
	}
	l.cseq = l.invite.CSeq().SeqNo
	l.remoteSDP = sdpBody(res)
	l.mu.Unlock()
	l.ended = make(chan struct{})
	l.b.legs.Store(l.key, l)
	return nil
}

// inDialog composes a request within the dialog (RFC 3261 §12.2.1.1):
// Request-URI the remote target, Route the route set (strict routing when
// its first entry lacks lr), the dialog's From, To and Call-ID.
func (l *leg) inDialog(method sip.RequestMethod, cseq uint32) *sip.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	uri := *l.target.Clone()
	routes := slices.Clone(l.routes)
	if len(routes) > 0 {
		var first sip.Uri
		params := sip.NewParams()
		_, err := sip.ParseAddressValue(routes[0], &first, &params)
		if err == nil && first.Host != "" && (first.UriParams == nil || !first.UriParams.Has("lr")) {
			// Strict routing: the first route becomes the Request-URI, the
			// remote target the last route.
			uri = first
			routes = append(routes[1:], "<"+l.target.String()+">")
		}
	}
	req := sip.NewRequest(method, uri)
	req.SipVersion = l.invite.SipVersion
	for _, r := range routes {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.HeaderClone(l.invite.From()))
	req.AppendHeader(sip.HeaderClone(l.to))
	req.AppendHeader(sip.HeaderClone(l.invite.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	if method != sip.ACK && method != sip.BYE {
		req.AppendHeader(sip.HeaderClone(l.invite.Contact()))
	}
	if ua := l.b.cfg.UserAgent; ua != "" {
		req.AppendHeader(sip.NewHeader("User-Agent", ua))
	}
	req.SetTransport(l.invite.Transport())
	return req
}

func (l *leg) nextCSeq() uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cseq++
	return l.cseq
}

// ack sends the ACK of the 2xx, with body (an SDP answer, or nil), and
// re-sends it for every retransmission of the 2xx (§13.2.2.4).
func (l *leg) ack(body []byte) error {
	if l.handedOver() || l.isHanded() {
		return errHandedOver // the 2xx is retransmitted to the next leader
	}
	ack := l.inDialog(sip.ACK, l.invite.CSeq().SeqNo)
	setSDP(ack, body)
	if err := l.cli.WriteRequest(ack, sipgo.ClientRequestBuild); err != nil {
		return err
	}
	l.mu.Lock()
	if body != nil {
		l.localSDP = body
	}
	l.confirmed = true
	l.ackTmpl = ack.Clone()
	l.mu.Unlock()
	if l.tx != nil {
		l.tx.OnRetransmission(func(r *sip.Response) {
			if r.IsSuccess() {
				l.reack()
			}
		})
	}
	return nil
}

// reack re-sends the ACK of the 2xx (a retransmission of the 2xx came).
func (l *leg) reack() {
	l.mu.Lock()
	tmpl := l.ackTmpl
	l.mu.Unlock()
	if tmpl != nil {
		_ = l.cli.WriteRequest(tmpl.Clone(), keepHeaders)
	}
}

// bye ends the dialog from our side and waits (bounded) for the answer.
func (l *leg) bye() {
	if l.ended == nil || l.isEnded() {
		return
	}
	if l.handedOver() {
		l.forget() // the next leader ends it, if it is to end
		return
	}
	l.end(false)
	wait := byeTimeout
	select {
	case <-l.stop:
		wait = byeStopWait // the dialer stops: both legs' BYEs within 2 s
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req := l.inDialog(sip.BYE, l.nextCSeq())
	req.SetBody(nil)
	tx, err := l.cli.TransactionRequest(ctx, req, sipgo.ClientRequestBuild)
	if err != nil {
		l.b.log.Debug("BYE not sent", "leg", l.name, "err", err)
		return
	}
	defer tx.Terminate()
	for {
		select {
		case r := <-tx.Responses():
			if !r.IsProvisional() {
				return
			}
		case <-tx.Done():
			return
		case <-ctx.Done():
			return
		}
	}
}

// end marks the dialog ended (once) and unregisters it.
func (l *leg) end(byRemote bool) {
	l.endOnce.Do(func() {
		l.mu.Lock()
		l.byRemote, l.endedAt = byRemote, time.Now()
		l.mu.Unlock()
		l.b.legs.Delete(l.key)
		close(l.ended)
		if l.tx != nil {
			l.tx.Terminate()
		}
	})
}

func (l *leg) isEnded() bool {
	select {
	case <-l.ended:
		return true
	default:
		return false
	}
}

// reinvite sends a re-INVITE (or, with update, an UPDATE) with an offer
// and returns the final response; a 2xx to a re-INVITE is ACKed.
func (l *leg) reinvite(ctx context.Context, offer []byte, update bool) (*sip.Response, error) {
	l.mu.Lock()
	if l.busy {
		l.mu.Unlock()
		return nil, errGlare
	}
	l.busy = true
	l.mu.Unlock()
	defer func() { l.mu.Lock(); l.busy = false; l.mu.Unlock() }()
	method := sip.INVITE
	if update {
		method = sip.UPDATE
	}
	cseq := l.nextCSeq()
	req := l.inDialog(method, cseq)
	req.AppendHeader(sip.NewHeader("Allow", allowed))
	setSDP(req, offer)
	tx, err := l.cli.TransactionRequest(ctx, req, sipgo.ClientRequestBuild)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	for {
		select {
		case r := <-tx.Responses():
			if r.IsProvisional() {
				continue
			}
			if r.IsSuccess() {
				if !update {
					ack := l.inDialog(sip.ACK, cseq)
					ack.SetBody(nil)
					_ = l.cli.WriteRequest(ack, sipgo.ClientRequestBuild)
				}
				l.mu.Lock()
				if b := sdpBody(r); b != nil {
					l.remoteSDP = b
				}
				if b := offer; b != nil {
					l.localSDP = b
				}
				if c := r.Contact(); c != nil {
					l.target = *c.Address.Clone() // a target refresh
				}
				l.mu.Unlock()
			}
			return r, nil
		case <-tx.Done():
			return nil, tx.Err()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

var errGlare = errors.New("a re-INVITE of ours is pending")

// onRequest handles a request the far end sent within this leg's dialog.
func (l *leg) onRequest(req *sip.Request, tx sip.ServerTransaction) {
	switch req.Method {
	case sip.BYE:
		l.onBye(req, tx)
	case sip.ACK:
		// The ACK of our 2xx to a re-INVITE: its answer, if any, is the far
		// end's new description.
		if b := sdpBody(req); b != nil {
			l.mu.Lock()
			l.remoteSDP = b
			l.mu.Unlock()
		}
	case sip.INVITE, sip.UPDATE:
		l.onOffer(req, tx)
	case sip.INFO:
		l.mu.Lock()
		l.info = append(l.info, req)
		l.mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	case sip.OPTIONS:
		res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		res.AppendHeader(sip.NewHeader("Allow", allowed))
		_ = tx.Respond(res)
	default:
		res := sip.NewResponseFromRequest(req, sip.StatusMethodNotAllowed, "Method Not Allowed", nil)
		res.AppendHeader(sip.NewHeader("Allow", allowed))
		_ = tx.Respond(res)
	}
}

// onBye ends the dialog at the far end's BYE. A replicated leg commits
// the end first and answers 200 only once it is committed (write-ahead,
// in a goroutine of its own: the server's handler must not wait for
// Raft): if leadership ends before, the BYE gets no answer from this node,
// and its retransmission reaches the next leader, which adopted the call
// and answers it; answered here and not committed, the next leader would
// hold a call the far end has ended (and BYE it at its deadline).
func (l *leg) onBye(req *sip.Request, tx sip.ServerTransaction) {
	respond := func() {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
		l.end(true)
	}
	l.mu.Lock()
	if l.byeCommitting {
		l.mu.Unlock()
		return // a retransmission: the first is being committed
	}
	l.byeReq = req
	l.remoteEnded = time.Now()
	writeAhead := l.commitNow != nil && l.b.handover && l.cctx != nil
	l.byeCommitting = writeAhead
	l.mu.Unlock()
	if !writeAhead {
		respond()
		return
	}
	l.b.byes.Go(func() {
		if err := commitEnd(l.cctx, l); err != nil {
			// Leadership is being lost (the commit's error often comes
			// before the call's context ends): the BYE is left unanswered
			// for the next leader, which adopted the call. Were this node
			// still leading, the retransmission gets 481 once the dialog
			// is forgotten, which ends it at the far end all the same.
			l.b.log.Debug("BYE left to the next leader", "leg", l.name, "err", err)
			l.forget()
			return
		}
		respond()
	})
}

// onOffer answers a re-INVITE or UPDATE from the far end. In a 3PCC call
// an offer is relayed to the other leg (a re-INVITE there) and its answer
// returned; in direct mode, and for an offerless request, the answer is
// the description this leg already has from us (a session refresh changes
// nothing). A re-INVITE while one of ours is pending gets 491 (§14.1).
func (l *leg) onOffer(req *sip.Request, tx sip.ServerTransaction) {
	respond := func(code int, reason string, body []byte, hdrs ...sip.Header) {
		res := sip.NewResponseFromRequest(req, code, reason, nil)
		for _, h := range hdrs {
			res.AppendHeader(h)
		}
		if code >= 200 && code < 300 {
			res.AppendHeader(sip.HeaderClone(l.invite.Contact()))
			res.AppendHeader(sip.NewHeader("Allow", allowed))
			res.AppendHeader(sip.NewHeader("Supported", "timer"))
			if se := l.onRefresh(req); se != "" {
				res.AppendHeader(sip.NewHeader("Require", "timer"))
				res.AppendHeader(sip.NewHeader("Session-Expires", se))
			}
		}
		setSDP(res, body)
		_ = tx.Respond(res)
	}
	offer := sdpBody(req)
	l.mu.Lock()
	if l.busy {
		l.mu.Unlock()
		respond(sip.StatusRequestPending, "Request Pending", nil)
		return
	}
	local := l.localSDP
	peer := l.peer
	l.mu.Unlock()
	if offer != nil {
		l.mu.Lock()
		l.remoteSDP = offer
		l.mu.Unlock()
	}
	if offer == nil || peer == nil || peer.isEnded() {
		if offer != nil && peer == nil {
			// Direct mode: answer the new offer as the ACK did.
			ans, err := inactiveAnswer(offer, l.b.host)
			if err != nil {
				respond(sip.StatusNotAcceptableHere, "Not Acceptable Here", nil, warning(err.Error()))
				return
			}
			local = ans
		}
		if local == nil {
			respond(sip.StatusNotAcceptableHere, "Not Acceptable Here", nil, warning("no session description to offer"))
			return
		}
		respond(sip.StatusOK, "OK", local)
		return
	}
	// 3PCC: relay the offer to the other leg.
	ctx, cancel := context.WithTimeout(l.b.ctx, 10*time.Second)
	defer cancel()
	res, err := peer.reinvite(ctx, offer, false)
	switch {
	case errors.Is(err, errGlare):
		respond(sip.StatusRequestPending, "Request Pending", nil)
	case err != nil:
		respond(sip.StatusInternalServerError, "Relay Failed", nil, warning(err.Error()))
	case !res.IsSuccess() || sdpBody(res) == nil:
		respond(sip.StatusNotAcceptableHere, "Not Acceptable Here", nil, warning("the other party answered "+strconv.Itoa(res.StatusCode)))
	default:
		l.mu.Lock()
		l.localSDP = sdpBody(res)
		l.mu.Unlock()
		respond(sip.StatusOK, "OK", sdpBody(res))
		// Both legs' descriptions moved (and the peer's CSeq): replicated,
		// so that a next leader answers a refresh with the media as it is.
		l.commit()
		peer.commit()
	}
}

// warning is a Warning header (RFC 3261 §20.43) with code 399
// (miscellaneous) from this host.
func warning(text string) sip.Header {
	return sip.NewHeader("Warning", `399 dialtone "`+sanitizeQuoted(text)+`"`)
}

func sanitizeQuoted(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r == '"' || r == '\\' || r < 0x20 {
			r = ' '
		}
		out = append(out, r)
	}
	return string(out)
}
