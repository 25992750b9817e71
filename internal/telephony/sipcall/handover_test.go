package sipcall

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// TestHandoverPendingInvite: a leader that is deposed while alive (its
// leadership context ends; its process and sockets live on) hands its
// ringing INVITE over as it is: no CANCEL from it (before this, it
// CANCELled every ringing call the moment it stepped down). The next
// leader adopts the INVITE and CANCELs it at the ring deadline — the only
// CANCEL the far end sees — and the attempt ends RingNoAnswer.
func TestHandoverPendingInvite(t *testing.T) {
	u := newUAS(t)
	svc := serviceAddr(t)
	b1, b2, ctx1, stop1 := leadingPair(t, u, svc)
	log := &dialogLog{st: map[string]*fsmpb.DialogState{}}
	c := call("ring")
	c.Cpd = nil // ring_timeout 5 s
	c.Dialog = log.put
	placed := make(chan error, 1)
	go func() {
		_, err := b1.Place(ctx1, c)
		placed <- err
	}()
	u.waitFor(t, "INVITE ring")
	st := log.pendingCallee(t)
	stop1() // deposed, alive
	select {
	case err := <-placed:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Place on the deposed leader = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Place did not return after leadership ended")
	}
	if u.has("CANCEL ring") {
		t.Fatal("the deposed leader CANCELled the ringing INVITE")
	}
	if _, err := b2.Lead(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.DeadlineUnixMs = time.Now().Add(300 * time.Millisecond).UnixMilli()
	out, err := b2.Adopt(context.Background(), c, []*fsmpb.DialogState{st})
	if err != nil || out.Reason != "RingNoAnswer (SIP 487)" {
		t.Fatalf("Adopt = %v %s %q, want RingNoAnswer (SIP 487)", err, out.Class, out.Reason)
	}
	if n := u.count("CANCEL ring"); n != 1 {
		t.Fatalf("far end saw %d CANCELs, want 1 (the new leader's)", n)
	}
}

// TestByeWriteAhead: the callee's BYE of a 3PCC call reaches a leader
// whose commits no longer land (it is cut off from the quorum). It must
// not answer the BYE until the end is committed: answered and not
// committed, the next leader would hold a call the far end has ended.
// The leader is deposed; the BYE's retransmission reaches the next
// leader at the service address, which answers it 200, hangs up the IVR
// leg and reports the call's real outcome. With committed, the end did
// commit before leadership moved (the 200 was then lost): the next leader
// sees the ended leg, hangs up the IVR leg at once and still answers the
// retransmitted BYE.
func TestByeWriteAhead(t *testing.T) {
	for _, committed := range []bool{false, true} {
		t.Run(fmt.Sprintf("committed=%v", committed), func(t *testing.T) {
			u := newUAS(t)
			svc := serviceAddr(t)
			user, app := "slowhangupw", "appW"
			if committed {
				user, app = "slowhangupc", "appC"
			}
			b1, b2, ctx1, stop1 := leadingPair(t, u, svc)
			log := &dialogLog{st: map[string]*fsmpb.DialogState{}}
			byeSeen := make(chan struct{})
			c := ivrCall(user, app)
			c.Dialog = log.put
			c.DialogCommit = func(ctx context.Context, states []*fsmpb.DialogState) error {
				for _, s := range states {
					if s.RemoteEndedUnixMs != 0 {
						if committed {
							log.put(s)
						}
						close(byeSeen)
						<-ctx.Done() // no quorum: the commit never lands here
						return ctx.Err()
					}
					log.put(s)
				}
				return nil
			}
			placed := make(chan error, 1)
			go func() {
				_, err := b1.Place(ctx1, c)
				placed <- err
			}()
			select {
			case <-byeSeen:
			case <-time.After(10 * time.Second):
				t.Fatalf("the callee's BYE never reached the leader; dialogs %v", log.all())
			}
			if u.has("BYE-tx " + user) {
				t.Fatal("the BYE was answered before its end was committed")
			}
			stop1()
			if err := <-placed; err == nil {
				t.Fatal("Place on the deposed leader returned no error")
			}
			if u.has("BYE-rx " + app) {
				t.Fatal("the deposed leader hung the IVR leg up")
			}
			ctx2, stop2 := context.WithCancel(context.Background())
			defer stop2()
			if _, err := b2.Lead(ctx2); err != nil {
				t.Fatal(err)
			}
			out, err := b2.Adopt(ctx2, telephony.Call{RequestID: c.RequestID, CallUUID: c.CallUUID, Tenant: c.Tenant, IVRProfile: c.IVRProfile}, log.all())
			if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS {
				t.Fatalf("Adopt = %v %s %q", err, out.Class, out.Reason)
			}
			u.waitFor(t, "BYE-rx "+app)  // the next leader hung the IVR leg up
			u.waitFor(t, "BYE-tx "+user) // and answered the callee's BYE 200
			if u.has("BYE-rx " + user) {
				t.Fatal("the callee that hung up got a BYE")
			}
		})
	}
}

// TestConfirmedBeforeACK: the legs' confirmed state commits (write-ahead)
// and leadership is lost before the ACKs leave: the deposed leader sends
// none, and the next leader, adopting the call, ACKs both legs.
func TestConfirmedBeforeACK(t *testing.T) {
	u := newUAS(t)
	svc := serviceAddr(t)
	user, app := "slowhangupa", "appO"
	b1, b2, ctx1, stop1 := leadingPair(t, u, svc)
	log := &dialogLog{st: map[string]*fsmpb.DialogState{}}
	c := ivrCall(user, app)
	c.Dialog = log.put
	c.DialogCommit = func(_ context.Context, states []*fsmpb.DialogState) error {
		for _, s := range states {
			log.put(s)
			if s.Confirmed {
				stop1() // committed; leadership lost before the ACKs
			}
		}
		return nil
	}
	if _, err := b1.Place(ctx1, c); err == nil {
		t.Fatal("Place on the deposed leader returned no error")
	}
	if u.has("ACK "+user) || u.has("ACK "+app) {
		t.Fatal("the deposed leader ACKed after its leadership ended")
	}
	if !log.confirmed() {
		t.Fatalf("confirmed state not committed: %v", log.all())
	}
	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	if _, err := b2.Lead(ctx2); err != nil {
		t.Fatal(err)
	}
	adopted := make(chan error, 1)
	go func() {
		out, err := b2.Adopt(ctx2, telephony.Call{RequestID: c.RequestID, CallUUID: c.CallUUID, Tenant: c.Tenant, IVRProfile: c.IVRProfile}, log.all())
		if err == nil && out.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS {
			err = fmt.Errorf("outcome %s %q", out.Class, out.Reason)
		}
		adopted <- err
	}()
	u.waitFor(t, "ACK "+user)
	u.waitFor(t, "ACK "+app)
	if err := <-adopted; err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	// The callee hangs up 1.6 s after its 200: the adopted call answers
	// its BYE and ends the IVR leg. Waiting for both also keeps the test
	// from closing the far end while its BYE is in flight.
	u.waitFor(t, "BYE-tx "+user)
	u.waitFor(t, "BYE-rx "+app)
}

// TestAdoptSendsOwedACK: a far end that does not retransmit its 2xx (or
// has stopped) still gets the ACK a predecessor may have owed: the
// adopting leader sends it once at adoption for a call connected less than
// 64*T1 ago. The far end here is a bare socket that never retransmits.
func TestAdoptSendsOwedACK(t *testing.T) {
	far, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	svc := serviceAddr(t)
	c := config.Default().Telephony.SIP
	c.Listen = "127.0.0.1:0"
	c.ServiceAddr = svc
	c.Trunks = []config.SIPTrunk{{Name: "t1", Address: far.LocalAddr().String()}}
	b, err := New(Options{SIP: c, Handover: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if _, err := b.Lead(ctx); err != nil {
		t.Fatal(err)
	}
	farAddr := far.LocalAddr().String()
	st := &fsmpb.DialogState{
		Leg: "callee", CallId: "owed-ack@127.0.0.77", From: "<sip:4930111@127.0.0.77>;tag=ours", To: "<sip:owed@" + farAddr + ">;tag=theirs",
		LocalCseq: 1, RemoteTarget: "sip:owed@" + farAddr, RequestUri: "sip:owed@" + farAddr, InviteCseq: 1, Destination: farAddr, Transport: "UDP",
		InviteVia: "SIP/2.0/UDP " + svc + ";branch=z9hG4bK.owed", InviteBranch: "z9hG4bK.owed",
		Established: true, Confirmed: true, ConnectedUnixMs: time.Now().Add(-2 * time.Second).UnixMilli(),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = b.Adopt(ctx, telephony.Call{RequestID: "r", CallUUID: "u", Tenant: "acme"}, []*fsmpb.DialogState{st})
	}()
	buf := make([]byte, 4096)
	_ = far.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, _, err := far.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no ACK at the far end: %v", err)
		}
		if msg := string(buf[:n]); strings.HasPrefix(msg, "ACK sip:owed@") {
			if !strings.Contains(msg, "owed-ack@127.0.0.77") {
				t.Fatalf("ACK of another dialog:\n%s", msg)
			}
			break
		}
	}
	stop() // handed over: Adopt returns
	<-done
}

// TestInviteWriteAhead: with handover, the callee INVITE's pending state
// (its branch) is committed before the INVITE leaves, so a leader change
// in between cannot leave a ringing call no leader knows; a commit that
// fails sends nothing (telephony.ErrNotSent).
func TestInviteWriteAhead(t *testing.T) {
	u := newUAS(t)
	svc := serviceAddr(t)
	b := leaderBackend(t, u, svc, time.Minute)
	if _, err := b.Lead(context.Background()); err != nil {
		t.Fatal(err)
	}
	var pendingMu sync.Mutex
	var pending *fsmpb.DialogState
	c := call("ring")
	c.Cpd = nil
	c.IVRProfile = "none"
	c.Dialog = func(*fsmpb.DialogState) {}
	c.DialogCommit = func(_ context.Context, states []*fsmpb.DialogState) error {
		pendingMu.Lock()
		defer pendingMu.Unlock()
		if s := states[0]; pending == nil && !s.Established {
			if u.has("INVITE ring") {
				t.Error("the INVITE left before its state was committed")
			}
			pending = s
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = b.Place(ctx, c)
	}()
	u.waitFor(t, "INVITE ring")
	pendingMu.Lock()
	defer pendingMu.Unlock()
	if pending == nil {
		t.Fatal("no pending state committed")
	}
	if br, _ := u.req("INVITE ring").Via().Params.Get("branch"); br == "" || br != pending.InviteBranch {
		t.Fatalf("INVITE branch %q, committed %q", br, pending.InviteBranch)
	}
	cancel()
	<-done

	c2 := call("busy")
	c2.IVRProfile = "none"
	c2.Dialog = func(*fsmpb.DialogState) {}
	c2.DialogCommit = func(context.Context, []*fsmpb.DialogState) error { return errors.New("leadership lost") }
	if _, err := b.Place(context.Background(), c2); !errors.Is(err, telephony.ErrNotSent) {
		t.Fatalf("Place with a failing commit = %v, want ErrNotSent", err)
	}
	if u.has("INVITE busy") {
		t.Fatal("an INVITE left although its state was not committed")
	}
}
