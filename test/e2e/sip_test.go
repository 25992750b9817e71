//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/client"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/test/cluster"
	"github.com/seed-7bfc04c2/dialtone/test/sipjudge"
)

// requireSIPp returns the sipp binary, or skips the test when it is not
// installed, unless DIALTONE_REQUIRE_SIPP is set (CI): then it fails.
func requireSIPp(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("DIALTONE_REQUIRE_SIPP") != "" {
			t.Fatalf("sipp is not installed and DIALTONE_REQUIRE_SIPP is set (apt-get install -y sip-tester)")
		}
		t.Skip("sipp is not installed (apt-get install -y sip-tester); set DIALTONE_REQUIRE_SIPP=1 to fail instead of skipping")
	}
	return p
}

// handedOut holds every UDP port freeUDPPort gave this test binary (the
// SIPp UASes): the kernel may return a just-closed ephemeral port again,
// and two UASes given the same port cannot start.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePort returns a port that listen found free and that no earlier call
// returned.
func freePort(t *testing.T, listen func() (int, error)) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		p, err := listen()
		if err != nil {
			t.Fatal(err)
		}
		if !handedOut.ports[p] {
			handedOut.ports[p] = true
			return p
		}
	}
	t.Fatal("no fresh free port after 100 tries")
	return 0
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	return freePort(t, func() (int, error) {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	})
}

// sippUAS is one SIPp UAS running a scenario of testdata/sipp on its own
// port. Its scenarios log every INVITE and the end of every call (with
// the request id header and SIPp's clock) to a log file.
type sippUAS struct {
	addr    string
	logFile string
	errFile string
	msgFile string // every SIP message SIPp sent and received
}

func startSIPp(t *testing.T, scenario string, extra ...string) *sippUAS {
	t.Helper()
	return startSIPpTrace(t, scenario, true, extra...)
}

// startSIPpTrace is startSIPp; traceMsg false leaves out SIPp's message
// trace (a load test's thousands of calls). scenario names a file of
// testdata/sipp, or is the absolute path of a scenario file.
func startSIPpTrace(t *testing.T, scenario string, traceMsg bool, extra ...string) *sippUAS {
	t.Helper()
	bin := requireSIPp(t)
	dir := t.TempDir()
	port := freeUDPPort(t)
	u := &sippUAS{addr: fmt.Sprintf("127.0.0.1:%d", port), logFile: filepath.Join(dir, "log"), errFile: filepath.Join(dir, "err"), msgFile: filepath.Join(dir, "msg")}
	sf := filepath.Join("testdata", "sipp", scenario+".xml")
	if filepath.IsAbs(scenario) { // a scenario the test wrote
		sf = scenario
		scenario = strings.TrimSuffix(filepath.Base(scenario), ".xml")
	}
	args := []string{"-sf", sf, "-i", "127.0.0.1", "-p", strconv.Itoa(port),
		"-buff_size", "4194304", "-nostdin", "-trace_logs", "-log_file", u.logFile, "-trace_err", "-error_file", u.errFile}
	if traceMsg {
		args = append(args, "-trace_msg", "-message_file", u.msgFile)
	}
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			errs, _ := os.ReadFile(u.errFile)
			t.Logf("sipp %s errors:\n%s", scenario, lastLines(string(errs), 40))
			if msgs, err := os.ReadFile(u.msgFile); err == nil {
				keep := filepath.Join(os.TempDir(), fmt.Sprintf("sipp-%s-%d.msg", scenario, port))
				if os.WriteFile(keep, msgs, 0o600) == nil {
					t.Logf("sipp %s messages kept in %s", scenario, keep)
				}
			}
		}
	})
	// Listening once the port can no longer be bound.
	eventually(t, 10*time.Second, "sipp "+scenario+" listening", func() error {
		select {
		case <-done:
			return fmt.Errorf("sipp exited: %s", lastLines(out.String(), 20))
		default:
		}
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err == nil {
			c.Close()
			return fmt.Errorf("port %d not bound yet", port)
		}
		return nil
	})
	return u
}

