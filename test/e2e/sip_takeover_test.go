//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
)

// TestSIPTakeover: live calls survive a SIGKILL of the leader (issue 15).
// Three `dialtone serve` processes share the SIP service address
// 127.0.0.77:<port>, which only the leader binds. SIPp answers every call
// and hangs up itself after 10 s, with a BYE to the service address. The
// leader is SIGKILLed while the calls are up; the new leader must adopt
// them: no BYE reaches SIPp before its own, SIPp's BYE is answered 200
// (BYEOK in its log), an in-dialog UPDATE sent to the service address
// after the kill gets 200 from the new leader, every request ends SUCCESS
// after exactly one attempt and is notified once, and SIPp never sees a
// request dialled twice.
//
// With the takeover disabled (dialer.disable_takeover) the same kill must
// drop the calls: SIPp's BYEs get 481 and the requests are dialled again.
// DIALTONE_TAKEOVER_KILLS sets the kills of the adopting run (default 2;
// RELIABILITY.md used 5).
func TestSIPTakeover(t *testing.T) {
	requireSIPp(t)
	kills := 2
	if v, err := strconv.Atoi(os.Getenv("DIALTONE_TAKEOVER_KILLS")); err == nil && v > 0 {
		kills = v
	}
	t.Run("adopt", func(t *testing.T) { takeoverRun(t, false, false, kills) })
	// A graceful stop (SIGTERM) hands the calls over the same way: the
	// stopping leader sends nothing and releases the address at once.
	t.Run("handover", func(t *testing.T) { takeoverRun(t, false, true, 1) })
	t.Run("disabled", func(t *testing.T) { takeoverRun(t, true, false, 1) })
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

type takeoverRound struct {
	up, dropped, duplicates, extraAttempts, badNotes int
	takeover                                         time.Duration
	probeCode                                        int
}

func takeoverRun(t *testing.T, disabled, graceful bool, kills int) {
	const n = 20
	svc := serviceAddrE2E(t)
	u := startSIPp(t, "uas_takeover")
	c := startSIPCluster(t, []sipTrunk{{tenant: "tk", addr: u.addr, ports: 100}},
		func(s *config.SIP) {
			s.ServiceAddr = svc
			s.MaxCallDuration = config.Duration{Duration: time.Minute}
		},
		func(d *config.Dialer) { d.DisableTakeover = disabled })
	notes := newNotifications(t)
	var rounds []takeoverRound
	restarted := "" // a node just restarted may not have caught up: not used for requests
	for k := range kills {
		var specs []*pb.RequestSpec
		for i := range n {
			specs = append(specs, &pb.RequestSpec{Token: fmt.Sprintf("K%dT%d", k, i), IvrProfile: "Sales", Telnum: fmt.Sprintf("4930%d%04d", k, i),
				NotificationUrl: notes.srv.URL + "/r", MaxAttempts: 3, TimeToLive: "180s"})
		}
		leader := c.leader(t, c.IDs()[0])
		var via string
		for _, id := range c.IDs() {
			if id != leader && (via == "" || id != restarted) {
				via = id
			}
		}
		ids := submit(t, c.http[via], "tk", specs...)
		want := map[string]bool{}
		for _, id := range ids {
			want[id] = true
		}
		// Every call of the round answered and ACKed at SIPp.
		var acked []sippEntry
		eventually(t, 60*time.Second, "every call up at SIPp", func() error {
			acked = acked[:0]
			for _, e := range u.entries(t) {
				if e.kind == "ACKED" && want[e.rid] {
					acked = append(acked, e)
				}
			}
			if len(acked) < n {
				return fmt.Errorf("%d of %d calls ACKed", len(acked), n)
			}
			return nil
		})
		time.Sleep(300 * time.Millisecond) // the dialogs' confirmed state committed (one batch)
		if l := c.leader(t, via); l != leader {
			t.Fatalf("leader changed from %s to %s before the kill", leader, l)
		}
		if graceful {
			go func() { _ = c.Stop(t.Context(), leader) }() // SIGTERM; returns once the process exited
		} else if err := c.Kill(leader); err != nil {
			t.Fatal(err)
		}
		probe := acked[0]
		limit := 30 * time.Second
		if disabled {
			limit = 10 * time.Second // only 481s will come
		}
		code, took := probeInDialog(t, svc, probe, limit)
		t.Logf("kill %d of %s: first in-dialog answer %d after %s", k+1, leader, code, took)

		r := takeoverRound{up: n, takeover: took, probeCode: code}
		// Every request done and notified.
		for _, id := range ids {
			var req *pb.Request
			eventually(t, 90*time.Second, "request "+id+" done", func() error {
				var err error
				if req, err = getRequest(t, c.http[via], "tk", id); err != nil {
					return err
				}
				if req.State != "PROCESSED" || notes.of(id) == nil {
					return fmt.Errorf("state %s", req.State)
				}
				return nil
			})
			if len(req.Attempts) != 1 {
				r.extraAttempts += len(req.Attempts) - 1
			}
			notes.mu.Lock()
			got := len(notes.got[id])
			notes.mu.Unlock()
			if got != 1 || notes.of(id)["Result"] != "SUCCESS" || req.Result != "SUCCESS" {
				r.badNotes++
				if !disabled {
					t.Errorf("%s: %s %q, %d attempts, notified %d times %v", id, req.Result, req.ResultReason, len(req.Attempts), got, notes.of(id))
				}
			}
		}
		// SIPp's view of each request's first call: ended by its own BYE,
		// answered 200 (BYEOK), never by ours; and no second INVITE.
		invites, byeOK, callerBye := map[string]int{}, map[string]bool{}, map[string]bool{}
		for _, e := range u.entries(t) {
			if !want[e.rid] {
				continue
			}
			switch {
			case e.kind == "INVITE":
				invites[e.rid]++
			case e.kind == "BYEOK":
				byeOK[e.cid] = true
			case e.kind == "END" && e.fields["how"] == "caller_bye":
				callerBye[e.cid] = true
			}
		}
		for _, a := range acked {
			if !byeOK[a.cid] || callerBye[a.cid] {
				r.dropped++
			}
		}
		for _, k := range invites {
			r.duplicates += k - 1
		}
		rounds = append(rounds, r)
		t.Logf("kill %d: calls up %d, dropped %d, duplicate INVITEs %d, extra attempts %d, bad notifications %d, takeover %s (in-dialog UPDATE answered %d)",
			k+1, r.up, r.dropped, r.duplicates, r.extraAttempts, r.badNotes, r.takeover.Round(time.Millisecond), r.probeCode)
		if disabled {
			if r.dropped == 0 {
				t.Fatal("takeover disabled, yet no call was dropped: the test cannot tell adoption from its absence")
			}
			continue
		}
		if r.dropped != 0 || r.duplicates != 0 || r.extraAttempts != 0 || r.probeCode != 200 {
			t.Errorf("kill %d: %+v", k+1, r)
		}
		if k+1 < kills {
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
	fmt.Fprintf(os.Stderr, "| kill | calls up | dropped | duplicates | extra attempts | takeover (kill → in-dialog 200) |\n|---|---|---|---|---|---|\n")
	for i, r := range rounds {
		fmt.Fprintf(os.Stderr, "| %d | %d | %d | %d | %d | %s |\n", i+1, r.up, r.dropped, r.duplicates, r.extraAttempts, r.takeover.Round(time.Millisecond))
	}
}

// probeInDialog sends, as the far end of the call SIPp logged in e, an
// offerless UPDATE (a session refresh) to the service address every 50 ms
// until one is answered 200 or timeout passes, and returns the last
// answer's code and when the 200 came (since the call).
func probeInDialog(t *testing.T, svc string, e sippEntry, timeout time.Duration) (int, time.Duration) {
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
			"From: <sip:sipp@127.0.0.1>;tag=" + e.fields["ttag"],
			"To: <sip:dialtone@" + svc + ">;tag=" + e.fields["ftag"],
			"Call-ID: " + e.cid,
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
