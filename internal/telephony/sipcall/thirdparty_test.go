package sipcall

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// TestCancelIsRFC3261: the CANCEL of a ringing call carries exactly the
// INVITE's Request-URI, top Via (branch), Route, From, To, Call-ID and
// CSeq number, and no Contact — not the 180's Record-Route (the test
// UAS's 180 record-routes through an address that drops everything).
func TestCancelIsRFC3261(t *testing.T) {
	u := newUAS(t)
	b := newBackend(t, u, func(c *config.SIP) {
		c.Trunks[0].RequestURI = "sip:{telnum}@callee.invalid" // the trunk becomes a pre-loaded Route
	})
	out, err := b.Place(context.Background(), call("ring"))
	if err != nil || out.Reason != "RingNoAnswer (SIP 487)" {
		t.Fatalf("Place = %v %q", err, out.Reason)
	}
	inv, cancel := u.req("INVITE ring"), u.req("CANCEL ring")
	if cancel == nil {
		t.Fatal("no CANCEL arrived")
	}
	if cancel.Recipient.String() != inv.Recipient.String() {
		t.Errorf("CANCEL Request-URI %s, INVITE's %s", cancel.Recipient.String(), inv.Recipient.String())
	}
	if vias := cancel.GetHeaders("Via"); len(vias) != 1 || cancel.Via().Params.String() != inv.Via().Params.String() {
		t.Errorf("CANCEL Via %v, INVITE's %v", vias, inv.Via())
	}
	var routes []string
	for _, r := range cancel.GetHeaders("Route") {
		routes = append(routes, r.Value())
	}
	if want := "<sip:" + u.addr + ";lr>"; len(routes) != 1 || routes[0] != want {
		t.Errorf("CANCEL Route %v, want exactly the INVITE's [%s]", routes, want)
	}
	if cancel.Contact() != nil {
		t.Errorf("CANCEL has Contact %s", cancel.Contact().Value())
	}
	if cancel.CSeq().SeqNo != inv.CSeq().SeqNo || cancel.CSeq().MethodName != sip.CANCEL {
		t.Errorf("CANCEL CSeq %s, INVITE's %s", cancel.CSeq().Value(), inv.CSeq().Value())
	}
	for _, h := range []string{"From", "To", "Call-ID"} {
		if cancel.GetHeader(h).Value() != inv.GetHeader(h).Value() {
			t.Errorf("CANCEL %s %q, INVITE's %q", h, cancel.GetHeader(h).Value(), inv.GetHeader(h).Value())
		}
	}
	if cancel.MaxForwards() == nil {
		t.Error("CANCEL without Max-Forwards")
	}
	for _, h := range []string{"Allow", "Supported"} {
		if inv.GetHeader(h) == nil {
			t.Errorf("INVITE without %s", h)
		}
	}
	if len(inv.Body()) != 0 {
		t.Errorf("INVITE to the callee has a body: %q", inv.Body())
	}
}

// TestDirectAckAnswers: in direct mode the ACK answers the 200's offer
// (RFC 3264): the first offered codec, a non-zero port, a=inactive.
func TestDirectAckAnswers(t *testing.T) {
	u := newUAS(t)
	b := newBackend(t, u, func(c *config.SIP) { c.MaxCallDuration = config.Duration{Duration: 1200 * time.Millisecond} })
	out, err := b.Place(context.Background(), call("answer"))
	if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS {
		t.Fatalf("Place = %v %s %q", err, out.Class, out.Reason)
	}
	u.waitFor(t, "ACK answer")
	ack := u.req("ACK answer")
	body := string(ack.Body())
	if ct := ack.GetHeader("Content-Type"); ct == nil || ct.Value() != "application/sdp" {
		t.Fatalf("ACK Content-Type %v", ct)
	}
	for _, want := range []string{"m=audio 9 RTP/AVP 8\r\n", "a=rtpmap:8 PCMA/8000\r\n", "a=inactive\r\n", "c=IN IP4 127.0.0.1\r\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("ACK SDP lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "PCMU") {
		t.Errorf("ACK SDP answers more than the first codec:\n%s", body)
	}
}