// entries parses the UAS's log so far.
func (u *sippUAS) entries(t *testing.T) []sipjudge.Entry {
	t.Helper()
	es, err := sipjudge.ReadLog(u.logFile)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func (u *sippUAS) count(t *testing.T, kind string) int {
	n := 0
	for _, e := range u.entries(t) {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// notifications records the result notifications (GETs) the dialer sends.
type notifications struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string][]map[string]string // by RequestID
}

func newNotifications(t *testing.T) *notifications {
	n := &notifications{got: map[string][]map[string]string{}}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := map[string]string{}
		for k, v := range r.URL.Query() {
			p[k] = v[0]
		}
		n.mu.Lock()
		n.got[p["RequestID"]] = append(n.got[p["RequestID"]], p)
		n.mu.Unlock()
	}))
	t.Cleanup(n.srv.Close)
	return n
}

func (n *notifications) of(id string) map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l := n.got[id]; len(l) > 0 {
		return l[len(l)-1]
	}
	return nil
}

type sipTrunk struct {
	tenant, addr string
	ports        int
}

// sipCluster is three `dialtone serve` processes (test/cluster) on free
// ports with the SIP backend.
type sipCluster struct {
	*cluster.Processes
	http map[string]string
}

// startSIPCluster starts the cluster with a trunk per tenant; sip and
// dialer, when set, change the SIP and dialer settings.
func startSIPCluster(t *testing.T, trunks []sipTrunk, sip func(*config.SIP), dialer func(*config.Dialer)) *sipCluster {
	t.Helper()
	// The default Raft timeouts: 300 ms ones flapped on this shared machine
	// under -race, and leader changes must come only from the tests.
	c := startCluster(t, func(cfg *config.Config) {
		cfg.Telephony.Backend = "sip"
		cfg.Telephony.SIP.Listen = "127.0.0.1:0"
		for _, tr := range trunks {
			cfg.Telephony.SIP.Trunks = append(cfg.Telephony.SIP.Trunks, config.SIPTrunk{Name: tr.tenant, Address: tr.addr, Tenants: []string{tr.tenant}, Ports: tr.ports})
		}
		if sip != nil {
			sip(&cfg.Telephony.SIP)
		}
		if dialer != nil {
			dialer(&cfg.Dialer)
		}
	})
	sc := &sipCluster{Processes: c, http: map[string]string{}}
	for _, id := range c.IDs() {
		sc.http[id] = c.HTTPAddr(id)
	}
	return sc
}

func (c *sipCluster) leader(t *testing.T, via string) string {
	t.Helper()
	var id string
	eventually(t, 30*time.Second, "a leader", func() error {
		st, err := rest(t, c.http[via]).GetClusterStatus(t.Context())
		if err != nil {
			return err
		}
		if st.LeaderId == "" {
			return fmt.Errorf("no leader")
		}
		id = st.LeaderId
		return nil
	})
	return id
}

// getRequest reads a request linearizably.
func getRequest(t *testing.T, addr, tenant, id string) (*pb.Request, error) {
	got, err := rest(t, addr).GetRequest(t.Context(), &pb.GetRequestRequest{Tenant: tenant, Id: id, Consistency: client.Linearizable})
	return got.GetRequest(), err
}

// sub is b - a, an unset timestamp being the zero time (as the JSON's
// absent field was).
func sub(b, a *timestamppb.Timestamp) time.Duration { return at(b).Sub(at(a)) }

