package sipcall

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// msOffer is what a media server offers in its 200 to an offerless INVITE.
const msOffer = "v=0\r\no=ms 5 5 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 50000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"

// calleeEarly is a callee's answer to msOffer, in its 183 and its 200.
const calleeEarly = "v=0\r\no=callee 3 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n"

// preconnectPeer plays the two parties of a preconnect call: "pms*" is a
// media server answering an offerless INVITE with msOffer; "early*" a
// callee that answers the INVITE's offer in a 183 (early media), waits
// until the media server was re-INVITEd with that answer, then answers
// 200 with it ("earlybusy*": 486 instead).
func (u *uas) preconnectPeer(dlg *sipgo.DialogServerSession, req *sip.Request, user string) {
	ct := sip.NewHeader("Content-Type", "application/sdp")
	if strings.HasPrefix(user, "pms") {
		if len(req.Body()) != 0 {
			u.t.Errorf("media server %s: INVITE with an offer", user)
		}
		u.setActive(user, true)
		offer := msOffer
		if strings.HasPrefix(user, "pmsmove") { // its answers (ivrAnswer) move its media to another port
			offer = strings.Replace(msOffer, "m=audio 50000", "m=audio 50002", 1)
		}
		_ = dlg.Respond(200, "OK", []byte(offer), ct)
		if strings.HasPrefix(user, "pmsbye") { // hangs up while the callee rings
			u.waitFor(u.t, "ACK "+user)
			time.Sleep(200 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := dlg.Bye(ctx); err != nil {
				u.t.Errorf("media server BYE: %v", err)
			}
			u.setActive(user, false)
			u.event("BYE-tx " + user)
		}
		return
	}
	if len(req.Body()) == 0 {
		u.t.Errorf("callee %s: INVITE without an offer", user)
	}
	_ = dlg.Respond(183, "Session Progress", []byte(calleeEarly), ct)
	for deadline := time.Now().Add(3 * time.Second); !u.has("INVITE uas"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			break
		}
	}
	if strings.HasPrefix(user, "earlyring") { // rings until cancelled
		for deadline := time.Now().Add(5 * time.Second); !u.has("CANCEL "+user) && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		return
	}
	if strings.HasPrefix(user, "earlybusy") {
		_ = dlg.Respond(486, "Busy Here", nil)
		return
	}
	u.setActive(user, true)
	_ = dlg.Respond(200, "OK", []byte(calleeEarly), ct)
}

func (u *uas) index(e string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Index(u.events, e)
}

func (u *uas) count(e string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, x := range u.events {
		if x == e {
			n++
		}
	}
	return n
}

func preconnectCall(telnum, profile string) telephony.Call {
	c := ivrCall(telnum, profile)
	c.Cpd = &fsmpb.Cpd{Preconnect: proto.Bool(true)}
	return c
}

