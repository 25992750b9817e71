package sipcall

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// Takeover: a live call's dialogs are replicated (fsmpb.DialogState on
// the attempt, committed by the dialer when the backend reports them), and
// a new leader that owns the service address rebuilds them (Adopt) and
// carries the call on to its real end. See docs/sip.md, "Failover".

// DialogCSeqGap is how far above a dialog's committed local CSeq a new
// leader continues: the old leader may have sent requests (BYE, a
// refresh, a relayed re-INVITE) after its last commit, and a far end
// rejects a CSeq not above the last it saw (RFC 3261 §12.2.2). The old
// leader commits on every session refresh, so the gap only has to cover
// the requests of a few seconds.
const DialogCSeqGap = 100

// strayGrace is how long after binding the service address a 2xx that no
// dialog owns is left alone rather than ACKed and hung up: the new leader
// is still adopting its predecessor's dialogs, and the far end
// retransmits (every T2 = 4 s, for 32 s).
const strayGrace = 5 * time.Second

// state is the leg's replicated state.
func (l *leg) state() *fsmpb.DialogState {
	l.mu.Lock()
	defer l.mu.Unlock()
	inv := l.invite
	st := &fsmpb.DialogState{
		Leg:         l.name,
		CallId:      inv.CallID().Value(),
		From:        inv.From().Value(),
		To:          inv.To().Value(),
		LocalCseq:   max(l.cseq, inv.CSeq().SeqNo),
		RequestUri:  inv.Recipient.String(),
		InviteCseq:  inv.CSeq().SeqNo,
		Destination: inv.Destination(),
		Transport:   inv.Transport(),
		Confirmed:   l.confirmed,
		LocalSdp:    l.localSDP,
		RemoteSdp:   l.remoteSDP,
		Server:      l.server,
	}
	if v := inv.Via(); v != nil {
		st.InviteVia = v.Value()
		st.InviteBranch, _ = v.Params.Get("branch")
	}
	for _, r := range inv.GetHeaders("Route") {
		st.InviteRoutes = append(st.InviteRoutes, r.Value())
	}
	if l.to != nil {
		st.To = l.to.Value()
		st.Established = true
		st.RemoteTarget = l.target.String()
		st.RouteSet = append([]string(nil), l.routes...)
		st.SessionExpiresS = uint32(l.sessionExpires / time.Second)
		st.WeRefresh = l.weRefresh
	}
	if !l.connected.IsZero() {
		st.ConnectedUnixMs = l.connected.UnixMilli()
	}
	if !l.deadline.IsZero() {
		st.DeadlineUnixMs = l.deadline.UnixMilli()
	}
	if !l.remoteEnded.IsZero() {
		st.RemoteEndedUnixMs = l.remoteEnded.UnixMilli()
		if h := l.b.cfg.DetectionHeader; h != "" && l.byeReq != nil {
			if v := l.byeReq.GetHeader(h); v != nil {
				st.ByeDetection = v.Value()
			}
		}
	}
	return st
}

// bind ties the leg to call c placed under ctx: its replication hooks
// (none when the dialer does not replicate dialogs) and its stop, which is
// ctx ending (leadership lost, node stopping).
func (l *leg) bind(ctx context.Context, c telephony.Call) {
	l.stop, l.cctx = ctx.Done(), ctx
	if c.Dialog != nil {
		l.report = func(l *leg) { c.Dialog(l.state()) }
		l.commitNow = c.DialogCommit
	}
}

// commitSync replicates the legs' state and waits for it (write-ahead of
// an ACK or a BYE's 200). Without a synchronous hook the state is only
// reported (the dialer queues it), and nil returned. It fails once the
// call's context ends: the node no longer leads.
func commitSync(ctx context.Context, legs ...*leg) error {
	var states []*fsmpb.DialogState
	var commit func(context.Context, []*fsmpb.DialogState) error
	for _, l := range legs {
		if l != nil && l.commitNow != nil {
			commit = l.commitNow
			states = append(states, l.state())
		}
	}
	if commit == nil {
		for _, l := range legs {
			if l != nil {
				l.commit()
			}
		}
		return nil
	}
	return commit(ctx, states)
}

