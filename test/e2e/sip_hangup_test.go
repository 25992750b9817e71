//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
)

// ctrlCommand sends one command to baresip's ctrl_tcp module (a JSON
// netstring) and returns its reply.
func ctrlCommand(t *testing.T, addr, command string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := fmt.Sprintf(`{"command":%q,"params":"","token":"t"}`, command)
	if _, err := fmt.Fprintf(c, "%d:%s,", len(msg), msg); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, _ := c.Read(buf)
	return string(buf[:n])
}

// TestSIPRealCalleeAnswersThenHangsUp: baresip, the callee behind a
// record-routing kamailio, answers automatically and is hung up at once
// through its control interface, while a second baresip is the IVR
// application. The call was connected, but the callee hung up within
// min_connected: the attempt is ShortCall (callee hung up), the request
// does not succeed, and its notification says so.
func TestSIPRealCalleeAnswersThenHangsUp(t *testing.T) {
	requireSIPp(t) // the cluster helpers; also skips consistently with the SIPp tests
	ctrl := fmt.Sprintf("127.0.0.1:%d", freeSIPPort(t))
	callee := startBaresipWith(t, "4930300", true, "module_app ctrl_tcp.so\nctrl_tcp_listen "+ctrl+"\n")
	ivr := startBaresip(t, "ivr", true)
	rr := startKamailio(t, callee.addr, true, nil)
	sipcap := startSIPCapture(t, portOf(t, rr.addr))
	c := startSIPCluster(t, []sipTrunk{{tenant: "hu", addr: rr.addr, ports: 5}}, func(s *config.SIP) {
		s.MaxCallDuration = config.Duration{Duration: 20 * time.Second}
		s.MinConnected = config.Duration{Duration: 5 * time.Second}
		s.IVR = []config.SIPIVR{{Profile: "*", URI: "sip:ivr@{server}", Servers: []string{ivr.addr}, Ports: 5}}
	}, nil)
	notes := newNotifications(t)
	id := submit(t, c.http["n1"], "hu", &pb.RequestSpec{IvrProfile: "Sales", Telnum: "4930300", Ani: "4930999", MaxAttempts: 1,
		TimeToLive: "60s", NotificationUrl: notes.srv.URL + "/r", Token: "HU"})[0]
	// Connected: the callee's call is established (its ACK carried the
	// IVR's answer); then the person hangs up.
	eventually(t, 30*time.Second, "the callee's call established", func() error {
		if !strings.Contains(strings.ToLower(callee.proc.out.String()), "established") {
			return fmt.Errorf("not established yet")
		}
		return nil
	})
	reply := ctrlCommand(t, ctrl, "hangup")
	t.Logf("baresip hangup: %s", reply)
	var r *pb.Request
	eventually(t, 30*time.Second, "notified", func() error {
		if notes.of(id) == nil {
			return fmt.Errorf("not notified")
		}
		var err error
		r, err = getRequest(t, c.http["n2"], "hu", id)
		return err
	})
	if r.Result != "FAILURE" || len(r.Attempts) != 1 || r.Attempts[0].Reason != "ShortCall (callee hung up)" {
		t.Errorf("%s %q %+v, want FAILURE after one ShortCall (callee hung up) attempt", r.Result, r.ResultReason, r.Attempts)
	}
	if n := notes.of(id); n["Result"] != "FAILURE" || !strings.HasPrefix(n["Status"], "ShortCall (callee hung up)") {
		t.Errorf("notification %v, want FAILURE with ShortCall (callee hung up)", n)
	}
	checkCapturedInvites(t, sipcap, 1, false)
}