func at(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func near(got, want, tol time.Duration) bool { return got >= want-tol && got <= want+tol }

// TestSIPScenarios: a 3-node cluster dials SIPp UASes on 127.0.0.1, one
// per scenario and tenant, and each request ends with the result,
// attempts, retry timing class and notification the outcome table and the
// retry rules give.
func TestSIPScenarios(t *testing.T) {
	requireSIPp(t)
	type scenario struct {
		tenant, file string
		sippArgs     []string
		spec         *pb.RequestSpec
		// after the first attempt (nil: not checked)
		first func(*testing.T, *pb.Request) error
		// final
		result, resultReason, status string
		attempts                     int
		ends                         string // SIPp END how= of every call
	}
	base := func(maxAttempts uint32, ttl string) *pb.RequestSpec {
		return &pb.RequestSpec{IvrProfile: "Sales", Telnum: "4930123456", Ani: "4930999", MaxAttempts: maxAttempts, TimeToLive: ttl}
	}
	firstAttempt := func(outcome, reason string, attemptsMade uint32, retry func(r *pb.Request, a *pb.Attempt) time.Duration) func(*testing.T, *pb.Request) error {
		return func(t *testing.T, r *pb.Request) error {
			if len(r.Attempts) != 1 || r.Attempts[0].Ended == nil {
				return fmt.Errorf("first attempt not ended yet: %s %v", r.State, r.Attempts)
			}
			if r.State != "PENDING" && r.State != "INITIATED" {
				t.Errorf("after the first attempt: state %s, want PENDING (or INITIATED: fetched, waiting for its retry)", r.State)
			}
			a := r.Attempts[0]
			if a.Outcome != outcome || a.Reason != reason || r.AttemptsMade != attemptsMade {
				t.Errorf("first attempt %s %q (attempts made %d), want %s %q (%d)", a.Outcome, a.Reason, r.AttemptsMade, outcome, reason, attemptsMade)
			}
			if want, got := retry(r, a), sub(r.NextRetry, a.Ended); !near(got, want, 1500*time.Millisecond) {
				t.Errorf("%s: next retry %s after the attempt, want %s", reason, got, want)
			}
			return nil
		}
	}
	ring := base(2, "30s")
	ring.Cpd = &pb.Cpd{RnaTimeout: "1s"}
	scenarios := []scenario{
		{tenant: "answer", file: "uas_answer_hold", spec: base(2, "60s"), result: "SUCCESS", status: "", attempts: 1, ends: "caller_bye"},
		{tenant: "hangup", file: "uas_answer_bye", sippArgs: []string{"-d", "500"}, spec: base(2, "60s"), result: "SUCCESS", status: "", attempts: 1, ends: "callee_bye"},
		// Hung up within min_connected (300 ms here): not a success.
		{tenant: "short", file: "uas_answer_bye", sippArgs: []string{"-d", "50"}, spec: base(1, "60s"), result: "FAILURE", resultReason: "MaxAttempts Exceeded", status: "ShortCall (callee hung up):MaxAttempts Exceeded", attempts: 1, ends: "callee_bye"},
		{tenant: "busy", file: "uas_busy", spec: base(2, "60s"),
			// busy: close together first: min(15 s, TTL left / (remaining + 1))
			first:  firstAttempt("BUSY", "DestinationBusy (SIP 486)", 1, func(*pb.Request, *pb.Attempt) time.Duration { return 15 * time.Second }),
			result: "FAILURE", resultReason: "MaxAttempts Exceeded", status: "DestinationBusy (SIP 486):DestinationBusy (SIP 486):MaxAttempts Exceeded", attempts: 2, ends: "486"},
		{tenant: "ring", file: "uas_ring", spec: ring,
			// no answer: the TTL left divided equally among the remaining attempts
			first:  firstAttempt("TEMPORARY", "RingNoAnswer (SIP 487)", 1, func(r *pb.Request, a *pb.Attempt) time.Duration { return sub(r.Expires, a.Ended) / 2 }),
			result: "FAILURE", resultReason: "MaxAttempts Exceeded", status: "RingNoAnswer (SIP 487):RingNoAnswer (SIP 487):MaxAttempts Exceeded", attempts: 2, ends: "cancel"},
		{tenant: "invalid", file: "uas_404", spec: base(3, "60s"), result: "FAILURE", resultReason: "InvalidNumber (SIP 404)", status: "InvalidNumber (SIP 404)", attempts: 1, ends: "404"},
		{tenant: "unavail", file: "uas_503", spec: base(2, "14s"),
			// internal: not counted, retried after NextRetryInterval (10 s)
			first:  firstAttempt("INTERNAL", "InternalError (SIP 503)", 0, func(*pb.Request, *pb.Attempt) time.Duration { return 10 * time.Second }),
			result: "FAILURE", resultReason: "TTL Expired", status: "InternalError (SIP 503):InternalError (SIP 503):TTL Expired", attempts: 0, ends: "503"},
		{tenant: "machine", file: "uas_machine", spec: base(1, "60s"), result: "FAILURE", resultReason: "MaxAttempts Exceeded", status: "AnsweringMachineDetected (SIP 200):MaxAttempts Exceeded", attempts: 1, ends: "caller_bye"},
	}
	uas := map[string]*sippUAS{}
	var trunks []sipTrunk
	var ports []int
	for _, s := range scenarios {
		uas[s.tenant] = startSIPp(t, s.file, s.sippArgs...)
		trunks = append(trunks, sipTrunk{tenant: s.tenant, addr: uas[s.tenant].addr, ports: 5})
		ports = append(ports, portOf(t, uas[s.tenant].addr))
	}
	sipcap := startSIPCapture(t, ports...)
	c := startSIPCluster(t, trunks, func(s *config.SIP) {
		s.RingTimeout = config.Duration{Duration: 5 * time.Second}
		s.MaxCallDuration = config.Duration{Duration: time.Second}
		s.MinConnected = config.Duration{Duration: 300 * time.Millisecond}
	}, nil)
	notes := newNotifications(t)

	ids := map[string]string{}
	for i, s := range scenarios {
		s.spec.Token = "T-" + s.tenant
		s.spec.NotificationUrl = notes.srv.URL + "/result"
		ids[s.tenant] = submit(t, c.http[fmt.Sprintf("n%d", i%3+1)], s.tenant, s.spec)[0]
	}
	// Concurrent subtests (not t.Parallel, which runs only GOMAXPROCS at
	// once): each scenario's timing is checked as it happens.
	var wg sync.WaitGroup
	for _, s := range scenarios {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(s.tenant, func(t *testing.T) {
				checkScenario(t, c, uas[s.tenant], notes, ids[s.tenant], s.tenant, s.first, s.result, s.resultReason, s.status, s.attempts, s.ends)
			})
		}()
	}
	wg.Wait()
	checkCapturedInvites(t, sipcap, len(scenarios), false)
}