// restore rebuilds a leg from its replicated state. The INVITE is parsed
// back from its replicated headers, so that CANCEL and the ACK of a
// non-2xx carry exactly what the old leader sent.
func (b *Backend) restore(st *fsmpb.DialogState, cli *sipgo.Client, contact sip.ContactHeader) (*leg, error) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "INVITE %s SIP/2.0\r\nVia: %s\r\n", st.RequestUri, st.InviteVia)
	for _, r := range st.InviteRoutes {
		fmt.Fprintf(&sb, "Route: %s\r\n", r)
	}
	fmt.Fprintf(&sb, "Max-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d INVITE\r\nContent-Length: 0\r\n\r\n", st.From, st.To, st.CallId, st.InviteCseq)
	m, err := sip.ParseMessage([]byte(sb.String()))
	if err != nil {
		return nil, fmt.Errorf("dialog %s: %w", st.CallId, err)
	}
	inv, ok := m.(*sip.Request)
	if !ok || inv.Via() == nil || inv.From() == nil || inv.To() == nil || inv.CallID() == nil || inv.CSeq() == nil {
		return nil, fmt.Errorf("dialog %s: incomplete INVITE", st.CallId)
	}
	to := sip.HeaderClone(inv.To()).(*sip.ToHeader)
	inv.To().Params.Remove("tag")
	inv.AppendHeader(&contact)
	inv.SetTransport(st.Transport)
	if st.Destination != "" {
		inv.SetDestination(st.Destination)
	}
	if err := sipgo.ClientRequestBuild(cli, inv); err != nil { // sets the local address
		return nil, err
	}
	l := b.newLeg(st.Leg, cli, inv)
	l.cseq = max(st.LocalCseq, st.InviteCseq) + DialogCSeqGap
	l.localSDP, l.remoteSDP = st.LocalSdp, st.RemoteSdp
	l.server = st.Server
	l.confirmed = st.Confirmed
	if st.ConnectedUnixMs != 0 {
		l.connected = time.UnixMilli(st.ConnectedUnixMs)
	}
	if st.DeadlineUnixMs != 0 {
		l.deadline = time.UnixMilli(st.DeadlineUnixMs)
	}
	if st.Established {
		if err := sip.ParseUri(st.RemoteTarget, &l.target); err != nil {
			return nil, fmt.Errorf("dialog %s: remote target: %w", st.CallId, err)
		}
		l.to = to
		l.routes = append([]string(nil), st.RouteSet...)
		l.sessionExpires, l.weRefresh = time.Duration(st.SessionExpiresS)*time.Second, st.WeRefresh
		l.refreshed = time.Now()
		l.ended = make(chan struct{})
		if l.confirmed {
			ack := l.inDialog(sip.ACK, st.InviteCseq)
			setSDP(ack, l.localSDP)
			if err := sipgo.ClientRequestBuild(cli, ack); err == nil {
				l.ackTmpl = ack
			}
		}
	}
	return l, nil
}