func ivrBackend(t *testing.T, u *uas, mod func(*config.SIP)) *Backend {
	return newBackend(t, u, func(c *config.SIP) {
		c.IVR = []config.SIPIVR{{Profile: "*", Servers: []string{u.addr}}}
		c.MaxCallDuration = config.Duration{Duration: 1200 * time.Millisecond}
		if mod != nil {
			mod(c)
		}
	})
}

func ivrCall(telnum, profile string) telephony.Call {
	c := call(telnum)
	c.IVRProfile = profile
	c.Cpd = nil
	return c
}

// TestThirdPartyCallControl: RFC 3725 flow I. The callee gets an offerless
// INVITE; its offer goes to the IVR application's INVITE; the IVR's answer
// goes in the callee's ACK; the IVR's ACK has no body; a hang-up on
// either side ends the other.
func TestThirdPartyCallControl(t *testing.T) {
	u := newUAS(t)
	b := ivrBackend(t, u, nil)
	out, err := b.Place(context.Background(), ivrCall("answer", "app1"))
	if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS || out.Reason != "TreatmentApplied (SIP 200)" {
		t.Fatalf("Place = %v %s %q", err, out.Class, out.Reason)
	}
	if inv := u.req("INVITE answer"); len(inv.Body()) != 0 {
		t.Fatalf("callee INVITE has a body")
	}
	if inv := u.req("INVITE app1"); inv == nil || string(inv.Body()) != calleeOffer || inv.GetHeader("X-Dialtone-Request-ID").Value() != "req-answer" {
		t.Fatalf("IVR INVITE %v: want the callee's offer and Dialtone's headers", inv)
	}
	if ack := u.req("ACK answer"); string(ack.Body()) != ivrAnswer {
		t.Fatalf("callee ACK body %q, want the IVR's answer", ack.Body())
	}
	if ack := u.req("ACK app1"); len(ack.Body()) != 0 {
		t.Fatalf("IVR ACK body %q, want none", ack.Body())
	}
	u.waitFor(t, "BYE-rx answer")
	u.waitFor(t, "BYE-rx app1")

	// The callee hangs up (after min_connected): the IVR leg is hung up.
	b2 := ivrBackend(t, u, func(c *config.SIP) { c.MinConnected = config.Duration{} })
	out, err = b2.Place(context.Background(), ivrCall("hangup2", "app2"))
	if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS {
		t.Fatalf("callee hang-up: %v %s %q", err, out.Class, out.Reason)
	}
	u.waitFor(t, "BYE-rx app2")
	if u.has("BYE-rx hangup2") {
		t.Fatal("the callee that hung up got a BYE too")
	}

	// Within min_connected: not a success.
	out, err = b.Place(context.Background(), ivrCall("hangup3", "app3"))
	if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_TEMPORARY || !strings.HasPrefix(out.Reason, "ShortCall (callee hung up") {
		t.Fatalf("short call: %v %s %q", err, out.Class, out.Reason)
	}
	u.waitFor(t, "BYE-rx app3")
	u.waitFor(t, "BYE-tx hangup2")
	u.waitFor(t, "BYE-tx hangup3")
}