// checkCapturedInvites: no two INVITE transactions of one request overlap
// in the capture, which holds at least want of them. Unless allowOpen
// (calls still ringing at the end), every one has its final response.
func checkCapturedInvites(t *testing.T, c *sipCapture, want int, allowOpen bool) {
	t.Helper()
	msgs := c.messages(t)
	if !allowOpen {
		// The capture is written as packets come: wait for the last final
		// responses to be in it.
		eventually(t, 10*time.Second, "every INVITE transaction complete in the capture", func() error {
			msgs = c.messages(t)
			if open := openInvites(msgs); open > 0 {
				return fmt.Errorf("%d INVITE transactions without a final response", open)
			}
			return nil
		})
	}
	if n := checkNoOverlappingInvites(t, msgs, allowOpen); n < want {
		t.Errorf("the capture holds %d INVITE transactions, want at least %d", n, want)
	} else {
		t.Logf("%d INVITE transactions in the capture, none of one request overlapping another", n)
	}
}

func checkScenario(t *testing.T, c *sipCluster, u *sippUAS, notes *notifications, id, tenant string, first func(*testing.T, *pb.Request) error, result, resultReason, status string, attempts int, ends string) {
	if first != nil {
		eventually(t, 30*time.Second, tenant+": first attempt", func() error {
			r, err := getRequest(t, c.http["n2"], tenant, id)
			if err != nil {
				return err
			}
			return first(t, r)
		})
	}
	var r *pb.Request
	eventually(t, 90*time.Second, tenant+": notified", func() error {
		if notes.of(id) == nil {
			return fmt.Errorf("not notified")
		}
		var err error
		r, err = getRequest(t, c.http["n3"], tenant, id)
		return err
	})
	if r.State != "PROCESSED" || r.Result != result || r.ResultReason != resultReason || int(r.AttemptsMade) != attempts {
		t.Errorf("%s: %s %s %q attempts %d, want PROCESSED %s %q attempts %d", tenant, r.State, r.Result, r.ResultReason, r.AttemptsMade, result, resultReason, attempts)
	}
	n := notes.of(id)
	if n["Result"] != result || n["Status"] != status || n["Token"] != "T-"+tenant || n["TenantName"] != tenant || n["AttemptsMade"] != strconv.Itoa(attempts) {
		t.Errorf("%s: notification %v, want Result %s Status %q", tenant, n, result, status)
	}
	// What SIPp saw: one INVITE per dialled attempt carrying the
	// request id, tenant and ANI, and each call ended as expected.
	invites := 0
	for _, e := range u.entries(t) {
		switch e.Kind {
		case "INVITE":
			invites++
			if e.RID != id || e.Fields["tenant"] != tenant || e.Fields["ani"] != "4930999" {
				t.Errorf("%s: SIPp INVITE %v, want request %s", tenant, e.Fields, id)
			}
			if tenant == "ring" && e.Fields["rna"] != "1000ms" {
				t.Errorf("ring: CPD rna header %q, want 1000ms", e.Fields["rna"])
			}
		case "END":
			if e.Fields["how"] != ends {
				t.Errorf("%s: SIPp call ended %q, want %q", tenant, e.Fields["how"], ends)
			}
		}
	}
	if want := len(r.Attempts); invites != want {
		t.Errorf("%s: SIPp saw %d INVITEs, the request has %d attempts", tenant, invites, want)
	}
}

