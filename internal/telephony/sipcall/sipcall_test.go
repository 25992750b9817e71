package sipcall

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
	"github.com/seed-7bfc04c2/dialtone/internal/tlsconf"
)

// uas is an in-process SIP peer (a sipgo UAS) whose behaviour is chosen by
// the Request-URI user: answer (hold until BYE), hangup (answer, BYE after
// 100 ms), busy (486), ring (180 forever), machine (200 with the detection
// header), auth (401 challenge, then answer and hold), q850 (404 with
// Reason Q.850 cause 1), 503.
type uas struct {
	t       *testing.T
	addr    string // UDP and TCP
	tlsAddr string
	caFile  string // the certificate of both sides' TLS listeners (self-signed)
	keyFile string

	mu     sync.Mutex
	events []string                // "INVITE answer", "CANCEL ring", "ACK answer", "BYE-rx answer", "BYE-tx hangup"
	heads  map[string]string       // headers of the last INVITE
	active map[string]bool         // dialogs up (answered, not ended), by user
	reqs   map[string]*sip.Request // the last request per "METHOD user" (INVITE, CANCEL, ACK, BYE)
}

// calleeOffer is the SDP a callee offers in its 200 to an offerless INVITE.
const calleeOffer = "v=0\r\no=callee 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"

// ivrAnswer is the SDP a media server answers an offer with.
const ivrAnswer = "v=0\r\no=ivr 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 50000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n"

// reinviteOffer is the new offer a callee makes in a re-INVITE.
const reinviteOffer = "v=0\r\no=callee 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendonly\r\n"

// reinvite sends, once the call is confirmed, a re-INVITE with a new
// offer (a hold) and records the response as "REINVITE-res <code>".
func (u *uas) reinvite(dlg *sipgo.DialogServerSession, inv *sip.Request, user string) {
	for deadline := time.Now().Add(5 * time.Second); !u.has("ACK " + user); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return
		}
	}
	r := sip.NewRequest(sip.INVITE, inv.Contact().Address)
	r.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	r.SetBody([]byte(reinviteOffer))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := dlg.Do(ctx, r)
	if err != nil {
		u.event("REINVITE-err " + err.Error())
		return
	}
	u.mu.Lock()
	u.reqs["REINVITE-res "+user] = &sip.Request{}
	u.reqs["REINVITE-res "+user].SetBody(res.Body())
	u.mu.Unlock()
	if res.IsSuccess() {
		_ = dlg.WriteRequest(sip.NewRequest(sip.ACK, inv.Contact().Address))
	}
	u.event("REINVITE-res " + strconv.Itoa(res.StatusCode))
}

