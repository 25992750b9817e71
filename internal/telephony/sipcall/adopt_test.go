package sipcall

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// serviceAddr is a free UDP port on 127.0.0.77 (any 127.x binds on
// Linux without setup).
func serviceAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 77)})
	if err != nil {
		t.Skipf("127.0.0.77 not bindable: %v", err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// leaderBackend is a 3PCC backend of one "node" sharing the service
// address svc.
func leaderBackend(t *testing.T, u *uas, svc string, maxDur time.Duration) *Backend {
	t.Helper()
	c := config.Default().Telephony.SIP
	c.Listen = "127.0.0.1:0"
	c.ServiceAddr = svc
	c.RingTimeout = config.Duration{Duration: 5 * time.Second}
	c.MaxCallDuration = config.Duration{Duration: maxDur}
	c.MinConnected = config.Duration{}
	c.Trunks = []config.SIPTrunk{{Name: "t1", Address: u.addr, Ports: 10}}
	c.IVR = []config.SIPIVR{{Profile: "*", Servers: []string{u.addr}}}
	b, err := New(Options{SIP: c, Handover: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// dialogLog keeps the latest replicated state per leg, as the FSM would.
type dialogLog struct {
	mu sync.Mutex
	st map[string]*fsmpb.DialogState
}

func (d *dialogLog) put(s *fsmpb.DialogState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s.CallId == "" && s.RemoteEndedUnixMs != 0 && d.st[s.Leg] != nil { // an end mark
		m := proto.Clone(d.st[s.Leg]).(*fsmpb.DialogState)
		m.RemoteEndedUnixMs, m.ByeDetection = s.RemoteEndedUnixMs, s.ByeDetection
		s = m
	}
	d.st[s.Leg] = s
}

// leadingPair is two nodes' backends on one service address, the first
// leading until stop1 (or the test's end): a leader and its successor.
func leadingPair(t *testing.T, u *uas, svc string) (b1, b2 *Backend, ctx1 context.Context, stop1 context.CancelFunc) {
	t.Helper()
	b1 = leaderBackend(t, u, svc, time.Minute)
	b2 = leaderBackend(t, u, svc, time.Minute)
	ctx1, stop1 = context.WithCancel(context.Background())
	t.Cleanup(stop1)
	if _, err := b1.Lead(ctx1); err != nil {
		t.Fatal(err)
	}
	return b1, b2, ctx1, stop1
}

// pendingCallee waits (up to 5 s) for the callee leg's state with its
// INVITE's branch, the write-ahead state of a pending INVITE.
func (d *dialogLog) pendingCallee(t *testing.T) *fsmpb.DialogState {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		for _, s := range d.all() {
			if s.Leg == "callee" && s.InviteBranch != "" {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no pending INVITE state reported")
		}
	}
}

func (d *dialogLog) all() []*fsmpb.DialogState {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*fsmpb.DialogState
	for _, s := range d.st {
		out = append(out, s)
	}
	return out
}

func (d *dialogLog) confirmed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st["callee"].GetConfirmed() && d.st["ivr"].GetConfirmed()
}

// TestTakeover: node 1 leads and connects a 3PCC call; it stops leading
// (handing over: nothing is sent, the service address is released); node
// 2 takes the address and adopts the call from its replicated dialogs.
// The callee's BYE, sent after the takeover to the service address, is
// answered by node 2, which hangs the IVR leg up and reports the call's
// real outcome. With adopt false, node 2 takes the address but adopts
// nothing: the callee's BYE gets 481 and the IVR leg is never hung up —
// the dropped call the test must be able to see.
func TestTakeover(t *testing.T) {
	for _, adopt := range []bool{true, false} {
		t.Run(fmt.Sprintf("adopt=%v", adopt), func(t *testing.T) {
			u := newUAS(t)
			svc := serviceAddr(t)
			user, app := "slowhangup", "appA"
			if !adopt {
				user, app = "slowhangupx", "appX"
			}
			b1, b2, ctx1, stop1 := leadingPair(t, u, svc)
			log := &dialogLog{st: map[string]*fsmpb.DialogState{}}
			c := ivrCall(user, app)
			c.Dialog = log.put
			placed := make(chan error, 1)
			go func() {
				_, err := b1.Place(ctx1, c)
				placed <- err
			}()
			for deadline := time.Now().Add(5 * time.Second); !log.confirmed(); time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("call not connected; dialogs %v", log.all())
				}
			}
			if !adopt {
				// Confirmed is replicated before the ACK is sent: a
				// handover in between leaves the callee's 2xx un-ACKed,
				// and a successor that adopts nothing rightly ends it as
				// a stray (ACK, BYE) instead of answering the callee's
				// BYE 481. This case is about the BYE, so hand over only
				// once the callee has its ACK.
				u.waitFor(t, "ACK "+user)
			}
			stop1() // leadership lost: handed over
			if err := <-placed; err == nil {
				t.Fatal("Place on the deposed leader returned no error")
			}
			if u.has("BYE-rx "+user) || u.has("BYE-rx "+app) {
				t.Fatal("the deposed leader hung the call up")
			}
			ctx2, stop2 := context.WithCancel(context.Background())
			defer stop2()
			took := time.Now()
			if _, err := b2.Lead(ctx2); err != nil {
				t.Fatal(err)
			}
			t.Logf("service address taken over in %s", time.Since(took))
			if !adopt {
				u.waitFor(t, "BYE-failed "+user) // 481 from node 2
				if u.has("BYE-rx " + app) {
					t.Fatal("the IVR leg was hung up without an adoption")
				}
				return
			}
			out, err := b2.Adopt(ctx2, telephony.Call{RequestID: c.RequestID, CallUUID: c.CallUUID, Tenant: c.Tenant, IVRProfile: c.IVRProfile}, log.all())
			if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS {
				t.Fatalf("Adopt = %v %s %q", err, out.Class, out.Reason)
			}
			u.waitFor(t, "BYE-tx "+user) // answered 200 by node 2
			u.waitFor(t, "BYE-rx "+app)  // node 2 hung the IVR leg up
			if u.has("BYE-rx " + user) {
				t.Fatal("the callee that hung up got a BYE")
			}
		})
	}
}

// TestSessionTimer: the INVITE asks for session_expires with Dialtone as
// refresher; a far end accepting it gets offerless UPDATE refreshes at
// half the interval; a 422 is answered by asking again with its Min-SE.
func TestSessionTimer(t *testing.T) {
	u := newUAS(t)
	b := newBackend(t, u, func(c *config.SIP) {
		c.SessionExpires = config.Duration{Duration: 2 * time.Second} // below the configurable minimum, for speed
		c.MaxCallDuration = config.Duration{Duration: 2500 * time.Millisecond}
	})
	for _, user := range []string{"timer", "minse"} {
		out, err := b.Place(context.Background(), call(user))
		if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS {
			t.Fatalf("%s: Place = %v %s %q", user, err, out.Class, out.Reason)
		}
		inv := u.req("INVITE " + user)
		if se := inv.GetHeader("Session-Expires"); se == nil || inv.GetHeader("Supported").Value() != "timer" {
			t.Fatalf("%s: INVITE without Session-Expires / Supported: timer", user)
		}
		u.waitFor(t, "UPDATE-rx "+user)
	}
	u.waitFor(t, "422 minse")
	if se := u.req("INVITE minse").GetHeader("Session-Expires").Value(); se != "3;refresher=uac" {
		t.Fatalf("INVITE after 422: Session-Expires %q, want the Min-SE", se)
	}
}

// TestTakeoverPendingInvite: node 1's INVITE is ringing when node 1's SIP
// stack vanishes (its user agent closed: nothing more is sent or
// received). Node 2 takes the service address and adopts the pending
// INVITE from its replicated state: at its ring deadline it sends the
// CANCEL (the replicated branch: the far end matches it to the INVITE),
// the 487 reaches node 2 without a client transaction, is ACKed and gives
// the attempt its true outcome.
func TestTakeoverPendingInvite(t *testing.T) {
	u := newUAS(t)
	svc := serviceAddr(t)
	b1 := leaderBackend(t, u, svc, time.Minute)
	b2 := leaderBackend(t, u, svc, time.Minute)
	if _, err := b1.Lead(context.Background()); err != nil {
		t.Fatal(err)
	}
	log := &dialogLog{st: map[string]*fsmpb.DialogState{}}
	c := call("ring")
	c.Cpd = nil // ring_timeout 5 s: node 1 never CANCELs
	c.Dialog = log.put
	go func() { _, _ = b1.Place(context.Background(), c) }()
	u.waitFor(t, "INVITE ring")
	st := log.pendingCallee(t)
	if st.Established || st.DeadlineUnixMs == 0 {
		t.Fatalf("pending state %v: want not established, with a ring deadline", st)
	}
	_ = b1.ua.Close() // node 1 is gone (its Place ends when b1 is closed, after the test)
	b1.release()      // and so is its socket
	if _, err := b2.Lead(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.DeadlineUnixMs = time.Now().Add(300 * time.Millisecond).UnixMilli() // the ring deadline comes
	out, err := b2.Adopt(context.Background(), c, []*fsmpb.DialogState{st})
	if err != nil || out.Reason != "RingNoAnswer (SIP 487)" {
		t.Fatalf("Adopt = %v %s %q, want RingNoAnswer (SIP 487)", err, out.Class, out.Reason)
	}
	u.waitFor(t, "CANCEL ring")
	if br, _ := u.req("CANCEL ring").Via().Params.Get("branch"); br != st.InviteBranch {
		t.Fatalf("CANCEL branch %q, want the INVITE's %q", br, st.InviteBranch)
	}
}
