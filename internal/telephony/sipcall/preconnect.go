package sipcall

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// preconnect places a 3PCC call with cpd.preconnect: the IVR leg is set up
// before the callee is called, so that the media server receives the
// callee's media from its first early-media packet (docs/sip.md, "A
// preconnect call"):
//
//  1. INVITE the media server without an offer; its 2xx offers O1; ACK it
//     at once with a held answer (O1's first format, a=inactive): the
//     media server's 2xx must be ACKed within its own timers, not after
//     the callee's whole ring time.
//  2. INVITE the callee with O1, so the callee's gateway sends its early
//     media (and later its media) straight to the media server.
//  3. The first 1xx with SDP (the callee's early answer A1) is sent to the
//     media server as a re-INVITE offer (A1 under our SDP origin), so the
//     media server knows where the callee is while it is still ringing.
//  4. The callee's 2xx (its answer) is ACKed at once (the offer was in the
//     INVITE, the ACK has no body); if that answer differs from what the
//     media server was given, the media server is re-INVITEd with it.
//
// A callee that fails (busy, no answer, ring timeout) hangs up the IVR leg
// and is reported as the callee's outcome; a media server that fails
// (refuses, no answer, no offer, or hangs up while the callee rings) is
// an internal IVRFailed outcome, and the callee is never called (or is
// cancelled / hung up).
func (b *Backend) preconnect(ctx context.Context, t *trunk, c telephony.Call, req *sip.Request, pool *ivrPool, server *mediaServer) (telephony.Outcome, error) {
	// The pacer and leadership fence decide before the first INVITE.
	if err := c.Send(ctx); err != nil {
		return telephony.Outcome{}, err
	}
	ivr, err := b.ivrInvite(pool, server, c, nil)
	if err != nil {
		return b.event("ivr-failed", err.Error()), nil
	}
	ivr.bind(ctx, c)
	ivr.server = server.addr
	// The call's first request is the media server's INVITE: the dialer's
	// send windows settle on its write (holding them until the callee's
	// INVITE would stall every other send for the media server's answer
	// time). The trunk's INVITEs then lag their pacing slots by it.
	ivr.written = c.Written
	ia := ivr.sendInvite(ctx, b.cfg.IVRAnswerTimeout.Duration, "", "")
	b.m.ivrResponses.WithLabelValues(pool.Profile, ivrCode(ia)).Inc()
	var msOffer []byte
	if ia.res != nil {
		msOffer = sdpBody(ia.res)
	}
	if ia.res == nil || !ia.res.IsSuccess() || msOffer == nil || ivr.establish(ia.res) != nil {
		detail := "SIP " + ivrCode(ia)
		if ia.res != nil && ia.res.IsSuccess() {
			if ivr.ended != nil {
				_ = ivr.ack(nil) // no offer: nothing to answer
				ivr.bye()
			}
			detail = "SIP 200 without SDP offer"
		}
		if ctx.Err() != nil {
			return telephony.Outcome{}, ctx.Err()
		}
		return b.event("ivr-failed", detail), nil
	}
	held, err := inactiveAnswer(msOffer, b.host)
	if err != nil {
		_ = ivr.ack(nil)
		ivr.bye()
		return b.event("ivr-failed", "SIP 200 with an unusable offer"), nil
	}
	if err := ivr.ack(held); err != nil {
		ivr.bye()
		if ctx.Err() != nil {
			return telephony.Outcome{}, ctx.Err() // handed over (or hung up) with leadership
		}
		return internal("ACK failed"), nil
	}
	ivr.commit()
	if ctx.Err() != nil {
		ivr.bye()
		return telephony.Outcome{}, ctx.Err()
	}

	// The callee, with the media server's offer.
	setSDP(req, msOffer)
	b.m.invites.WithLabelValues(t.Name).Inc()
	callee := b.newLeg("callee", t.cli, req)
	callee.bind(ctx, c)
	callee.localSDP = msOffer // replicated: the callee's 2xx answers it (cancelPending)
	ring := b.ringTimeout(c.Cpd)
	if ring > 0 {
		callee.deadline = time.Now().Add(ring)
	}
	// A media server that hangs up while the callee rings cancels it.
	calleeCtx, calleeCancel := context.WithCancel(ctx)
	defer calleeCancel()
	go func() { // ends with calleeCancel at the latest
		select {
		case <-ivr.ended:
			calleeCancel()
		case <-calleeCtx.Done():
		}
	}()
	// Early media: the callee's first early answer goes to the media
	// server in a re-INVITE, off the INVITE's own loop (ring timeout and
	// CANCEL must not wait for it).
	rel := &relay{b: b, ivr: ivr}
	var once sync.Once
	callee.early = func(r *sip.Response) {
		if body := sdpBody(r); body != nil {
			once.Do(func() { rel.send(calleeCtx, body) })
		}
	}
	if err := callee.precommit(ctx); err != nil {
		ivr.bye()
		return telephony.Outcome{}, err
	}
	ans := callee.sendInvite(calleeCtx, ring, t.Username, t.Password)
	if ans.err != nil || !ans.res.IsSuccess() {
		rel.wait()
		ivrGone := ivr.isEnded()
		ivr.bye()
		switch {
		case ctx.Err() != nil:
			return telephony.Outcome{}, ctx.Err()
		case ivrGone:
			return b.event("ivr-failed", "IVR hung up while the callee rang"), nil
		case ans.err != nil && errors.Is(ans.err, errNoAnswer):
			b.m.responses.WithLabelValues(t.Name, "487").Inc()
			return b.ringNoAnswer(), nil
		case ans.err != nil:
			b.log.Debug("INVITE failed", "trunk", t.Name, "request", c.RequestID, "err", ans.err)
			if errors.Is(ans.err, sip.ErrTransactionTimeout) {
				return internal("timeout"), nil
			}
			return internal("transport"), nil
		}
		b.m.responses.WithLabelValues(t.Name, strconv.Itoa(ans.res.StatusCode)).Inc()
		if ans.cancelled && ans.res.StatusCode == sip.StatusRequestTerminated {
			return b.ringNoAnswer(), nil
		}
		return b.outcomes.classify(ans.res, b.cfg.DetectionHeader), nil
	}
	b.m.responses.WithLabelValues(t.Name, strconv.Itoa(ans.res.StatusCode)).Inc()
	if err := callee.establish(ans.res); err != nil {
		rel.wait()
		ivr.bye()
		b.log.Debug("bad 2xx", "trunk", t.Name, "request", c.RequestID, "err", err)
		return internal("bad 2xx"), nil
	}
	callee.mu.Lock()
	callee.deadline = time.Time{} // no longer ringing
	callee.mu.Unlock()
	if err := b.connect(ctx, callee, nil); err != nil {
		rel.wait()
		_ = callee.ack(nil)
		callee.bye()
		ivr.bye()
		return telephony.Outcome{}, err
	}
	// The offer was in the INVITE: the ACK carries nothing, and is not
	// held back for the early relay still in progress.
	ackErr := callee.ack(nil)
	rel.wait()
	if ackErr != nil {
		callee.bye()
		ivr.bye()
		if ctx.Err() != nil {
			return telephony.Outcome{}, ctx.Err() // handed over (or hung up) with leadership
		}
		return internal("ACK failed"), nil
	}
	hangUp := func() { callee.bye(); ivr.bye() }
	switch {
	case ctx.Err() != nil:
		hangUp()
		return telephony.Outcome{}, ctx.Err()
	case ivr.isEnded(): // (also when its hang-up is what cancelled the callee)
		hangUp()
		return b.event("ivr-failed", "IVR hung up while the callee rang"), nil
	case ans.cancelled:
		hangUp() // a 2xx crossed our CANCEL
		return b.ringNoAnswer(), nil
	}
	out := b.outcomes.classify(ans.res, b.cfg.DetectionHeader)
	if out.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS {
		hangUp() // the far end reported a machine or fax
		return out, nil
	}
	calleeAnswer := sdpBody(ans.res)
	if calleeAnswer == nil {
		calleeAnswer = rel.sentBody() // an unreliable 1xx answer, not repeated in the 2xx
	}
	if calleeAnswer == nil {
		hangUp()
		return b.event("no-offer", "SIP 200 without SDP answer"), nil
	}
	// The media server must know the callee's final answer.
	if !sameMedia(rel.sentBody(), calleeAnswer, true) || !rel.ok() {
		final := &relay{b: b, ivr: ivr}
		final.send(ctx, calleeAnswer)
		final.wait()
		if !final.ok() {
			hangUp()
			if ctx.Err() != nil {
				return telephony.Outcome{}, ctx.Err()
			}
			return b.event("ivr-failed", "re-INVITE "+final.detail()), nil
		}
	}
	ivr.mu.Lock()
	msAnswer := ivr.remoteSDP // the media server's answer to the callee's
	ivr.mu.Unlock()
	// Linked: either party's re-INVITE is relayed from now on.
	callee.mu.Lock()
	callee.peer, callee.localSDP = ivr, msOffer
	callee.mu.Unlock()
	ivr.mu.Lock()
	ivr.peer = callee
	ivr.mu.Unlock()
	if msAnswer != nil && !sameMedia(msAnswer, msOffer, false) {
		// The media server moved its media when it learnt the callee's
		// answer: tell the callee (its description, verbatim, continues
		// the media server's origin the callee already has).
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := callee.reinvite(rctx, msAnswer, false)
		cancel()
		if err != nil || !res.IsSuccess() {
			b.log.Warn("callee refused the media server's new description", "request", c.RequestID, "err", err)
		}
	}
	if err := b.connect(ctx, callee, ivr); err != nil {
		callee.bye()
		ivr.bye()
		return telephony.Outcome{}, err
	}
	return b.hold(ctx, out, callee, ivr)
}