// TestIVRLegFailure: a media server that refuses or does not answer in
// ivr_answer_timeout costs no attempt (internal), and the answered callee
// is given an answer and hung up.
func TestIVRLegFailure(t *testing.T) {
	u := newUAS(t)
	b := ivrBackend(t, u, func(c *config.SIP) { c.IVRAnswerTimeout = config.Duration{Duration: 300 * time.Millisecond} })
	for _, tc := range []struct{ callee, profile, reason string }{
		{"answer4", "ivrdown", "IVRFailed (SIP 503)"},
		{"answer5", "slowivr", "IVRFailed (SIP 487)"},
	} {
		out, err := b.Place(context.Background(), ivrCall(tc.callee, tc.profile))
		if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_INTERNAL || out.Reason != tc.reason {
			t.Fatalf("%s: %v %s %q, want internal %q", tc.profile, err, out.Class, out.Reason, tc.reason)
		}
		u.waitFor(t, "BYE-rx "+tc.callee)
		u.waitFor(t, "ACK "+tc.callee)
		if ack := u.req("ACK " + tc.callee); !strings.Contains(string(ack.Body()), "a=inactive") {
			t.Fatalf("%s: callee ACK %q, want an inactive answer", tc.profile, ack.Body())
		}
	}
	u.waitFor(t, "CANCEL slowivr")
}

type fakePorts map[string]int // free ports by server; absent: no report

func (f fakePorts) FreePorts(s string) (int, bool) { n, ok := f[s]; return n, ok }

func TestIVRServerChoice(t *testing.T) {
	p := newIVRPool(config.SIPIVR{Servers: []string{"a:1", "b:1", "c:1"}, Ports: 2}, nil, nil)
	// Reported: a has 3 free, b is stale (0), c has 5: c, then c again...
	ports := fakePorts{"a:1": 3, "b:1": 0, "c:1": 5}
	if s := p.pick(ports); s == nil || s.addr != "c:1" {
		t.Fatalf("pick = %v, want the least loaded c:1", s)
	}
	ports = fakePorts{"a:1": 0, "b:1": 0, "c:1": 0}
	if s := p.pick(ports); s != nil {
		t.Fatalf("pick = %s with every server full or stale", s.addr)
	}
	// No reports: the configured ports, less our legs.
	var got []string
	for range 6 {
		if s := p.pick(nil); s != nil {
			got = append(got, s.addr)
		}
	}
	if len(got) != 5 { // c already has one leg: 2+2+1
		t.Fatalf("picked %v, want 5 legs within ports = 2 per server", got)
	}
}

func TestIVRFullIsErrFull(t *testing.T) {
	u := newUAS(t)
	b := ivrBackend(t, u, func(c *config.SIP) { c.IVR[0].Ports = 1 })
	b.ports = fakePorts{u.addr: 0}
	if _, err := b.Place(context.Background(), ivrCall("answer6", "app")); !errors.Is(err, telephony.ErrFull) {
		t.Fatalf("Place = %v, want ErrFull", err)
	}
	if u.has("INVITE answer6") {
		t.Fatal("the callee was called with no media server free")
	}
}