// TestSIPFailoverNoConcurrentDuplicateInvite: the leader is SIGKILLed
// while calls are up. The new leader re-dials the interrupted requests
// only once their retry is due (dialer.interrupted_retry_delay, set above
// the UAS's hold time) and SIPp never has two calls of one request at
// once (matched on the request-id header).
func TestSIPFailoverNoConcurrentDuplicateInvite(t *testing.T) {
	requireSIPp(t)
	const n = 20
	const retryDelay = 5 * time.Second     // above the UAS's hold time
	u := startSIPp(t, "uas_answer_hold3s") // holds each call 3 s
	sipcap := startSIPCapture(t, portOf(t, u.addr))
	c := startSIPCluster(t, []sipTrunk{{tenant: "fo", addr: u.addr, ports: 50}},
		func(s *config.SIP) { s.MaxCallDuration = config.Duration{} },
		func(d *config.Dialer) { d.InterruptedRetryDelay = config.Duration{Duration: retryDelay} })
	notes := newNotifications(t)
	var specs []*pb.RequestSpec
	for i := range n {
		specs = append(specs, &pb.RequestSpec{Token: fmt.Sprintf("F%d", i), IvrProfile: "Sales", Telnum: fmt.Sprintf("49301%04d", i),
			NotificationUrl: notes.srv.URL + "/r", MaxAttempts: 3, TimeToLive: "120s"})
	}
	ids := submit(t, c.http["n1"], "fo", specs...)
	// Up means answered and ACKed: a call killed before its ACK never
	// starts SIPp's hold timer.
	eventually(t, 30*time.Second, "every call up at SIPp", func() error {
		if got := u.count(t, "ACKED"); got < n {
			return fmt.Errorf("%d of %d calls ACKed", got, n)
		}
		return nil
	})
	leader := c.leader(t, "n1")
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	var survivor string
	for id := range c.http {
		if id != leader {
			survivor = id
			break
		}
	}
	eventually(t, 30*time.Second, "new leader", func() error {
		if l := c.leader(t, survivor); l == leader {
			return fmt.Errorf("leader still %s", l)
		}
		return nil
	})

	interrupted := 0
	for _, id := range ids {
		var r *pb.Request
		eventually(t, 90*time.Second, "request "+id+" done", func() error {
			var err error
			if r, err = getRequest(t, c.http[survivor], "fo", id); err != nil {
				return err
			}
			if r.State != "PROCESSED" || notes.of(id) == nil {
				return fmt.Errorf("state %s", r.State)
			}
			return nil
		})
		if r.Result != "SUCCESS" {
			t.Errorf("%s: %s %q", id, r.Result, r.ResultReason)
		}
		for i, a := range r.Attempts {
			if a.Outcome != "INTERRUPTED" {
				continue
			}
			interrupted++
			if i+1 < len(r.Attempts) {
				if gap := sub(r.Attempts[i+1].Started, a.Ended); gap < retryDelay-100*time.Millisecond {
					t.Errorf("%s: re-dialled %s after the interrupted attempt, before its retry was due (%s)", id, gap, retryDelay)
				}
			}
		}
	}
	if interrupted == 0 {
		t.Fatal("no attempt was interrupted by the leader kill: the test proved nothing")
	}

	// SIPp's view: per request, each call ends before the next INVITE.
	type span struct{ start, end int64 }
	spans := map[string][]span{}
	open := map[string]int64{} // by Call-ID
	ridOf := map[string]string{}
	for _, e := range u.entries(t) {
		switch e.Kind {
		case "INVITE":
			open[e.CID], ridOf[e.CID] = e.Tick, e.RID
		case "END":
			spans[ridOf[e.CID]] = append(spans[ridOf[e.CID]], span{open[e.CID], e.Tick})
			delete(open, e.CID)
		}
	}
	for cid, st := range open {
		// Still up at SIPp (should not happen: every request succeeded).
		spans[ridOf[cid]] = append(spans[ridOf[cid]], span{st, 1 << 62})
	}
	redialled := 0
	for rid, ss := range spans {
		slices.SortFunc(ss, func(a, b span) int { return int(a.start - b.start) })
		for i := 1; i < len(ss); i++ {
			redialled++
			if ss[i].start < ss[i-1].end {
				t.Errorf("request %s: SIPp had two calls at once: INVITE at %d ms while the previous call ran %d..%d ms", rid, ss[i].start, ss[i-1].start, ss[i-1].end)
			}
		}
	}
	t.Logf("%d requests, %d interrupted attempts, %d re-dialled at SIPp", n, interrupted, redialled)
	if redialled == 0 {
		t.Fatal("SIPp saw no request dialled twice")
	}
	checkCapturedInvites(t, sipcap, n+redialled, false)
}