// relay sends the callee's answer to the media server as a re-INVITE
// offer in the background.
type relay struct {
	b   *Backend
	ivr *leg
	wg  sync.WaitGroup

	mu   sync.Mutex
	body []byte        // the callee answer sent (nil: none)
	res  *sip.Response // the media server's final response
	err  error
}

func (r *relay) send(ctx context.Context, calleeAnswer []byte) {
	r.mu.Lock()
	r.body = calleeAnswer
	r.mu.Unlock()
	r.wg.Go(func() {
		r.ivr.mu.Lock()
		prev := r.ivr.localSDP
		r.ivr.mu.Unlock()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		stop := context.AfterFunc(ctx, cancel)
		defer stop()
		res, err := r.ivr.reinvite(rctx, nextOffer(prev, calleeAnswer), false)
		r.mu.Lock()
		r.res, r.err = res, err
		r.mu.Unlock()
	})
}

func (r *relay) wait() { r.wg.Wait() }

func (r *relay) sentBody() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.body
}

// ok: the media server accepted the callee's answer (with an SDP answer).
func (r *relay) ok() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err == nil && r.res != nil && r.res.IsSuccess() && sdpBody(r.res) != nil
}

func (r *relay) detail() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.err != nil:
		return r.err.Error()
	case r.res == nil:
		return "not sent"
	case !r.res.IsSuccess():
		return "SIP " + strconv.Itoa(r.res.StatusCode)
	}
	return "SIP 200 without SDP answer"
}