// inDialog, once the call is confirmed: "refresh" users send an UPDATE
// without a body (a session refresh); "cpdinfo" users an INFO reporting an
// answering machine, then hang up. Responses are recorded as
// "<METHOD>-res <code>".
func (u *uas) inDialog(dlg *sipgo.DialogServerSession, inv *sip.Request, user string) {
	for deadline := time.Now().Add(5 * time.Second); !u.has("ACK " + user); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return
		}
	}
	method := sip.UPDATE
	if strings.HasPrefix(user, "cpdinfo") {
		method = sip.INFO
	}
	r := sip.NewRequest(method, inv.Contact().Address)
	if method == sip.INFO {
		r.AppendHeader(sip.NewHeader("X-Dialtone-Detection", "machine"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := dlg.Do(ctx, r)
	if err != nil {
		u.event(string(method) + "-err " + err.Error())
		return
	}
	u.mu.Lock()
	u.reqs[string(method)+"-res "+user] = &sip.Request{}
	u.reqs[string(method)+"-res "+user].SetBody(res.Body())
	u.mu.Unlock()
	u.event(string(method) + "-res " + strconv.Itoa(res.StatusCode))
	if method == sip.INFO {
		if err := dlg.Bye(ctx); err == nil {
			u.event("BYE-tx " + user)
		}
	}
}

func (u *uas) req(key string) *sip.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.reqs[key]
}

func newUAS(t *testing.T) *uas {
	t.Helper()
	u := &uas{t: t, heads: map[string]string{}, active: map[string]bool{}, reqs: map[string]*sip.Request{}}
	// One certificate for 127.0.0.1 serves, and is trusted by, both sides.
	cert, key := selfSigned(t)
	pool := x509.NewCertPool()
	pemBytes, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pemBytes)
	u.caFile, u.keyFile = cert, key
	ua, err := sipgo.NewUA(sipgo.WithUserAgentHostname("127.0.0.1"), sipgo.WithUserAgenTLSConfig(&tls.Config{RootCAs: pool}))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	// UDP and TCP on one port: retry when the TCP port is taken.
	var conn *net.UDPConn
	var tcp net.Listener
	for range 20 {
		if conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		if tcp, err = net.Listen("tcp", conn.LocalAddr().String()); err == nil {
			break
		}
		_ = conn.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	u.addr = conn.LocalAddr().String()
	port := conn.LocalAddr().(*net.UDPAddr).Port
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(port), sipgo.WithClientConnectionAddr(u.addr))
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := tlsconf.Server(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	tlsL, err := tls.Listen("tcp", "127.0.0.1:0", tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	u.tlsAddr = tlsL.Addr().String()
	// One dialog cache per contact: the TLS one points at the TLS listener.
	dc := sipgo.NewDialogServerCache(cli, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "uas", Host: "127.0.0.1", Port: port}})
	tlsPort := tlsL.Addr().(*net.TCPAddr).Port
	tlsContact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "uas", Host: "127.0.0.1", Port: tlsPort, UriParams: sip.NewParams()}}
	tlsContact.Address.UriParams.Add("transport", "tls")
	dcTLS := sipgo.NewDialogServerCache(cli, tlsContact)
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		if req.Transport() == "TLS" {
			u.onInvite(dcTLS, req, tx)
			return
		}
		u.onInvite(dc, req, tx)
	})
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		u.mu.Lock()
		u.reqs["ACK "+req.To().Address.User] = req
		u.mu.Unlock()
		u.event("ACK " + req.To().Address.User)
		if dc.ReadAck(req, tx) != nil {
			_ = dcTLS.ReadAck(req, tx)
		}
	})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		u.mu.Lock()
		u.reqs["BYE "+req.To().Address.User] = req
		u.mu.Unlock()
		u.event("BYE-rx " + req.To().Address.User)
		u.setActive(req.To().Address.User, false)
		if dc.ReadBye(req, tx) != nil && dcTLS.ReadBye(req, tx) != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "No dialog", nil))
		}
	})
	// Session refreshes (RFC 4028): answered 200 with the request's
	// Session-Expires.
	srv.OnUpdate(func(req *sip.Request, tx sip.ServerTransaction) {
		u.event("UPDATE-rx " + req.To().Address.User)
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		if se := req.GetHeader("Session-Expires"); se != nil {
			res.AppendHeader(sip.NewHeader("Session-Expires", se.Value()))
		}
		_ = tx.Respond(res)
	})
	done := make(chan struct{}, 3)
	go func() { defer func() { done <- struct{}{} }(); _ = srv.ServeUDP(conn) }()
	go func() { defer func() { done <- struct{}{} }(); _ = srv.ServeTCP(tcp) }()
	go func() { defer func() { done <- struct{}{} }(); _ = srv.ServeTLS(tlsL) }()
	t.Cleanup(func() {
		_ = ua.Close()
		_ = conn.Close()
		_ = tcp.Close()
		_ = tlsL.Close()
		<-done
		<-done
		<-done
	})
	return u
}

// selfSigned writes a certificate for 127.0.0.1 that is its own CA.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "uas"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func (u *uas) event(e string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.events = append(u.events, e)
}

func (u *uas) setActive(user string, up bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.active[user] = up
}

func (u *uas) has(e string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, x := range u.events {
		if x == e {
			return true
		}
	}
	return false
}