// TestSIPTeardownOnLeadershipLossAndStop: calls up (answered and held,
// or ringing) when the leader loses leadership (a transfer), and then when
// the next leader stops (SIGTERM), are all ended on the wire — BYE for
// the answered, CANCEL for the ringing — long before any call timer would
// end them, so no dialog is left orphaned at the far end.
func TestSIPTeardownOnLeadershipLossAndStop(t *testing.T) {
	requireSIPp(t)
	const n = 8
	hold := startSIPp(t, "uas_answer_hold")
	ring := startSIPp(t, "uas_ring")
	sipcap := startSIPCapture(t, portOf(t, hold.addr), portOf(t, ring.addr))
	c := startSIPCluster(t, []sipTrunk{{tenant: "hold", addr: hold.addr, ports: 50}, {tenant: "ring", addr: ring.addr, ports: 50}},
		func(s *config.SIP) {
			s.RingTimeout = config.Duration{Duration: 5 * time.Minute}
			s.MaxCallDuration = config.Duration{Duration: 5 * time.Minute}
		}, nil)
	for _, tenant := range []string{"hold", "ring"} {
		var specs []*pb.RequestSpec
		for i := range n {
			specs = append(specs, &pb.RequestSpec{Token: fmt.Sprintf("%s%d", tenant, i), IvrProfile: "Sales", Telnum: fmt.Sprintf("49302%04d", i),
				NotificationUrl: "http://127.0.0.1:9/r", MaxAttempts: 5, TimeToLive: "300s"})
		}
		submit(t, c.http["n1"], tenant, specs...)
	}
	invites := func(u *sippUAS) map[string]bool {
		cids := map[string]bool{}
		for _, e := range u.entries(t) {
			if e.Kind == "INVITE" {
				cids[e.CID] = true
			}
		}
		return cids
	}
	// allEnded waits until every call in cids has ended at SIPp, as want.
	allEnded := func(what string, u *sippUAS, cids map[string]bool, want string) {
		t.Helper()
		eventually(t, 20*time.Second, what, func() error {
			ended := map[string]string{}
			for _, e := range u.entries(t) {
				if e.Kind == "END" {
					ended[e.CID] = e.Fields["how"]
				}
			}
			missing := 0
			for cid := range cids {
				how, ok := ended[cid]
				if !ok {
					missing++
				} else if how != want {
					t.Fatalf("%s: call %s ended %q, want %q", what, cid, how, want)
				}
			}
			if missing > 0 {
				var up []string
				for cid := range cids {
					if _, ok := ended[cid]; !ok {
						up = append(up, cid)
					}
				}
				return fmt.Errorf("%d of %d calls still up at SIPp: %v", missing, len(cids), up)
			}
			return nil
		})
	}
	waitInvites := func(u *sippUAS, atLeast int) map[string]bool {
		t.Helper()
		var cids map[string]bool
		eventually(t, 30*time.Second, "calls up at SIPp", func() error {
			if cids = invites(u); len(cids) < atLeast {
				return fmt.Errorf("%d of %d INVITEs", len(cids), atLeast)
			}
			return nil
		})
		return cids
	}

	// 1. Leadership moves away: the old leader hangs up everything it had.
	heldA, ringingA := waitInvites(hold, n), waitInvites(ring, n)
	var first string
	eventually(t, 30*time.Second, "leadership transfer", func() error {
		first = c.leader(t, "n1")
		_, err := rest(t, c.http[first]).TransferLeadership(t.Context(), &pb.TransferLeadershipRequest{})
		return err
	})
	allEnded("after the leadership transfer: answered calls", hold, heldA, "caller_bye")
	allEnded("after the leadership transfer: ringing calls", ring, ringingA, "cancel")

	// 2. The new leader re-dials them; then it is stopped (SIGTERM) and
	// hangs up its calls before it exits.
	heldB, ringingB := waitInvites(hold, 2*n), waitInvites(ring, 2*n)
	second := c.leader(t, "n1")
	if second == first {
		t.Fatalf("leadership did not move from %s", first)
	}
	for cid := range heldA {
		delete(heldB, cid)
	}
	for cid := range ringingA {
		delete(ringingB, cid)
	}
	p := c.Proc(second)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("the leader did not stop on SIGTERM")
	}
	if code := p.ExitCode(); code != 0 {
		t.Fatalf("leader exit code %d", code)
	}
	allEnded("after the leader stopped: answered calls", hold, heldB, "caller_bye")
	allEnded("after the leader stopped: ringing calls", ring, ringingB, "cancel")
	// The last leader's re-dials may still ring.
	checkCapturedInvites(t, sipcap, 4*n, true)
}