// nextOffer is body as our next offer in a session where prev is the
// description we last sent: RFC 3264 §8 wants the same o= line with its
// version incremented, so prev's origin replaces body's.
func nextOffer(prev, body []byte) []byte {
	origin := ""
	for _, line := range sdpLines(prev) {
		if f := strings.Fields(strings.TrimPrefix(line, "o=")); strings.HasPrefix(line, "o=") && len(f) == 6 {
			if v, err := strconv.ParseUint(f[2], 10, 64); err == nil {
				f[2] = strconv.FormatUint(v+1, 10)
				origin = "o=" + strings.Join(f, " ")
			}
		}
	}
	if origin == "" {
		return body
	}
	var sb strings.Builder
	for _, line := range sdpLines(body) {
		if strings.HasPrefix(line, "o=") {
			line = origin
		}
		sb.WriteString(line + "\r\n")
	}
	return []byte(sb.String())
}

// sameMedia: a and b describe the same media (c= and m= lines; the
// origin and attributes aside). Without formats, only where the media go
// (c=, and each m-line's media, port and transport) is compared: an
// answer narrows an offer's formats without moving it.
func sameMedia(a, b []byte, formats bool) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	pick := func(body []byte) string {
		var sb strings.Builder
		for _, l := range sdpLines(body) {
			switch {
			case strings.HasPrefix(l, "m=") && !formats:
				if f := strings.Fields(l); len(f) >= 3 {
					l = strings.Join(f[:3], " ")
				}
				fallthrough
			case strings.HasPrefix(l, "c=") || strings.HasPrefix(l, "m="):
				fmt.Fprintln(&sb, l)
			}
		}
		return sb.String()
	}
	return pick(a) == pick(b)
}