// TestInboundRequests: OPTIONS is answered with Allow; a method Dialtone
// does not handle gets 405 with Allow; a new INVITE 488 with Warning; an
// in-dialog request for no dialog 481.
func TestInboundRequests(t *testing.T) {
	u := newUAS(t)
	b := newBackend(t, u, nil)
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	target := sip.Uri{Scheme: "sip", User: "dialtone", Host: "127.0.0.1", Port: b.port}
	do := func(m sip.RequestMethod, toTag bool) *sip.Response {
		t.Helper()
		req := sip.NewRequest(m, target)
		if toTag {
			to := &sip.ToHeader{Address: target, Params: sip.NewParams()}
			to.Params.Add("tag", "nope")
			req.AppendHeader(to)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := cli.Do(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		return res
	}
	if r := do(sip.OPTIONS, false); r.StatusCode != 200 || r.GetHeader("Allow") == nil || !strings.Contains(r.GetHeader("Allow").Value(), "UPDATE") {
		t.Fatalf("OPTIONS: %d Allow %v", r.StatusCode, r.GetHeader("Allow"))
	}
	if r := do(sip.MESSAGE, false); r.StatusCode != 405 || r.GetHeader("Allow") == nil {
		t.Fatalf("MESSAGE: %d Allow %v", r.StatusCode, r.GetHeader("Allow"))
	}
	if r := do(sip.INVITE, false); r.StatusCode != 488 || r.GetHeader("Warning") == nil {
		t.Fatalf("INVITE: %d Warning %v", r.StatusCode, r.GetHeader("Warning"))
	}
	for _, m := range []sip.RequestMethod{sip.BYE, sip.UPDATE, sip.INFO} {
		if r := do(m, true); r.StatusCode != 481 {
			t.Fatalf("%s outside a dialog: %d", m, r.StatusCode)
		}
	}
}

// rawPeer is a scripted UDP SIP peer for what a sipgo UAS will not do: it
// answers INVITE with 180, ignores CANCEL, and sends the INVITE's final
// response (finalCode) only after finalDelay from the CANCEL.
type rawPeer struct {
	conn       *net.UDPConn
	finalCode  int
	finalDelay time.Duration

	mu   sync.Mutex
	seen []*sip.Request
	sent time.Time // when the final response went out
}

func newRawPeer(t *testing.T, code int, delay time.Duration) *rawPeer {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{conn: conn, finalCode: code, finalDelay: delay}
	done := make(chan struct{})
	go p.serve(done)
	t.Cleanup(func() { _ = conn.Close(); <-done })
	return p
}

func (p *rawPeer) serve(done chan struct{}) {
	defer close(done)
	buf := make([]byte, 65535)
	var invite *sip.Request
	var from *net.UDPAddr
	var timers sync.WaitGroup
	defer timers.Wait()
	for {
		n, addr, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			continue
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			continue
		}
		p.mu.Lock()
		p.seen = append(p.seen, req)
		p.mu.Unlock()
		switch req.Method {
		case sip.INVITE:
			if invite != nil {
				continue // a retransmission
			}
			invite, from = req, addr
			res := sip.NewResponseFromRequest(req, 180, "Ringing", nil)
			res.To().Params.Add("tag", "peer")
			_, _ = p.conn.WriteToUDP([]byte(res.String()), addr)
		case sip.CANCEL:
			if invite == nil {
				continue
			}
			inv := invite
			timers.Add(1)
			time.AfterFunc(p.finalDelay, func() {
				defer timers.Done()
				res := sip.NewResponseFromRequest(inv, p.finalCode, "Final", nil)
				res.To().Params.Add("tag", "peer")
				p.mu.Lock()
				p.sent = time.Now()
				p.mu.Unlock()
				_, _ = p.conn.WriteToUDP([]byte(res.String()), from)
			})
			invite = &sip.Request{} // answer the CANCEL's retransmissions no more
			*invite = *inv
		}
	}
}

func (p *rawPeer) requests(m sip.RequestMethod) []*sip.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*sip.Request
	for _, r := range p.seen {
		if r.Method == m {
			out = append(out, r)
		}
	}
	return out
}