// TestPreconnectFlow: with cpd.preconnect the media server is INVITEd
// first without an offer and ACKed at once with a held answer; the callee
// is INVITEd with the media server's offer; the callee's early answer (its
// 183) reaches the media server in a re-INVITE while the callee rings; the
// callee's 200 is ACKed without a body, and the call is held to its end.
func TestPreconnectFlow(t *testing.T) {
	u := newUAS(t)
	b := ivrBackend(t, u, nil)
	out, err := b.Place(context.Background(), preconnectCall("early1", "pms1"))
	if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS || out.Reason != "TreatmentApplied (SIP 200)" {
		t.Fatalf("Place = %v %s %q", err, out.Class, out.Reason)
	}
	// (The media server's ACK is sent before the callee's INVITE, but the
	// peer handles the two concurrently: only the INVITEs' order is seen.)
	ms, callee := u.index("INVITE pms1"), u.index("INVITE early1")
	if ms < 0 || callee < ms {
		t.Fatalf("order: INVITE MS %d, INVITE callee %d: want the media server first", ms, callee)
	}
	u.waitFor(t, "ACK pms1")
	if inv := u.req("INVITE pms1"); inv.GetHeader("X-Dialtone-Request-ID").Value() != "req-early1" {
		t.Fatal("the media server's INVITE lacks Dialtone's headers")
	}
	if a := string(u.req("ACK pms1").Body()); !strings.Contains(a, "a=inactive") || !strings.Contains(a, "m=audio 9 RTP/AVP 8") {
		t.Fatalf("media server ACK %q, want a held answer to its offer", a)
	}
	if got := string(u.req("INVITE early1").Body()); got != msOffer {
		t.Fatalf("callee INVITE body %q, want the media server's offer", got)
	}
	// The early answer reached the media server before the callee answered.
	re := u.req("INVITE uas")
	if re == nil || !re.To().Params.Has("tag") {
		t.Fatal("the media server got no in-dialog re-INVITE")
	}
	body := string(re.Body())
	if !strings.Contains(body, "m=audio 40000 RTP/AVP 8\r\n") || !strings.Contains(body, "o=dialtone ") || strings.Contains(body, "o=callee") {
		t.Fatalf("media server re-INVITE %q, want the callee's early answer under Dialtone's origin", body)
	}
	if reIdx, ok := u.index("INVITE uas"), u.index("ACK early1"); reIdx < 0 || reIdx > ok {
		t.Fatalf("the media server learnt the callee's answer at %d, after the callee's ACK at %d", reIdx, ok)
	}
	if n := u.count("INVITE uas"); n != 1 {
		t.Fatalf("%d in-dialog INVITEs, want only the media server's (its media did not move)", n)
	}
	if a := u.req("ACK early1"); len(a.Body()) != 0 {
		t.Fatalf("callee ACK body %q, want none (the offer was in the INVITE)", a.Body())
	}
	u.waitFor(t, "BYE-rx early1")
	u.waitFor(t, "BYE-rx pms1")
}

// TestPreconnectMediaMoved: a media server whose answer to the callee's
// description moves its media (another port than its offer) has that
// answer sent to the callee in a re-INVITE once the callee is connected.
func TestPreconnectMediaMoved(t *testing.T) {
	u := newUAS(t)
	b := ivrBackend(t, u, nil)
	out, err := b.Place(context.Background(), preconnectCall("early7", "pmsmove7"))
	if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS {
		t.Fatalf("Place = %v %s %q", err, out.Class, out.Reason)
	}
	if n := u.count("INVITE uas"); n != 2 || string(u.req("INVITE uas").Body()) != ivrAnswer {
		t.Fatalf("%d in-dialog INVITEs, the last with %q: want the media server's re-INVITE, then the callee's with its answer", u.count("INVITE uas"), u.req("INVITE uas").Body())
	}
	u.waitFor(t, "BYE-rx early7")
	u.waitFor(t, "BYE-rx pmsmove7")
}

// TestPreconnectCalleeBusy: a busy callee hangs up the media server's leg
// and is reported as the callee's outcome.
func TestPreconnectCalleeBusy(t *testing.T) {
	u := newUAS(t)
	b := ivrBackend(t, u, nil)
	out, err := b.Place(context.Background(), preconnectCall("earlybusy2", "pms2"))
	if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_BUSY || out.Reason != "DestinationBusy (SIP 486)" {
		t.Fatalf("Place = %v %s %q", err, out.Class, out.Reason)
	}
	u.waitFor(t, "BYE-rx pms2")
}

// TestPreconnectRingTimeout: at the ring timeout the callee is cancelled
// (RingNoAnswer) and the media server's leg hung up.
func TestPreconnectRingTimeout(t *testing.T) {
	u := newUAS(t)
	b := ivrBackend(t, u, nil)
	c := preconnectCall("earlyring5", "pms5")
	c.Cpd.RnaTimeoutMs = proto.Int64(500)
	out, err := b.Place(context.Background(), c)
	if err != nil || out.Reason != "RingNoAnswer (SIP 487)" {
		t.Fatalf("Place = %v %s %q", err, out.Class, out.Reason)
	}
	u.waitFor(t, "CANCEL earlyring5")
	u.waitFor(t, "BYE-rx pms5")
}