// Adopt continues a call another leader placed, from its replicated
// dialogs, and blocks until it has ended like Place: an established call
// is held (in-dialog requests answered, session refreshed, BYE at its
// deadline) and its real outcome returned; a callee INVITE still pending
// gets its final response adopted (a 2xx is connected as Place would,
// CANCEL at the ring deadline); a 3PCC call caught between its two
// INVITEs is ended on both legs and reported as an internal IVR failure
// (not counted, retried). It needs the service address (Lead): without
// it the far ends' requests reach the dead node.
func (b *Backend) Adopt(ctx context.Context, c telephony.Call, dialogs []*fsmpb.DialogState) (telephony.Outcome, error) {
	t := b.route(c.Tenant)
	if t == nil {
		return telephony.Outcome{}, fmt.Errorf("sipcall: %w %q", ErrNoTrunk, c.Tenant)
	}
	var calleeSt, ivrSt *fsmpb.DialogState
	for _, d := range dialogs {
		switch d.GetLeg() {
		case "callee":
			calleeSt = d
		case "ivr":
			ivrSt = d
		}
	}
	if calleeSt == nil && ivrSt != nil {
		return b.endLoneIVR(ctx, c, ivrSt) // a preconnect call before its callee's INVITE
	}
	if calleeSt == nil {
		return telephony.Outcome{}, errors.New("sipcall: no callee dialog to adopt")
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return telephony.Outcome{}, fmt.Errorf("sipcall: backend closed: %w", context.Canceled)
	}
	b.calls.Add(1)
	b.mu.Unlock()
	defer b.calls.Done()
	t.active.Add(1) // the call is up already: max_calls does not refuse it
	b.m.inProgress.WithLabelValues(t.Name).Inc()
	defer func() {
		t.active.Add(-1)
		b.m.inProgress.WithLabelValues(t.Name).Dec()
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()

	pool := b.ivrFor(c.Tenant, c.IVRProfile)
	callee, err := b.restore(calleeSt, t.cli, t.contact)
	if err != nil {
		return telephony.Outcome{}, err
	}
	callee.bind(ctx, c)
	var ivr *leg
	var server *mediaServer
	if ivrSt != nil && pool != nil {
		if ivr, err = b.restore(ivrSt, pool.cli, pool.contact); err != nil {
			return telephony.Outcome{}, err
		}
		ivr.bind(ctx, c)
		server = pool.server(ivrSt.Server)
	}
	if server == nil && pool != nil && ivrSt == nil {
		// The IVR leg was not sent yet (a callee still ringing, or just
		// answered): its media server is chosen now, as Place would have
		// (nil: every server full; answered then fails the IVR leg).
		server = pool.pick(b.ports)
	} else if server != nil {
		server.active.Add(1)
	}
	if server != nil {
		defer server.active.Add(-1)
	}
	b.m.adopted.Inc()
	if calleeSt.GetRemoteEndedUnixMs() != 0 || ivrSt.GetRemoteEndedUnixMs() != 0 {
		return b.adoptEnded(ctx, c, calleeSt, ivrSt, callee, ivr)
	}
	switch {
	case callee.confirmed && (pool == nil || ivr != nil && ivr.confirmed):
		// An established call: take its dialogs over and hold it.
		for _, l := range []*leg{callee, ivr} {
			if l != nil {
				b.legs.Store(l.key, l)
			}
		}
		if ivr != nil {
			callee.peer, ivr.peer = ivr, callee
		}
		callee.commit() // the new CSeq base
		if ivr != nil {
			ivr.commit()
		}
		// Confirmed is committed before the ACK is sent (write-ahead), so
		// the predecessor may have lost leadership in between: a recent
		// call's ACK is sent once more. A duplicate ACK of a 2xx is
		// discarded by the far end (§13.3.1.4 stops the 2xx retransmission
		// at the first); a missing one would leave the far end to give the
		// call up once its retransmissions end.
		for _, l := range []*leg{callee, ivr} {
			if l != nil && time.Since(l.connected) < cancelWait {
				l.reack()
			}
		}
		b.log.Info("adopted a call", "request", c.RequestID, "call_id", calleeSt.CallId)
		return b.hold(ctx, b.outcomes["200"], callee, ivr)
	case !calleeSt.Established && ivr != nil && ivr.confirmed:
		// A preconnect call whose callee was still ringing: end both.
		return b.endPreconnectSetup(ctx, callee, ivr)
	case !calleeSt.Established:
		b.log.Info("adopted a pending INVITE", "request", c.RequestID, "call_id", calleeSt.CallId)
		return b.adoptPending(ctx, t, c, callee, pool, server)
	}
	// Between the callee's 2xx and the IVR's: end both legs.
	b.log.Info("ending a call caught in setup", "request", c.RequestID, "call_id", calleeSt.CallId)
	if ivr != nil {
		b.endLeg(ctx, ivr, ivrSt.Established, false)
	}
	b.endLeg(ctx, callee, true, offerless("callee", c))
	if ctx.Err() != nil {
		return telephony.Outcome{}, ctx.Err()
	}
	return b.event("ivr-failed", "setup interrupted by a leader change"), nil
}

// adoptEnded finishes a call one of whose legs the far end had ended
// (its BYE committed and answered) when leadership moved: the other leg
// is ended if it is up, and the outcome is what hold would have returned.
func (b *Backend) adoptEnded(ctx context.Context, c telephony.Call, calleeSt, ivrSt *fsmpb.DialogState, callee, ivr *leg) (telephony.Outcome, error) {
	b.log.Info("adopted a call its far end had ended", "request", c.RequestID, "call_id", calleeSt.CallId)
	ended, who := calleeSt, "callee"
	gone, other, otherSt := callee, ivr, ivrSt
	if calleeSt.GetRemoteEndedUnixMs() == 0 {
		ended, who = ivrSt, "IVR"
		gone, other, otherSt = ivr, callee, calleeSt
	}
	if gone != nil && gone.ended != nil {
		// The predecessor committed the far end's BYE but may not have
		// answered it: its retransmissions get their 200 here for 64*T1.
		b.legs.Store(gone.key, gone)
		time.AfterFunc(cancelWait, func() { gone.end(false) })
	}
	if other != nil && otherSt.GetRemoteEndedUnixMs() == 0 {
		b.endLeg(ctx, other, otherSt.Established, offerless(other.name, c))
	}
	if ctx.Err() != nil {
		return telephony.Outcome{}, ctx.Err()
	}
	if d := ivrSt.GetByeDetection(); d != "" {
		if o, ok := b.outcomes["detect:"+strings.ToLower(strings.TrimSpace(d))]; ok {
			o.Reason += " (SIP BYE)"
			return o, nil
		}
	}
	connected := calleeSt.GetConnectedUnixMs()
	if connected == 0 || time.Duration(ended.GetRemoteEndedUnixMs()-connected)*time.Millisecond < b.cfg.MinConnected.Duration {
		return b.event("short-call", who+" hung up"), nil
	}
	return b.outcomes["200"], nil
}

// server is the pool's media server with this address (nil: none).
func (p *ivrPool) server(addr string) *mediaServer {
	for _, s := range p.servers {
		if s.addr == addr {
			return s
		}
	}
	return nil
}

// adoptPending waits for the final response of an INVITE the old leader
// sent (the far end sends it to the service address, where it arrives
// without a client transaction: onStray routes it here by its branch),
// CANCELs it at its ring deadline, and goes on as Place would.
func (b *Backend) adoptPending(ctx context.Context, t *trunk, c telephony.Call, callee *leg, pool *ivrPool, server *mediaServer) (telephony.Outcome, error) {
	res, cancelled, err := b.awaitFinal(ctx, callee, callee.deadline)
	if err != nil {
		if ctx.Err() != nil {
			return telephony.Outcome{}, ctx.Err()
		}
		// No final response came to the CANCELled INVITE: it may have
		// been answered and ACKed by the old leader after its last commit.
		// Not known: interrupted (the dialer's half-open rules apply).
		return telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_INTERRUPTED, Reason: "Interrupted (no final response after a leader change)"}, nil
	}
	b.m.responses.WithLabelValues(t.Name, strconv.Itoa(res.StatusCode)).Inc()
	if !res.IsSuccess() {
		if cancelled && res.StatusCode == sip.StatusRequestTerminated {
			return b.ringNoAnswer(), nil
		}
		return b.outcomes.classify(res, b.cfg.DetectionHeader), nil
	}
	return b.answered(ctx, t, c, callee, answer{res: res, cancelled: cancelled}, pool, server)
}

