//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/test/sipjudge"
)

// TestSIPTakeover: live calls survive a SIGKILL of the leader (issue 15).
// Three `dialtone serve` processes share the SIP service address
// 127.0.0.77:<port>, which only the leader binds. Three SIPp far ends, each
// a trunk whose port budget is exactly its calls of a round:
//   - "tk" answers every call at once and hangs up itself after the hold
//     (10 s, longer for many calls), with a BYE to the service address;
//   - "tr" rings (180) for 8 s, then answers (its 200 retransmitted until
//     ACKed) and holds the call like "tk";
//   - "tn" rings until CANCELled; its requests have a 10 s ring timeout
//     (RNA) and one attempt, so their true outcome is RingNoAnswer.
//
// Per kill the "tk" calls are placed and ACKed, then the ringing ones
// placed, and the leader is SIGKILLed while they ring. The new leader must
// adopt them all: no BYE reaches SIPp before its own, SIPp's BYE is
// answered 200 (BYEOK in its log), an in-dialog UPDATE sent to the service
// address after the kill gets 200 from the new leader, a ringing INVITE
// gets its final response adopted (200 ACKed and the call held) or is
// CANCELled at its replicated ring deadline, every request ends after
// exactly one attempt and every notification of it (at least one; a
// repeat is counted, as delivery is at least once) and its stored result
// carry the outcome its far end saw, SIPp never sees a request dialled twice, no two INVITE transactions
// of one request overlap on the wire, and no far end ever holds more
// dialogs than its trunk's port budget.
//
// With the takeover disabled (dialer.disable_takeover) the same kill must
// drop the calls: SIPp's BYEs get 481 and the requests are dialled again.
//
// The adopting run is sized by DIALTONE_TAKEOVER_KILLS (default 2),
// DIALTONE_TAKEOVER_UP (answered calls at each kill, default 20) and
// DIALTONE_TAKEOVER_RINGING (ringing calls at each kill, half answered
// later and half never, default 5); the check is 5, 100 and 20.
func TestSIPTakeover(t *testing.T) {
	requireSIPp(t)
	adopt := takeoverOpts{kills: envInt("DIALTONE_TAKEOVER_KILLS", 2), up: envInt("DIALTONE_TAKEOVER_UP", 20), ringing: envInt("DIALTONE_TAKEOVER_RINGING", 5)}
	t.Run("adopt", func(t *testing.T) { takeoverRun(t, adopt) })
	// 3PCC calls: every answered callee joined to an IVR leg on a SIPp
	// media server; the new leader must hold both legs and hang the IVR
	// leg up only when the callee hangs up.
	t.Run("adopt-3pcc", func(t *testing.T) {
		takeoverRun(t, takeoverOpts{ivr: true, kills: 1, up: envInt("DIALTONE_TAKEOVER_UP", 20), ringing: envInt("DIALTONE_TAKEOVER_RINGING", 4)})
	})
	// A graceful stop (SIGTERM) hands the calls over the same way: the
	// stopping leader sends nothing and releases the address at once.
	t.Run("handover", func(t *testing.T) { takeoverRun(t, takeoverOpts{graceful: true, kills: 1, up: 20}) })
	t.Run("disabled", func(t *testing.T) { takeoverRun(t, takeoverOpts{disabled: true, kills: 1, up: 20}) })
}

// envInt is the non-negative integer in the environment variable name, or
// def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