// TestPreconnectIVRHangsUp: a media server that hangs up while the callee
// rings cancels the callee: an internal IVRFailed outcome.
func TestPreconnectIVRHangsUp(t *testing.T) {
	u := newUAS(t)
	b := ivrBackend(t, u, nil)
	out, err := b.Place(context.Background(), preconnectCall("earlyring6", "pmsbye6"))
	if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_INTERNAL || out.Reason != "IVRFailed (IVR hung up while the callee rang)" {
		t.Fatalf("Place = %v %s %q", err, out.Class, out.Reason)
	}
	u.waitFor(t, "CANCEL earlyring6")
	if u.has("BYE-rx pmsbye6") {
		t.Fatal("the media server that hung up got a BYE")
	}
}

// TestPreconnectIVRRefused: a media server that refuses is an internal
// IVRFailed outcome and the callee is never called.
func TestPreconnectIVRRefused(t *testing.T) {
	u := newUAS(t)
	b := ivrBackend(t, u, nil)
	out, err := b.Place(context.Background(), preconnectCall("early3", "ivrdown"))
	if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_INTERNAL || out.Reason != "IVRFailed (SIP 503)" {
		t.Fatalf("Place = %v %s %q", err, out.Class, out.Reason)
	}
	if u.has("INVITE early3") {
		t.Fatal("the callee was INVITEd after the media server refused")
	}
}

func TestNextOffer(t *testing.T) {
	got := string(nextOffer([]byte("v=0\r\no=dialtone 12 12 IN IP4 10.0.0.1\r\ns=-\r\n"), []byte(calleeEarly)))
	if !strings.Contains(got, "o=dialtone 12 13 IN IP4 10.0.0.1\r\n") || strings.Contains(got, "o=callee") || !strings.Contains(got, "m=audio 40000") {
		t.Fatalf("nextOffer = %q", got)
	}
	if !sameMedia([]byte(calleeEarly), []byte(strings.Replace(calleeEarly, "o=callee 3 3", "o=x 1 1", 1)), true) ||
		sameMedia([]byte(calleeEarly), []byte(msOffer), false) || // another port
		sameMedia([]byte(ivrAnswer), []byte(msOffer), true) || !sameMedia([]byte(ivrAnswer), []byte(msOffer), false) {
		t.Fatal("sameMedia")
	}
}

// TestPreconnectAdoptLoneIVR: a new leader that finds only the IVR leg of
// a preconnect call (its callee not yet called) hangs that leg up and
// reports an internal IVR failure.
func TestPreconnectAdoptLoneIVR(t *testing.T) {
	u := newUAS(t)
	b1 := ivrBackend(t, u, nil)
	b2 := ivrBackend(t, u, nil)
	var mu sync.Mutex
	var ivrSt *fsmpb.DialogState
	c := preconnectCall("earlyring9", "pms9")
	c.Cpd.RnaTimeoutMs = proto.Int64(4000)
	c.Dialog = func(s *fsmpb.DialogState) {
		mu.Lock()
		defer mu.Unlock()
		if s.Leg == "ivr" && s.Confirmed && ivrSt == nil {
			ivrSt = s
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	placed := make(chan struct{})
	go func() { defer close(placed); _, _ = b1.Place(ctx, c) }()
	var st *fsmpb.DialogState
	for deadline := time.Now().Add(5 * time.Second); st == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the IVR leg was never reported confirmed")
		}
		mu.Lock()
		st = ivrSt
		mu.Unlock()
	}
	out, err := b2.Adopt(context.Background(), c, []*fsmpb.DialogState{st})
	if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_INTERNAL || out.Reason != "IVRFailed (setup interrupted by a leader change)" {
		t.Fatalf("Adopt = %v %s %q", err, out.Class, out.Reason)
	}
	if !u.has("BYE-rx pms9") {
		t.Fatal("the adopted IVR leg was not hung up")
	}
	cancel()
	<-placed
}