// cancelPending CANCELs a pending INVITE of a predecessor and waits for
// its final response (ACKing it; a 2xx is ACKed and hung up).
func (b *Backend) cancelPending(ctx context.Context, l *leg) {
	res, _, err := b.awaitFinal(ctx, l, time.Now())
	if err != nil || !res.IsSuccess() {
		return
	}
	if err := l.establish(res); err != nil {
		return
	}
	var body []byte
	if offer := sdpBody(res); offer != nil && l.localSDP == nil { // not an answer to our offer (preconnect)
		body, _ = inactiveAnswer(offer, b.host)
	}
	_ = l.ack(body)
	l.bye()
}

// awaitFinal waits for the final response of l's INVITE, sent by another
// process: CANCEL at cancelAt (zero: never), then at most 64*T1 more. A
// non-2xx final response is ACKed here (§17.1.1.3: the ACK has the
// INVITE's branch).
func (b *Backend) awaitFinal(ctx context.Context, l *leg, cancelAt time.Time) (*sip.Response, bool, error) {
	branch, _ := l.invite.Via().Params.Get("branch")
	ch := make(chan *sip.Response, 16)
	b.pending.Store(branch, ch)
	defer b.pending.Delete(branch)
	var cancelC <-chan time.Time
	if !cancelAt.IsZero() {
		t := time.NewTimer(time.Until(cancelAt))
		defer t.Stop()
		cancelC = t.C
	}
	done := ctx.Done()
	cancelled := false
	var giveUp <-chan time.Time
	doCancel := func() {
		cancelC, done = nil, nil
		if !cancelled {
			cancelled = true
			l.sendCancel()
			t := time.NewTimer(cancelWait)
			giveUp = t.C
		}
	}
	for {
		select {
		case r := <-ch:
			if r.IsProvisional() {
				continue
			}
			if !r.IsSuccess() {
				b.ackFinal(l, r)
			}
			return r, cancelled, nil
		case <-cancelC:
			doCancel()
		case <-done:
			if l.handedOver() {
				return nil, cancelled, errHandedOver // to the next leader, as it is
			}
			doCancel()
		case <-giveUp:
			return nil, true, errNoAnswer
		}
	}
}