func sdpLines(body []byte) []string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// endLoneIVR ends, on a new leader, the IVR leg of a preconnect call
// whose callee had not been called: an internal IVR failure, retried.
func (b *Backend) endLoneIVR(ctx context.Context, c telephony.Call, st *fsmpb.DialogState) (telephony.Outcome, error) {
	pool := b.ivrFor(c.Tenant, c.IVRProfile)
	if pool == nil {
		return telephony.Outcome{}, errors.New("sipcall: no IVR pool for an IVR dialog to adopt")
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return telephony.Outcome{}, fmt.Errorf("sipcall: backend closed: %w", context.Canceled)
	}
	b.calls.Add(1) // under mu, as Place
	b.mu.Unlock()
	defer b.calls.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()
	ivr, err := b.restore(st, pool.cli, pool.contact)
	if err != nil {
		return telephony.Outcome{}, err
	}
	ivr.stop, ivr.cctx = ctx.Done(), ctx
	b.endLeg(ctx, ivr, st.Established, true)
	if ctx.Err() != nil {
		return telephony.Outcome{}, ctx.Err()
	}
	return b.event("ivr-failed", "setup interrupted by a leader change"), nil
}

// endPreconnectSetup ends, on a new leader, a preconnect call caught
// while its callee rang: the callee's INVITE is cancelled (a 2xx that
// crossed it ACKed and hung up) and the IVR leg hung up.
func (b *Backend) endPreconnectSetup(ctx context.Context, callee, ivr *leg) (telephony.Outcome, error) {
	b.log.Info("ending a preconnect call caught in setup", "call_id", callee.invite.CallID().Value())
	b.endLeg(ctx, ivr, true, true)
	b.cancelPending(ctx, callee)
	if ctx.Err() != nil {
		return telephony.Outcome{}, ctx.Err()
	}
	return b.event("ivr-failed", "setup interrupted by a leader change"), nil
}

// endLeg ends an adopted leg: a pending INVITE is CANCELled (its final
// response awaited and ACKed); an established dialog is confirmed if it
// was not and hung up. offerless: our INVITE carried no offer, so its 2xx
// did and the ACK answers it (inactive); otherwise the ACK has no body.
func (b *Backend) endLeg(ctx context.Context, l *leg, established, offerless bool) {
	if !established {
		b.cancelPending(ctx, l)
		return
	}
	b.legs.Store(l.key, l)
	if !l.confirmed {
		var body []byte
		if offerless && l.remoteSDP != nil {
			body, _ = inactiveAnswer(l.remoteSDP, b.host)
		}
		_ = l.ack(body)
	}
	l.bye()
}

// offerless reports whether leg's INVITE carried no offer: the callee's
// in flow I, the IVR leg's with cpd.preconnect.
func offerless(leg string, c telephony.Call) bool {
	return (leg == "callee") != c.Cpd.GetPreconnect()
}