// TestLateFinalAfterUnansweredCancel: a CANCEL nobody answers leaves the
// INVITE transaction running; the late final response is ACKed and the
// attempt ends only then, with its outcome (not an internal error).
func TestLateFinalAfterUnansweredCancel(t *testing.T) {
	p := newRawPeer(t, 408, 1500*time.Millisecond)
	c := config.Default().Telephony.SIP
	c.Listen = "127.0.0.1:0"
	c.Trunks = []config.SIPTrunk{{Name: "raw", Address: p.conn.LocalAddr().String()}}
	b, err := New(Options{SIP: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	cl := call("4930123")
	cl.Cpd = &fsmpb.Cpd{RnaTimeoutMs: ptr(int64(300))}
	out, err := b.Place(context.Background(), cl)
	returned := time.Now()
	if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_TEMPORARY || out.Reason != "RingNoAnswer (SIP 408)" {
		t.Fatalf("Place = %v %s %q, want the late 408", err, out.Class, out.Reason)
	}
	p.mu.Lock()
	sent := p.sent
	p.mu.Unlock()
	if sent.IsZero() || returned.Before(sent) {
		t.Fatalf("Place returned at %v, before the final response (%v)", returned, sent)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(p.requests(sip.ACK)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the late 408 was never ACKed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	inv, ack := p.requests(sip.INVITE)[0], p.requests(sip.ACK)[0]
	if ack.Via().Params.String() != inv.Via().Params.String() || ack.CSeq().SeqNo != inv.CSeq().SeqNo {
		t.Fatalf("ACK Via %s CSeq %s: not the INVITE transaction's", ack.Via().Value(), ack.CSeq().Value())
	}
	if n := len(p.requests(sip.CANCEL)); n < 2 {
		t.Fatalf("%d CANCELs: an unanswered CANCEL is retransmitted", n)
	}
}

func ptr[T any](v T) *T { return &v }

// TestReinviteRelayed: the callee's re-INVITE (a new offer: hold) is
// relayed to the IVR leg as a re-INVITE and the IVR's answer returned in
// the 200; the call goes on. In direct mode it is answered (inactive).
func TestReinviteRelayed(t *testing.T) {
	u := newUAS(t)
	b := ivrBackend(t, u, func(c *config.SIP) { c.MaxCallDuration = config.Duration{Duration: 2 * time.Second} })
	out, err := b.Place(context.Background(), ivrCall("reinvite1", "app7"))
	if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS {
		t.Fatalf("Place = %v %s %q", err, out.Class, out.Reason)
	}
	u.waitFor(t, "REINVITE-res 200")
	if got := string(u.req("REINVITE-res reinvite1").Body()); got != ivrAnswer {
		t.Fatalf("200 to the re-INVITE carries %q, want the IVR's answer", got)
	}
	// The re-INVITE goes to the IVR's Contact (user "uas"), in its dialog.
	if inv := u.req("INVITE uas"); inv == nil || string(inv.Body()) != reinviteOffer || !inv.To().Params.Has("tag") {
		t.Fatalf("the IVR got no in-dialog re-INVITE with the callee's new offer: %v", inv)
	}
	u.waitFor(t, "BYE-rx reinvite1")
	u.waitFor(t, "BYE-rx app7")

	d := newBackend(t, u, func(c *config.SIP) { c.MaxCallDuration = config.Duration{Duration: 2 * time.Second} })
	if out, err := d.Place(context.Background(), call("reinvite2")); err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS {
		t.Fatalf("direct: %v %s %q", err, out.Class, out.Reason)
	}
	if got := string(u.req("REINVITE-res reinvite2").Body()); !strings.Contains(got, "a=inactive") || !strings.Contains(got, "m=audio 9 RTP/AVP 8") {
		t.Fatalf("direct: 200 to the re-INVITE carries %q, want an inactive answer", got)
	}
}

// TestSessionRefreshAndCPD: an offerless UPDATE (a session refresh) from
// the callee is answered 200 with the description it already has, and the
// call goes on; a media server reporting an answering machine in an INFO
// makes the attempt AnsweringMachineDetected, not a success.
func TestSessionRefreshAndCPD(t *testing.T) {
	u := newUAS(t)
	b := ivrBackend(t, u, func(c *config.SIP) { c.MaxCallDuration = config.Duration{Duration: 1500 * time.Millisecond} })
	out, err := b.Place(context.Background(), ivrCall("refresh1", "app8"))
	if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS {
		t.Fatalf("refresh: %v %s %q", err, out.Class, out.Reason)
	}
	u.waitFor(t, "UPDATE-res 200")
	if got := string(u.req("UPDATE-res refresh1").Body()); got != ivrAnswer {
		t.Fatalf("200 to the UPDATE carries %q, want the unchanged IVR answer", got)
	}
	out, err = b.Place(context.Background(), ivrCall("answer9", "cpdinfo9"))
	if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_TEMPORARY || out.Reason != "AnsweringMachineDetected (SIP INFO)" {
		t.Fatalf("CPD by INFO: %v %s %q", err, out.Class, out.Reason)
	}
	u.waitFor(t, "INFO-res 200")
	u.waitFor(t, "BYE-rx answer9")
	u.waitFor(t, "BYE-tx cpdinfo9")
}