// ackFinal sends the ACK of a non-2xx final response to l's INVITE (RFC
// 3261 §17.1.1.3), which the transaction layer of the process that sent
// the INVITE would have sent.
func (b *Backend) ackFinal(l *leg, res *sip.Response) {
	ack := inviteHopRequest(l.invite, sip.ACK, res.To())
	_ = l.cli.WriteRequest(ack, keepHeaders)
}

// onStray handles a response no client transaction owns: the final
// response of a predecessor's INVITE being adopted (by branch); a
// retransmitted 2xx of an adopted dialog (ACKed again); or a 2xx of a
// dialog nobody owns — a predecessor's call no one adopted — which is
// ACKed and hung up (§13.2.2.4), once the adoption had time to start.
func (b *Backend) onStray(res *sip.Response) {
	cs, via := res.CSeq(), res.Via()
	if cs == nil || cs.MethodName != sip.INVITE || via == nil || res.CallID() == nil || res.From() == nil {
		return
	}
	if branch, ok := via.Params.Get("branch"); ok {
		if ch, ok := b.pending.Load(branch); ok {
			select {
			case ch.(chan *sip.Response) <- res:
			default:
			}
			return
		}
	}
	if !res.IsSuccess() {
		return
	}
	tag, _ := res.From().Params.Get("tag")
	if v, ok := b.legs.Load(legKey(res.CallID().Value(), tag)); ok {
		v.(*leg).reack()
		return
	}
	if b.unsettled() {
		return
	}
	b.calls.Add(1)
	go func() { // bounded by byeTimeout
		defer b.calls.Done()
		b.endStray(res)
	}()
}

// commitEnd replicates the far end's end of l as an end mark (the state
// machine merges it into the leg's stored state) and waits for it, as
// commitSync.
func commitEnd(ctx context.Context, l *leg) error {
	if l.commitNow == nil {
		l.commit()
		return nil
	}
	l.mu.Lock()
	mark := &fsmpb.DialogState{Leg: l.name, RemoteEndedUnixMs: l.remoteEnded.UnixMilli()}
	if h := l.b.cfg.DetectionHeader; h != "" && l.byeReq != nil {
		if v := l.byeReq.GetHeader(h); v != nil {
			mark.ByeDetection = v.Value()
		}
	}
	l.mu.Unlock()
	return l.commitNow(ctx, []*fsmpb.DialogState{mark})
}

// unsettled reports whether, with a service address, a message for a
// dialog this node does not have must be left unanswered: the term of
// leadership ended (the address is being released and the dialog was
// handed over) or began less than strayGrace ago (the predecessor's calls
// are still being adopted). Without a service address the node's own
// dialogs are all there are: false.
func (b *Backend) unsettled() bool {
	if b.svcAddr == "" {
		return false
	}
	if t := b.term.Load(); t == nil || (*t).Err() != nil {
		return true
	}
	since := b.leadSince.Load()
	return since == 0 || time.Since(time.UnixMilli(since)) < strayGrace
}

// endStray ACKs a 2xx nobody owns and hangs its dialog up.
func (b *Backend) endStray(res *sip.Response) {
	if res.Contact() == nil || res.To() == nil {
		return
	}
	cli := b.svcClient
	if cli == nil {
		return
	}
	inv := sip.NewRequest(sip.INVITE, *res.Contact().Address.Clone())
	inv.AppendHeader(sip.HeaderClone(res.Via()))
	inv.AppendHeader(sip.HeaderClone(res.From()))
	to := sip.HeaderClone(res.To()).(*sip.ToHeader)
	to.Params.Remove("tag")
	inv.AppendHeader(to)
	inv.AppendHeader(sip.HeaderClone(res.CallID()))
	inv.AppendHeader(sip.HeaderClone(res.CSeq()))
	inv.AppendHeader(&b.svcContact)
	inv.SetTransport("UDP")
	l := b.newLeg("stray", cli, inv)
	if err := l.establish(res); err != nil {
		return
	}
	var body []byte
	if offer := sdpBody(res); offer != nil {
		body, _ = inactiveAnswer(offer, b.host)
	}
	_ = l.ack(body)
	b.log.Info("ended a dialog nobody owned", "call_id", res.CallID().Value())
	b.m.strays.Inc()
	l.bye()
}