// serviceAddr is a free UDP port on 127.0.0.77.
func serviceAddrE2E(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 77)})
	if err != nil {
		t.Skipf("127.0.0.77 not bindable: %v", err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// tolerateRepeats makes SIPp ignore a message its scenario does not expect
// instead of aborting the call: a repeated ACK, which a new leader sends
// once when it adopts a call (the predecessor may have owed it) and which
// a UA discards (RFC 3261 §13.3.1.4); SIPp's default would abort the call.
var tolerateRepeats = []string{"-default_behaviors", "all,-abortunexp"}

type takeoverOpts struct {
	disabled, graceful bool
	ivr                bool // 3PCC: an IVR leg on a SIPp media server for every answered call
	kills, up, ringing int
}

type takeoverRound struct {
	up, ringing, dropped, duplicates, extraAttempts, renotified, wrongOutcome int
	maxDialogs, budget                                                        int // the far ends' most dialogs at once (summed) and their port budgets
	overBudget                                                                int // far ends above their port budget
	ivrUp, ivrBad                                                             int // 3PCC: IVR legs up; answered requests whose IVR leg was not exactly one, ended by our BYE
	takeover                                                                  time.Duration
	probeCode                                                                 int
}

// takeoverFar is one SIPp far end of the takeover test, a trunk of its
// own whose port budget is its calls of a round.
type takeoverFar struct {
	tenant, telnum string
	uas            *sippUAS
	n              int
	ringing        bool // INVITE ringing at the kill
	answers        bool // eventually answered (else rings until CANCEL)
}

const (
	takeoverRingFor = 8 * time.Second  // "tr": 180 → 200
	takeoverRNA     = 10 * time.Second // "tn": the requests' ring timeout
)

// takeoverScenario is the scenario name, or (for a hold other than the
// files' 10 s) a copy of it holding calls for hold.
func takeoverScenario(t *testing.T, name string, hold time.Duration) string {
	t.Helper()
	if hold == 10*time.Second {
		return name
	}
	b, err := os.ReadFile(filepath.Join("testdata", "sipp", name+".xml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `timeout="10000"`, fmt.Sprintf(`timeout="%d"`, hold.Milliseconds()), 1)
	p := filepath.Join(t.TempDir(), name+".xml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func takeoverRun(t *testing.T, o takeoverOpts) {
	// The first calls of a round must still be up when the last is ACKed.
	hold := 10 * time.Second
	if o.up > 20 {
		hold += time.Duration(o.up-20) * time.Second / 4
	}
	svc := serviceAddrE2E(t)
	fars := []*takeoverFar{{tenant: "tk", telnum: "4930", n: o.up, answers: true,
		uas: startSIPp(t, takeoverScenario(t, "uas_takeover", hold), tolerateRepeats...)}}
	if n := o.ringing - o.ringing/2; n > 0 {
		fars = append(fars, &takeoverFar{tenant: "tr", telnum: "4931", n: n, ringing: true, answers: true,
			uas: startSIPp(t, takeoverScenario(t, "uas_takeover_ring", hold), append([]string{"-d", strconv.FormatInt(takeoverRingFor.Milliseconds(), 10)}, tolerateRepeats...)...)})
	}
	if n := o.ringing / 2; n > 0 {
		fars = append(fars, &takeoverFar{tenant: "tn", telnum: "4932", n: n, ringing: true, uas: startSIPp(t, "uas_ring")})
	}
	var trunks []sipTrunk
	var ports []int
	for _, f := range fars {
		trunks = append(trunks, sipTrunk{tenant: f.tenant, addr: f.uas.addr, ports: f.n})
		ports = append(ports, portOf(t, f.uas.addr))
	}
	var ivrUAS *sippUAS
	if o.ivr {
		ivrUAS = startSIPp(t, "uas_ivr_hold", tolerateRepeats...)
	}
	var sipcap *sipCapture
	if !o.disabled {
		sipcap = startSIPCapture(t, ports...)
	}
	c := startSIPCluster(t, trunks,
		func(s *config.SIP) {
			s.ServiceAddr = svc
			s.MaxCallDuration = config.Duration{Duration: 2 * hold}
			s.RingTimeout = config.Duration{Duration: 30 * time.Second}
			if ivrUAS != nil {
				s.IVR = []config.SIPIVR{{Profile: "*", URI: "sip:ivr@{server}", Servers: []string{ivrUAS.addr}, Ports: o.up + o.ringing}}
			}
		},
		func(d *config.Dialer) { d.DisableTakeover = o.disabled })
	notes := newNotifications(t)
	var rounds []takeoverRound
	restarted := "" // a node just restarted may not have caught up: not used for requests
	for k := range o.kills {
		leader := c.leader(t, c.IDs()[0])
		var via string
		for _, id := range c.IDs() {
			if id != leader && (via == "" || id != restarted) {
				via = id
			}
		}
		want := map[string]bool{} // this round's request ids
		tenantOf := map[string]*takeoverFar{}
		place := func(f *takeoverFar) {
			var specs []*pb.RequestSpec
			for i := range f.n {
				s := &pb.RequestSpec{Token: fmt.Sprintf("K%d%s%d", k, f.tenant, i), IvrProfile: "Sales", Telnum: fmt.Sprintf("%s%d%04d", f.telnum, k, i),
					NotificationUrl: notes.srv.URL + "/r", MaxAttempts: 3, TimeToLive: "300s"}
				if !f.answers {
					s.MaxAttempts = 1 // a ring-out is then final
					s.Cpd = &pb.Cpd{RnaTimeout: takeoverRNA.String()}
				}
				specs = append(specs, s)
			}
			for _, id := range submit(t, c.http[via], f.tenant, specs...) {
				want[id] = true
				tenantOf[id] = f
			}
		}
		// Every answered call of the round up and ACKed at SIPp...
		place(fars[0])
		var acked []sipjudge.Entry
		eventually(t, 120*time.Second, "every call up at SIPp", func() error {
			acked = acked[:0]
			for _, e := range fars[0].uas.entries(t) {
				if e.Kind == "ACKED" && want[e.RID] {
					acked = append(acked, e)
				}
			}
			if len(acked) < fars[0].n {
				return fmt.Errorf("%d of %d calls ACKed", len(acked), fars[0].n)
			}
			return nil
		})
		// ...then every ringing one INVITEd (and rung: SIPp's 180 is sent
		// as the INVITE is logged).
		for _, f := range fars[1:] {
			place(f)
		}
		eventually(t, 60*time.Second, "every ringing call INVITEd at SIPp", func() error {
			for _, f := range fars[1:] {
				n := 0
				for _, e := range f.uas.entries(t) {
					if e.Kind == "INVITE" && want[e.RID] {
						n++
					}
				}
				if n < f.n {
					return fmt.Errorf("%s: %d of %d calls INVITEd", f.tenant, n, f.n)
				}
			}
			return nil
		})
		time.Sleep(300 * time.Millisecond) // the dialogs' and INVITEs' state committed (one batch)
		if l := c.leader(t, via); l != leader {
			t.Fatalf("leader changed from %s to %s before the kill", leader, l)
		}
		// Calls up and ringing at SIPp just before the kill.
		r := takeoverRound{}
		for _, f := range fars {
			ended := map[string]bool{}
			es := f.uas.entries(t)
			for _, e := range es {
				if (e.Kind == "ACKED" || e.Kind == "END") && want[e.RID] {
					ended[e.CID] = true // answered or (tn) cancelled
				}
			}
			for _, e := range es {
				switch {
				case !want[e.RID]:
				case e.Kind == "ACKED":
					r.up++
				case e.Kind == "INVITE" && f.ringing && !ended[e.CID]:
					r.ringing++
				}
			}
		}
		if o.graceful {
			go func() { _ = c.Stop(t.Context(), leader) }() // SIGTERM; returns once the process exited
		} else if err := c.Kill(leader); err != nil {
			t.Fatal(err)
		}
		probe := acked[0]
		limit := 30 * time.Second
		if o.disabled {
			limit = 10 * time.Second // only 481s will come
		}
		code, took := probeInDialog(t, svc, probe, limit)
		t.Logf("kill %d of %s: first in-dialog answer %d after %s", k+1, leader, code, took)
		r.takeover, r.probeCode = took, code

		// Every request done and notified.
		reqs := map[string]*pb.Request{}
		for id, f := range tenantOf {
			var req *pb.Request
			eventually(t, 120*time.Second, "request "+id+" done", func() error {
				var err error
				if req, err = getRequest(t, c.http[via], f.tenant, id); err != nil {
					return err
				}
				if req.State != "PROCESSED" || notes.of(id) == nil {
					return fmt.Errorf("state %s", req.State)
				}
				return nil
			})
			reqs[id] = req
		}
		// What each far end saw of each request (sipjudge): its INVITEs,
		// whether the first call ended by SIPp's own BYE answered 200
		// (never by ours), or by a CANCEL; and its most dialogs at once.
		// Delivery is at least once (docs/dialer.md): a repeat is counted,
		// not an error; every one must carry the outcome.
		got := map[string][]map[string]string{}
		ns := map[string][]sipjudge.Note{}
		notes.mu.Lock()
		for id := range tenantOf {
			got[id] = slices.Clone(notes.got[id])
			for _, n := range got[id] {
				ns[id] = append(ns[id], sipjudge.Note{Result: n["Result"], Status: n["Status"]})
			}
		}
		notes.mu.Unlock()
		var judged []sipjudge.Far
		for _, f := range fars {
			j := sipjudge.Far{Name: f.tenant, Budget: f.n, Answers: f.answers, Entries: f.uas.entries(t)}
			for id, g := range tenantOf {
				if g == f {
					j.Requests = append(j.Requests, id)
				}
			}
			judged = append(judged, j)
		}
		res := sipjudge.Judge(judged, reqs, ns)
		// Extra attempts are every attempt beyond one, counted or not
		// (stricter than the chaos run's): each request must end after
		// exactly one attempt.
		r.dropped, r.duplicates, r.extraAttempts = res.Dropped, res.Duplicates, res.ExtraAttempts+res.Uncounted
		r.renotified, r.wrongOutcome = res.Renotified, res.WrongOutcome
		r.maxDialogs, r.budget, r.overBudget = res.MaxDialogs, res.Budget, res.OverBudget
		for _, d := range res.Dialogs {
			if d.Most > d.Budget {
				t.Logf("kill %d: far end %s held %d dialogs at once, budget %d", k+1, d.Far, d.Most, d.Budget)
			}
		}
		for _, v := range res.Requests {
			if req := reqs[v.ID]; v.Wrong && !o.disabled {
				t.Errorf("%s (%s): far end saw %s; %s %q, %d attempts, notified %v", v.ID, v.Far, v.Saw, req.GetResult(), req.GetResultReason(), len(req.GetAttempts()), got[v.ID])
			}
		}
		if ivrUAS != nil {
			// Each answered request: one IVR INVITE, ACKed, ended by our
			// BYE (the callee's hang-up relayed), never by a timeout.
			invites, up, byed := map[string]int{}, map[string]bool{}, map[string]bool{}
			for _, e := range ivrUAS.entries(t) {
				switch {
				case !want[e.RID]:
				case e.Kind == "INVITE":
					invites[e.RID]++
				case e.Kind == "IVRUP":
					up[e.RID] = true
					r.ivrUp++
				case e.Kind == "END" && e.Fields["how"] == "dialtone_bye":
					byed[e.RID] = true
				}
			}
			for id, f := range tenantOf {
				if f.answers && (invites[id] != 1 || !up[id] || !byed[id]) {
					r.ivrBad++
					t.Errorf("%s (%s): IVR leg: %d INVITEs, up %v, ended by our BYE %v", id, f.tenant, invites[id], up[id], byed[id])
				}
			}
		}
		rounds = append(rounds, r)
		if ivrUAS != nil {
			t.Logf("kill %d: 3PCC IVR legs up %d, wrong %d", k+1, r.ivrUp, r.ivrBad)
		}
		t.Logf("kill %d: calls up %d, ringing %d, dropped %d, duplicate INVITEs %d, extra attempts %d, outcome not the far end's %d, notified again %d, far ends' most dialogs %d of budget %d (%d over), takeover %s (in-dialog UPDATE answered %d)",
			k+1, r.up, r.ringing, r.dropped, r.duplicates, r.extraAttempts, r.wrongOutcome, r.renotified, r.maxDialogs, r.budget, r.overBudget, r.takeover.Round(time.Millisecond), r.probeCode)
		if o.disabled {
			if r.dropped == 0 {
				t.Fatal("takeover disabled, yet no call was dropped: the test cannot tell adoption from its absence")
			}
			continue
		}
		if r.up < o.up || r.dropped != 0 || r.duplicates != 0 || r.extraAttempts != 0 || r.wrongOutcome != 0 || r.overBudget != 0 || r.probeCode != 200 {
			t.Errorf("kill %d: %+v", k+1, r)
		}
		if k+1 < o.kills {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			restarted = leader
			if err := c.Restart(ctx, leader); err != nil {
				t.Fatal(err)
			}
			err := c.WaitServers(ctx, 3)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if sipcap != nil {
		checkCapturedInvites(t, sipcap, o.kills*(o.up+o.ringing), false)
	}
	fmt.Fprintf(os.Stderr, "| kill | calls up | ringing | dropped | duplicates | extra attempts | outcome ≠ far end's | notified again | far ends' most dialogs / port budget | takeover (kill → in-dialog 200) |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for i, r := range rounds {
		fmt.Fprintf(os.Stderr, "| %d | %d | %d | %d | %d | %d | %d | %d | %d / %d | %s |\n", i+1, r.up, r.ringing, r.dropped, r.duplicates, r.extraAttempts, r.wrongOutcome, r.renotified, r.maxDialogs, r.budget, r.takeover.Round(time.Millisecond))
	}
}

// probeInDialog sends, as the far end of the call SIPp logged in e, an
// offerless UPDATE (a session refresh) to the service address every 50 ms
// until one is answered 200 or timeout passes, and returns the last
// answer's code and when the 200 came (since the call).
func probeInDialog(t *testing.T, svc string, e sipjudge.Entry, timeout time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dst, _ := net.ResolveUDPAddr("udp4", svc)
	local := conn.LocalAddr().String()
	code := 0
	buf := make([]byte, 65535)
	for i := 0; time.Since(start) < timeout; i++ {
		msg := strings.Join([]string{
			"UPDATE sip:dialtone@" + svc + " SIP/2.0",
			"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-probe-" + strconv.Itoa(i) + ";rport",
			"Max-Forwards: 70",
			"From: <sip:sipp@127.0.0.1>;tag=" + e.Fields["ttag"],
			"To: <sip:dialtone@" + svc + ">;tag=" + e.Fields["ftag"],
			"Call-ID: " + e.CID,
			"CSeq: " + strconv.Itoa(1000+i) + " UPDATE",
			"Contact: <sip:sipp@" + local + ">",
			"Content-Length: 0", "", "",
		}, "\r\n")
		if _, err := conn.WriteToUDP([]byte(msg), dst); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		for {
			m, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				break
			}
			line, _, _ := strings.Cut(string(buf[:m]), "\r\n")
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "SIP/2.0" {
				code, _ = strconv.Atoi(f[1])
				if code == 200 {
					return code, time.Since(start)
				}
			}
		}
	}
	return code, time.Since(start)
}