func (u *uas) waitFor(t *testing.T, e string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !u.has(e) {
		if time.Now().After(deadline) {
			u.mu.Lock()
			defer u.mu.Unlock()
			t.Fatalf("UAS never saw %q; saw %v", e, u.events)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (u *uas) onInvite(dc *sipgo.DialogServerCache, req *sip.Request, tx sip.ServerTransaction) {
	user := req.Recipient.User
	u.mu.Lock()
	u.events = append(u.events, "INVITE "+user)
	for _, h := range req.Headers() {
		u.heads[h.Name()] = h.Value()
	}
	u.mu.Unlock()
	if user == "auth" && req.GetHeader("Authorization") == nil {
		res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", `Digest realm="test", nonce="abc123", algorithm=MD5, qop="auth"`))
		_ = tx.Respond(res)
		return
	}
	dlg, err := dc.ReadInvite(req, tx)
	if err != nil {
		u.t.Errorf("ReadInvite: %v", err)
		return
	}
	u.mu.Lock()
	u.reqs["INVITE "+user] = req
	u.mu.Unlock()
	tx.OnCancel(func(c *sip.Request) {
		u.mu.Lock()
		u.reqs["CANCEL "+user] = c
		u.mu.Unlock()
		u.event("CANCEL " + user)
	})
	// The 180 is record-routed through an address that drops everything:
	// a CANCEL that followed the early dialog's route set would be lost.
	_ = dlg.Respond(180, "Ringing", nil, sip.NewHeader("Record-Route", "<sip:192.0.2.1;lr>"))
	// A 200 to an offerless INVITE offers (RFC 3261 §13.3.1.4); to an
	// offer, it answers.
	ok := func(hdrs ...sip.Header) error {
		body := []byte(calleeOffer)
		if len(req.Body()) > 0 {
			body = []byte(ivrAnswer)
		}
		return dlg.Respond(200, "OK", body, append(hdrs, sip.NewHeader("Content-Type", "application/sdp"))...)
	}
	// Session timers: "minse" wants at least 3 s (422 with Min-SE); "timer"
	// and "minse" accept the interval asked for with Dialtone refreshing.
	if se := req.GetHeader("Session-Expires"); se != nil && (user == "timer" || user == "minse") {
		d, _ := parseSessionExpires(se.Value())
		if user == "minse" && d < 3*time.Second {
			u.event("422 " + user)
			_ = dlg.Respond(422, "Session Interval Too Small", nil, sip.NewHeader("Min-SE", "3"))
			return
		}
		u.setActive(user, true)
		_ = ok(sip.NewHeader("Require", "timer"), sip.NewHeader("Session-Expires", strconv.Itoa(int(d/time.Second))+";refresher=uac"))
		return
	}
	if strings.HasPrefix(user, "pms") || strings.HasPrefix(user, "early") {
		u.preconnectPeer(dlg, req, user)
		return
	}
	switch user {
	case "busy":
		_ = dlg.Respond(486, "Busy Here", nil)
	case "503":
		_ = dlg.Respond(503, "Service Unavailable", nil)
	case "q850":
		_ = dlg.Respond(404, "Not Found", nil, sip.NewHeader("Reason", "Q.850;cause=1;text=\"Unallocated number\""))
	case "ring":
		<-tx.Done()
	case "machine":
		_ = ok(sip.NewHeader("X-Dialtone-Detection", "machine"))
	case "ivrdown":
		_ = dlg.Respond(503, "Service Unavailable", nil)
	case "slowivr":
		<-tx.Done()
	default: // answer, hangup, auth
		u.setActive(user, true)
		_ = ok()
		if strings.HasPrefix(user, "reinvite") {
			u.reinvite(dlg, req, user)
		}
		if strings.HasPrefix(user, "refresh") || strings.HasPrefix(user, "cpdinfo") {
			u.inDialog(dlg, req, user)
		}
		if strings.HasPrefix(user, "hangup") || strings.HasPrefix(user, "slowhangup") {
			if strings.HasPrefix(user, "slowhangup") {
				time.Sleep(1500 * time.Millisecond) // across a takeover
			}
			time.Sleep(100 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := dlg.Bye(ctx); err != nil {
				if strings.HasPrefix(user, "slowhangupx") { // expected to fail (TestTakeover)
					u.event("BYE-failed " + user)
					return
				}
				u.t.Errorf("UAS BYE %s: %v", user, err)
			}
			u.setActive(user, false)
			u.event("BYE-tx " + user)
		}
	}
}

func newBackend(t *testing.T, u *uas, mod func(*config.SIP)) *Backend {
	t.Helper()
	c := config.Default().Telephony.SIP
	c.Listen = "127.0.0.1:0"
	c.RingTimeout = config.Duration{Duration: 5 * time.Second}
	c.PAssertedIdentity = true
	c.Trunks = []config.SIPTrunk{{Name: "t1", Address: u.addr, Username: "user", Password: "secret", Ports: 10}}
	if mod != nil {
		mod(&c)
	}
	b, err := New(Options{SIP: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func call(telnum string) telephony.Call {
	return telephony.Call{
		RequestID: "req-" + telnum, CallUUID: "uuid-" + telnum, Tenant: "acme", IVRProfile: "Sales",
		Telnum: telnum, Ani: "4930111", Attempt: 1,
		Cpd: &fsmpb.Cpd{RnaTimeoutMs: proto.Int64(300), Record: proto.Bool(true), Detect: "machine"},
	}
}

func TestOutcomes(t *testing.T) {
	u := newUAS(t)
	b := newBackend(t, u, func(c *config.SIP) {
		c.MaxCallDuration = config.Duration{Duration: 200 * time.Millisecond}
	})
	for _, tc := range []struct {
		telnum string
		class  fsmpb.OutcomeClass
		reason string
		events []string
	}{
		{"answer", fsmpb.OutcomeClass_OUTCOME_SUCCESS, "TreatmentApplied (SIP 200)", []string{"ACK answer", "BYE-rx answer"}},
		// Hung up 100 ms after the ACK: within min_connected (1 s), not a success.
		{"hangup", fsmpb.OutcomeClass_OUTCOME_TEMPORARY, "ShortCall (callee hung up)", []string{"ACK hangup", "BYE-tx hangup"}},
		{"busy", fsmpb.OutcomeClass_OUTCOME_BUSY, "DestinationBusy (SIP 486)", nil},
		{"ring", fsmpb.OutcomeClass_OUTCOME_TEMPORARY, "RingNoAnswer (SIP 487)", []string{"CANCEL ring"}},
		{"machine", fsmpb.OutcomeClass_OUTCOME_TEMPORARY, "AnsweringMachineDetected (SIP 200)", []string{"ACK machine", "BYE-rx machine"}},
		{"q850", fsmpb.OutcomeClass_OUTCOME_PERMANENT, "SITVacantCircuit (SIP 404)", nil},
		{"503", fsmpb.OutcomeClass_OUTCOME_INTERNAL, "InternalError (SIP 503)", nil},
		{"auth", fsmpb.OutcomeClass_OUTCOME_SUCCESS, "TreatmentApplied (SIP 200)", []string{"ACK auth", "BYE-rx auth"}},
	} {
		t.Run(tc.telnum, func(t *testing.T) {
			out, err := b.Place(context.Background(), call(tc.telnum))
			if err != nil {
				t.Fatal(err)
			}
			if out.Class != tc.class || !strings.HasPrefix(out.Reason, tc.reason) {
				t.Fatalf("outcome %s %q, want %s %q", out.Class, out.Reason, tc.class, tc.reason)
			}
			for _, e := range tc.events {
				u.waitFor(t, e)
			}
			if n := b.InProgress(); n != 0 {
				t.Fatalf("%d calls in progress after Place returned", n)
			}
		})
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for k, want := range map[string]string{
		"X-Dialtone-Request-ID": "req-auth", "X-Dialtone-Tenant": "acme", "X-Dialtone-IVR-Profile": "Sales",
		"X-Dialtone-Call-UUID": "uuid-auth", "X-Dialtone-CPD-RNATimeout": "300ms", "X-Dialtone-CPD-Record": "true",
		"X-Dialtone-CPD-Detect": "machine", "P-Asserted-Identity": "<sip:4930111@127.0.0.1>",
	} {
		if got := u.heads[k]; got != want {
			t.Errorf("INVITE header %s = %q, want %q", k, got, want)
		}
	}
	if a := u.heads["Authorization"]; !strings.Contains(a, `username="user"`) {
		t.Errorf("Authorization after the challenge = %q", a)
	}
	if f := u.heads["From"]; !strings.Contains(f, "sip:4930111@127.0.0.1") {
		t.Errorf("From = %q, want the ANI", f)
	}
}

func TestOutcomeOverridesAndUnknownCodes(t *testing.T) {
	u := newUAS(t)
	b := newBackend(t, u, func(c *config.SIP) {
		c.Outcomes = map[string]string{"486": "temporary/Busy486", "q850:1": "permanent/Vacant"}
	})
	out, err := b.Place(context.Background(), call("busy"))
	if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_TEMPORARY || out.Reason != "Busy486 (SIP 486)" {
		t.Fatalf("override: %v %s %q", err, out.Class, out.Reason)
	}
	out, err = b.Place(context.Background(), call("q850"))
	if err != nil || out.Reason != "Vacant (SIP 404)" {
		t.Fatalf("q850 override: %v %q", err, out.Reason)
	}
	tbl, _ := newOutcomeTable(nil)
	res := sip.NewResponseFromRequest(sip.NewRequest(sip.INVITE, sip.Uri{Host: "x"}), 603, "Decline", nil)
	if o := tbl.classify(res, ""); o.Class != fsmpb.OutcomeClass_OUTCOME_TEMPORARY || o.Reason != "ExternalError (SIP 603)" {
		t.Fatalf("603: %s %q", o.Class, o.Reason)
	}
}

// TestCancelTearsDown: cancelling ctx (leadership lost) sends CANCEL to a
// ringing call and BYE to an answered one before Place returns.
func TestCancelTearsDown(t *testing.T) {
	u := newUAS(t)
	b := newBackend(t, u, func(c *config.SIP) { c.RingTimeout = config.Duration{Duration: time.Minute} })
	for _, tc := range []struct{ telnum, event string }{{"ring", "CANCEL ring"}, {"answer", "BYE-rx answer"}} {
		t.Run(tc.telnum, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			c := call(tc.telnum)
			c.Cpd = nil // ring_timeout (1 min) applies
			errc := make(chan error, 1)
			go func() { _, err := b.Place(ctx, c); errc <- err }()
			u.waitFor(t, "INVITE "+tc.telnum)
			if tc.telnum == "answer" {
				u.waitFor(t, "ACK answer")
			}
			cancel()
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Place = %v, want context.Canceled", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("Place did not return after cancel")
			}
			if !u.has(tc.event) {
				t.Fatalf("no %s before Place returned", tc.event)
			}
			if b.InProgress() != 0 {
				t.Fatalf("%d calls in progress", b.InProgress())
			}
		})
	}
}

// TestCloseEndsCalls: closing the backend (node stopping) hangs up every
// call in progress and leaves no dialog up at the far end.
func TestCloseEndsCalls(t *testing.T) {
	u := newUAS(t)
	b := newBackend(t, u, func(c *config.SIP) { c.MaxCallDuration = config.Duration{} })
	const n = 5
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = b.Place(context.Background(), call("answer"+strconv.Itoa(i)))
		}()
	}
	for i := range n {
		u.waitFor(t, "ACK answer"+strconv.Itoa(i))
	}
	if got := b.InProgress(); got != n {
		t.Fatalf("in progress %d, want %d", got, n)
	}
	if total, inUse, ok := b.Ports("acme"); !ok || total != 10 || inUse != n {
		t.Fatalf("Ports = %d %d %v, want 10 %d true", total, inUse, ok, n)
	}
	_ = b.Close()
	wg.Wait()
	for i := range n {
		if !u.has("BYE-rx answer" + strconv.Itoa(i)) {
			t.Fatalf("call %d not hung up at close", i)
		}
	}
	if _, err := b.Place(context.Background(), call("answer")); err == nil {
		t.Fatal("Place after Close succeeded")
	}
}

func TestTrunkLimits(t *testing.T) {
	u := newUAS(t)
	t.Run("max_calls", func(t *testing.T) {
		b := newBackend(t, u, func(c *config.SIP) { c.Trunks[0].MaxCalls = 1 })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan struct{})
		go func() { defer close(done); _, _ = b.Place(ctx, call("answer")) }()
		u.waitFor(t, "ACK answer")
		if _, err := b.Place(context.Background(), call("busy")); !errors.Is(err, telephony.ErrFull) {
			t.Fatalf("second call = %v, want ErrFull", err)
		}
		if total, inUse, ok := b.Ports("acme"); !ok || total != 1 || inUse != 1 {
			t.Fatalf("Ports = %d %d %v: want the stated 10 ports capped at max_calls 1, 1 in use", total, inUse, ok)
		}
		cancel()
		<-done
		if _, err := b.Place(context.Background(), call("busy")); err != nil {
			t.Fatalf("after the first call ended: %v", err)
		}
	})
	t.Run("caps", func(t *testing.T) {
		b := newBackend(t, u, func(c *config.SIP) { c.Trunks[0].CAPS = 20 })
		start := time.Now()
		var wg sync.WaitGroup
		for range 11 {
			wg.Add(1)
			go func() { defer wg.Done(); _, _ = b.Place(context.Background(), call("busy")) }()
		}
		wg.Wait()
		// 11 INVITEs at 20 per second, evenly: at least 10 intervals of 50 ms.
		if el := time.Since(start); el < 450*time.Millisecond {
			t.Fatalf("11 calls at caps 20 took %s, want ≥ 500ms", el)
		}
	})
	t.Run("no trunk", func(t *testing.T) {
		b := newBackend(t, u, func(c *config.SIP) { c.Trunks[0].Tenants = []string{"other"} })
		if _, err := b.Place(context.Background(), call("busy")); !errors.Is(err, ErrNoTrunk) {
			t.Fatalf("Place = %v, want ErrNoTrunk", err)
		}
		if _, _, ok := b.Ports("acme"); ok {
			t.Fatal("a tenant without a trunk has stated ports")
		}
	})
}

func TestRequestURITemplate(t *testing.T) {
	c := config.Default().Telephony.SIP
	c.Listen = "127.0.0.1:0"
	c.TenantPrefix = map[string]string{"acme": "9"}
	c.Trunks = []config.SIPTrunk{{Name: "t", Address: "127.0.0.1:5999", Prefix: "0", RequestURI: "sip:{prefix}{telnum}@carrier.example;user=phone"}}
	b, err := New(Options{SIP: c})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	req, err := b.invite(b.trunks[0], call("4930123"))
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Recipient.String(); got != "sip:904930123@carrier.example;user=phone" {
		t.Fatalf("Request-URI %s", got)
	}
	if r := req.GetHeader("Route"); r == nil || r.Value() != "<sip:127.0.0.1:5999;lr>" {
		t.Fatalf("Route %v: the trunk must be the next hop", r)
	}
}

// TestStreamTransports places calls over TCP and TLS trunks: the answer,
// the far end's BYE and our BYE.
func TestStreamTransports(t *testing.T) {
	for _, tp := range []string{"tcp", "tls"} {
		t.Run(tp, func(t *testing.T) { testStream(t, tp) })
	}
}

func testStream(t *testing.T, transport string) {
	u := newUAS(t)
	b := newBackend(t, u, func(c *config.SIP) {
		c.Trunks[0].Transport = transport
		if transport == "tls" {
			c.Trunks[0].Address = u.tlsAddr
			c.TLSCAFile = u.caFile
			// Our own TLS listener, for the UAS's BYE.
			c.TLSCertFile, c.TLSKeyFile = u.caFile, u.keyFile
		}
		c.MaxCallDuration = config.Duration{Duration: 200 * time.Millisecond}
		c.MinConnected = config.Duration{}
	})
	for _, telnum := range []string{"hangup", "answer", "busy"} {
		out, err := b.Place(context.Background(), call(telnum))
		if err != nil {
			t.Fatalf("%s: %v", telnum, err)
		}
		want := map[string]fsmpb.OutcomeClass{"hangup": fsmpb.OutcomeClass_OUTCOME_SUCCESS, "answer": fsmpb.OutcomeClass_OUTCOME_SUCCESS, "busy": fsmpb.OutcomeClass_OUTCOME_BUSY}[telnum]
		if out.Class != want {
			t.Fatalf("%s over %s: %s %q", telnum, transport, out.Class, out.Reason)
		}
	}
	u.waitFor(t, "BYE-tx hangup")
	u.waitFor(t, "BYE-rx answer")
	u.mu.Lock()
	defer u.mu.Unlock()
	if via := u.heads["Via"]; !strings.Contains(via, "SIP/2.0/"+strings.ToUpper(transport)) {
		t.Fatalf("Via %q: not sent over %s", via, transport)
	}
}
