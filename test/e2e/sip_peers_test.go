//go:build e2e

package e2e

import (
	"bufio"
	byteorder "encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
)

// The tests here run Dialtone against SIP software nobody on the project
// wrote: baresip (the callee, auto-answering, and the IVR application on
// a "media server", both sending a sine tone) and kamailio (proxies). They
// skip when a tool is missing, unless DIALTONE_REQUIRE_SIPP is set (CI),
// as the SIPp tests do. Everything binds 127.0.0.1 on free ports.

// requireTool returns the path of a binary, or skips (fails with
// DIALTONE_REQUIRE_SIPP set) when it is missing.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("DIALTONE_REQUIRE_SIPP") != "" {
			t.Fatalf("%s is not installed and DIALTONE_REQUIRE_SIPP is set (apt-get install -y %s)", name, pkg)
		}
		t.Skipf("%s is not installed (apt-get install -y %s); set DIALTONE_REQUIRE_SIPP=1 to fail instead of skipping", name, pkg)
	}
	return p
}

// freeSIPPort is a port free for UDP and TCP, with the next port free for
// TCP too (baresip listens for TLS on the SIP port + 1).
func freeSIPPort(t *testing.T) int {
	t.Helper()
	return freePort(t, func() (int, error) {
		for {
			u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				return 0, err
			}
			p := u.LocalAddr().(*net.UDPAddr).Port
			t1, err1 := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", p))
			t2, err2 := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", p+1))
			u.Close()
			for _, l := range []net.Listener{t1, t2} {
				if l != nil {
					l.Close()
				}
			}
			if err1 == nil && err2 == nil && p < 65000 {
				return p, nil
			}
		}
	})
}

// freeUDPRange is n consecutive UDP ports, all free now, none handed out
// before.
func freeUDPRange(t *testing.T, n int) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
outer:
	for range 200 {
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		base := u.LocalAddr().(*net.UDPAddr).Port &^ 1 // RTP ports are even
		u.Close()
		if base+n > 65535 {
			continue
		}
		for p := base; p < base+n; p++ {
			if handedOut.ports[p] {
				continue outer
			}
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err != nil {
				continue outer
			}
			c.Close()
		}
		for p := base; p < base+n; p++ {
			handedOut.ports[p] = true
		}
		return base
	}
	t.Fatal("no free UDP port range")
	return 0
}

// bgProc is a background process started by a test, in its own process
// group, stopped (SIGTERM to the group, then SIGKILL) at cleanup.
type bgProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func startBG(t *testing.T, name string, args ...string) *bgProc {
	t.Helper()
	cmd := exec.Command(name, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &bgProc{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), lastLines(p.out.String(), 60))
		}
	})
	return p
}

// baresip is one baresip user agent with one account.
type baresip struct {
	addr         string // SIP, 127.0.0.1:port
	user         string
	rtpLo, rtpHi int
	proc         *bgProc
}

// startBaresip runs baresip with one account user@127.0.0.1:port that
// answers automatically (autoAnswer) or lets calls ring, sending a sine
// tone as its audio.
func startBaresip(t *testing.T, user string, autoAnswer bool) *baresip {
	t.Helper()
	return startBaresipWith(t, user, autoAnswer, "")
}

// startBaresipWith is startBaresip with extra configuration lines.
func startBaresipWith(t *testing.T, user string, autoAnswer bool, extra string) *baresip {
	t.Helper()
	bin := requireTool(t, "baresip", "baresip")
	dir := t.TempDir()
	port := freeSIPPort(t)
	rtp := freeUDPRange(t, 64)
	b := &baresip{addr: fmt.Sprintf("127.0.0.1:%d", port), user: user, rtpLo: rtp, rtpHi: rtp + 63}
	cfg := fmt.Sprintf(`poll_method epoll
sip_listen 127.0.0.1:%d
net_interface 127.0.0.1
call_max_calls 64
audio_player aubridge,%[2]s
audio_source ausine,440
audio_alert aubridge,%[2]s
ausrc_srate 48000
auplay_srate 48000
ausrc_channels 2
auplay_channels 2
rtp_ports %d-%d
module_path /usr/lib/baresip/modules
module g711.so
module ausine.so
module aubridge.so
module_app account.so
module_app menu.so
%s`, port, user, b.rtpLo, b.rtpHi, extra)
	mode := "manual"
	if autoAnswer {
		mode = "auto"
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	acct := fmt.Sprintf("<sip:%s@127.0.0.1:%d>;regint=0;answermode=%s\n", user, port, mode)
	if err := os.WriteFile(filepath.Join(dir, "accounts"), []byte(acct), 0o600); err != nil {
		t.Fatal(err)
	}
	b.proc = startBG(t, bin, "-f", dir)
	eventually(t, 10*time.Second, "baresip "+user+" ready", func() error {
		select {
		case <-b.proc.done:
			return fmt.Errorf("baresip exited: %s", lastLines(b.proc.out.String(), 20))
		default:
		}
		if !strings.Contains(b.proc.out.String(), "baresip is ready") {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	return b
}

// kamailioProxy is a stateful kamailio proxy forwarding every new request
// to next (host:port); recordRoute makes it stay in the dialog; replies
// maps a Request-URI user to a status code it answers itself.
type kamailioProxy struct {
	addr string
	proc *bgProc
}

func startKamailio(t *testing.T, next string, recordRoute bool, replies map[string]int) *kamailioProxy {
	t.Helper()
	bin := requireTool(t, "kamailio", "kamailio")
	dir := t.TempDir()
	port := freeSIPPort(t)
	k := &kamailioProxy{addr: fmt.Sprintf("127.0.0.1:%d", port)}
	var rules strings.Builder
	for user, code := range replies {
		fmt.Fprintf(&rules, "\tif ($rU == \"%s\") { sl_send_reply(\"%d\", \"Test Reply\"); exit; }\n", user, code)
	}
	rr := ""
	if recordRoute {
		rr = "\trecord_route();\n"
	}
	cfg := fmt.Sprintf(`#!KAMAILIO
debug=1
log_stderror=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:%d
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
request_route {
	if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
	if (has_totag()) {
		if (loose_route()) { t_relay(); exit; }
		if (is_method("ACK") && t_check_trans()) { t_relay(); }
		exit;
	}
	if (is_method("CANCEL")) {
		if (t_check_trans()) { t_relay(); }
		exit;
	}
	t_check_trans();
	remove_hf("Route");
%s%s	$du = "sip:%s";
	if (!t_relay()) { sl_reply_error(); }
}
`, port, rules.String(), rr, next)
	path := filepath.Join(dir, "kamailio.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	k.proc = startBG(t, bin, "-f", path, "-DD", "-E", "-m", "32", "-M", "8", "-w", dir, "-Y", dir, "-P", filepath.Join(dir, "pid"))
	eventually(t, 10*time.Second, "kamailio listening", func() error {
		select {
		case <-k.proc.done:
			return fmt.Errorf("kamailio exited: %s", lastLines(k.proc.out.String(), 30))
		default:
		}
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err == nil {
			c.Close()
			return fmt.Errorf("port %d not bound yet", port)
		}
		return nil
	})
	return k
}

// rtpCapture counts UDP packets on the loopback between two port ranges
// (tcpdump), per port pair.
type rtpCapture struct {
	proc *bgProc
	line *regexp.Regexp
}

func startRTPCapture(t *testing.T, ranges ...[2]int) *rtpCapture {
	t.Helper()
	bin := requireTool(t, "tcpdump", "tcpdump")
	var f []string
	for _, r := range ranges {
		f = append(f, fmt.Sprintf("portrange %d-%d", r[0], r[1]))
	}
	c := &rtpCapture{line: regexp.MustCompile(`IP 127\.0\.0\.1\.(\d+) > 127\.0\.0\.1\.(\d+): UDP`)}
	c.proc = startBG(t, bin, "-i", "lo", "-nn", "-q", "-l", "udp and ("+strings.Join(f, " or ")+")")
	waitCapturing(t, c.proc)
	return c
}

// waitCapturing waits until tcpdump captures; one that cannot (no
// capture rights on the loopback) skips the test, or fails it with
// DIALTONE_REQUIRE_SIPP set.
func waitCapturing(t *testing.T, p *bgProc) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(p.out.String(), "listening on") {
			return
		}
		select {
		case <-p.done:
			msg := "tcpdump cannot capture on the loopback: " + lastLines(p.out.String(), 5)
			if os.Getenv("DIALTONE_REQUIRE_SIPP") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg + " (set DIALTONE_REQUIRE_SIPP=1 to fail instead of skipping)")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump not capturing after 10 s: %s", lastLines(p.out.String(), 5))
		}
	}
}

// flows is the packets seen per (source port, destination port).
func (c *rtpCapture) flows() map[[2]int]int {
	out := map[[2]int]int{}
	sc := bufio.NewScanner(strings.NewReader(c.proc.out.String()))
	for sc.Scan() {
		if m := c.line.FindStringSubmatch(sc.Text()); m != nil {
			a, _ := strconv.Atoi(m[1])
			b, _ := strconv.Atoi(m[2])
			out[[2]int{a, b}]++
		}
	}
	return out
}

// calls pairs the flows between a port of ranges a and one of b: for
// each pair, the packets a→b and b→a.
func (c *rtpCapture) calls(a, b [2]int) map[[2]int][2]int {
	in := func(p int, r [2]int) bool { return p >= r[0] && p <= r[1] }
	out := map[[2]int][2]int{}
	for f, n := range c.flows() {
		switch {
		case in(f[0], a) && in(f[1], b):
			v := out[[2]int{f[0], f[1]}]
			v[0] += n
			out[[2]int{f[0], f[1]}] = v
		case in(f[0], b) && in(f[1], a):
			v := out[[2]int{f[1], f[0]}]
			v[1] += n
			out[[2]int{f[1], f[0]}] = v
		}
	}
	return out
}

// sipCapture records the SIP packets to and from some UDP ports on the
// loopback (tcpdump, pcap written packet by packet).
type sipCapture struct {
	file string
	proc *bgProc
}

func startSIPCapture(t *testing.T, ports ...int) *sipCapture {
	t.Helper()
	bin := requireTool(t, "tcpdump", "tcpdump")
	var f []string
	for _, p := range ports {
		f = append(f, fmt.Sprintf("port %d", p))
	}
	c := &sipCapture{file: filepath.Join(t.TempDir(), "sip.pcap")}
	// A 32 MiB buffer: on a loaded machine the kernel dropped packets of
	// a few hundred calls with the default 2 MiB.
	c.proc = startBG(t, bin, "-i", "lo", "-nn", "--immediate-mode", "-B", "32768", "-U", "-s", "0", "-w", c.file, "udp and ("+strings.Join(f, " or ")+")")
	waitCapturing(t, c.proc)
	return c
}

// captured is one SIP message of a capture, with its time.
type captured struct {
	at       time.Time
	src, dst int // UDP ports
	msg      sip.Message
}

// messages parses the pcap (Ethernet/IPv4/UDP on Linux loopback); a
// truncated last record is ignored.
func (c *sipCapture) messages(t *testing.T) []captured {
	t.Helper()
	data, err := os.ReadFile(c.file)
	if err != nil || len(data) < 24 {
		t.Fatalf("pcap %s: %v (%d bytes)", c.file, err, len(data))
	}
	le := byteorder.LittleEndian
	if le.Uint32(data) != 0xa1b2c3d4 || le.Uint32(data[20:]) != 1 {
		t.Fatalf("pcap %s: not a little-endian Ethernet capture", c.file)
	}
	var out []captured
	for off := 24; off+16 <= len(data); {
		sec, usec, n := le.Uint32(data[off:]), le.Uint32(data[off+4:]), int(le.Uint32(data[off+8:]))
		off += 16
		if off+n > len(data) {
			break
		}
		pkt := data[off : off+n]
		off += n
		if len(pkt) < 14+20 || byteorder.BigEndian.Uint16(pkt[12:]) != 0x0800 {
			continue
		}
		ip := pkt[14:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] != 17 || len(ip) < ihl+8 {
			continue
		}
		udp := ip[ihl:]
		msg, err := sip.ParseMessage(append([]byte(nil), udp[8:]...))
		if err != nil {
			continue
		}
		out = append(out, captured{at: time.Unix(int64(sec), int64(usec)*1000), msg: msg,
			src: int(byteorder.BigEndian.Uint16(udp)), dst: int(byteorder.BigEndian.Uint16(udp[2:]))})
	}
	return out
}

// openInvites counts the INVITE transactions to callees in msgs that have
// no final response yet.
func openInvites(msgs []captured) int {
	open := map[string]bool{}
	for _, m := range msgs {
		switch v := m.msg.(type) {
		case *sip.Request:
			if v.Method == sip.INVITE && len(v.Body()) == 0 && !v.To().Params.Has("tag") {
				key := v.CallID().Value() + " " + v.CSeq().Value()
				if _, seen := open[key]; !seen {
					open[key] = true
				}
			}
		case *sip.Response:
			if v.StatusCode >= 200 {
				key := v.CallID().Value() + " " + v.CSeq().Value()
				if _, seen := open[key]; seen {
					open[key] = false
				}
			}
		}
	}
	n := 0
	for _, o := range open {
		if o {
			n++
		}
	}
	return n
}

// checkNoOverlappingInvites: per request (X-Dialtone-Request-ID), the
// INVITE transactions to the callee (the INVITEs without a body and
// without a To tag) never overlap: each runs from its first INVITE to its
// final response.
//
// With allowOpen, a transaction with no final response (still ringing
// when the test ends) runs to the end of the capture; without, it is an
// error.
func checkNoOverlappingInvites(t *testing.T, msgs []captured, allowOpen bool) int {
	t.Helper()
	type span struct {
		rid        string
		start, end time.Time
	}
	txs := map[string]*span{} // by Call-ID and CSeq
	for _, m := range msgs {
		switch v := m.msg.(type) {
		case *sip.Request:
			if v.Method != sip.INVITE || len(v.Body()) > 0 || v.To().Params.Has("tag") {
				continue
			}
			key := v.CallID().Value() + " " + v.CSeq().Value()
			if txs[key] == nil {
				rid := ""
				if h := v.GetHeader("X-Dialtone-Request-ID"); h != nil {
					rid = h.Value()
				}
				txs[key] = &span{rid: rid, start: m.at}
			}
		case *sip.Response:
			key := v.CallID().Value() + " " + v.CSeq().Value()
			if s := txs[key]; s != nil && v.StatusCode >= 200 && s.end.IsZero() {
				s.end = m.at
			}
		}
	}
	byRID := map[string][]*span{}
	for _, s := range txs {
		if s.end.IsZero() && allowOpen {
			s.end = time.Unix(1<<40, 0)
		}
		if s.end.IsZero() {
			t.Errorf("request %s: an INVITE transaction from %s has no final response in the capture", s.rid, s.start.Format(time.StampMicro))
			continue
		}
		byRID[s.rid] = append(byRID[s.rid], s)
	}
	for rid, ss := range byRID {
		for i, a := range ss {
			for _, b := range ss[i+1:] {
				if a.start.Before(b.end) && b.start.Before(a.end) {
					t.Errorf("request %s: INVITE transactions overlap: %s..%s and %s..%s", rid,
						a.start.Format(time.StampMicro), a.end.Format(time.StampMicro), b.start.Format(time.StampMicro), b.end.Format(time.StampMicro))
				}
			}
		}
	}
	return len(txs)
}

// TestSIPRealPeers: a 3-node cluster connects each answered callee (a
// baresip behind a record-routing kamailio) to its IVR application (a
// second baresip) by third-party call control. Every call has RTP both
// ways between callee and IVR for its whole duration and is the only
// kind that ends SUCCESS; a callee rejected with 486 is busy; a callee
// that never answers behind a two-proxy chain whose first hop does not
// record-route is cancelled through that first hop within 1 s of the ring
// timeout; a media server that refuses costs the callee its call but no
// attempt.
func TestSIPRealPeers(t *testing.T) {
	requireSIPp(t) // the cluster helpers; also skips consistently with the SIPp tests
	const calls = 20
	const hold = 4 * time.Second
	callee := startBaresip(t, "4930100", true)
	ringer := startBaresip(t, "4930200", false)
	ivr := startBaresip(t, "ivr", true)
	rr := startKamailio(t, callee.addr, true, map[string]int{"4930486": 486, "refuse": 503})
	second := startKamailio(t, ringer.addr, true, nil)
	first := startKamailio(t, second.addr, false, nil)
	capture := startRTPCapture(t, [2]int{callee.rtpLo, callee.rtpHi}, [2]int{ivr.rtpLo, ivr.rtpHi})
	sipcap := startSIPCapture(t, portOf(t, rr.addr), portOf(t, first.addr))

	c := startSIPCluster(t, []sipTrunk{{tenant: "rp", addr: rr.addr, ports: 30}, {tenant: "chain", addr: first.addr, ports: 5}}, func(s *config.SIP) {
		s.RingTimeout = config.Duration{Duration: 20 * time.Second}
		s.MaxCallDuration = config.Duration{Duration: hold}
		s.MinConnected = config.Duration{Duration: time.Second}
		s.IVR = []config.SIPIVR{
			{Profile: "*", URI: "sip:ivr@{server}", Servers: []string{ivr.addr}, Ports: 30},
			{Profile: "Refuse", URI: "sip:refuse@{server}", Servers: []string{rr.addr}},
		}
	}, nil)
	notes := newNotifications(t)
	spec := func(telnum, profile string, attempts int, ttl time.Duration) *pb.RequestSpec {
		return &pb.RequestSpec{IvrProfile: profile, Telnum: telnum, Ani: "4930999", MaxAttempts: uint32(attempts), TimeToLive: ttl.String(),
			NotificationUrl: notes.srv.URL + "/r", Token: "T"}
	}
	var specs []*pb.RequestSpec
	for range calls {
		specs = append(specs, spec("4930100", "Sales", 1, 60*time.Second))
	}
	okIDs := submit(t, c.http["n1"], "rp", specs...)
	busyID := submit(t, c.http["n2"], "rp", spec("4930486", "Sales", 1, 60*time.Second))[0]
	refuseID := submit(t, c.http["n3"], "rp", spec("4930100", "Refuse", 2, 15*time.Second))[0]
	ringSpec := spec("4930200", "Sales", 1, 60*time.Second)
	ringSpec.Cpd = &pb.Cpd{RnaTimeout: "2s"}
	ringID := submit(t, c.http["n1"], "chain", ringSpec)[0]

	done := func(tenant, id string) *pb.Request {
		t.Helper()
		var r *pb.Request
		eventually(t, 90*time.Second, tenant+" "+id+" notified", func() error {
			if notes.of(id) == nil {
				return fmt.Errorf("not notified")
			}
			var err error
			r, err = getRequest(t, c.http["n2"], tenant, id)
			return err
		})
		return r
	}
	for _, id := range okIDs {
		r := done("rp", id)
		if r.Result != "SUCCESS" || len(r.Attempts) != 1 || r.Attempts[0].Reason != "TreatmentApplied (SIP 200)" {
			t.Errorf("call %s: %s %q %+v, want SUCCESS after one TreatmentApplied attempt", id, r.Result, r.ResultReason, r.Attempts)
		}
	}
	// What a person on the line would notice: the tone both ways, for the
	// whole call (the dialer hangs up after max_call_duration).
	pairs := capture.calls([2]int{callee.rtpLo, callee.rtpHi}, [2]int{ivr.rtpLo, ivr.rtpHi})
	full := 0
	minPkts := int(hold/(20*time.Millisecond)) * 3 / 4 // 20 ms packets, allowing for start-up
	for p, n := range pairs {
		if p[0]%2 == 1 {
			continue // RTCP
		}
		t.Logf("RTP callee:%d <-> ivr:%d: %d packets callee→IVR, %d IVR→callee", p[0], p[1], n[0], n[1])
		if n[0] >= minPkts && n[1] >= minPkts {
			full++
		}
	}
	if full != calls {
		t.Errorf("%d calls had RTP both ways for their duration (≥ %d packets each way), want %d", full, minPkts, calls)
	}

	if r := done("rp", busyID); r.Result != "FAILURE" || len(r.Attempts) != 1 || r.Attempts[0].Outcome != "BUSY" || r.Attempts[0].Reason != "DestinationBusy (SIP 486)" {
		t.Errorf("busy: %s %q %+v", r.Result, r.ResultReason, r.Attempts)
	}
	r := done("chain", ringID)
	if len(r.Attempts) != 1 || r.Attempts[0].Reason != "RingNoAnswer (SIP 487)" {
		t.Fatalf("ring: %s %q %+v", r.Result, r.ResultReason, r.Attempts)
	}
	if d := sub(r.Attempts[0].Ended, r.Attempts[0].Started); d > 3*time.Second {
		t.Errorf("ring: the attempt took %s: the CANCEL was not answered within 1 s of the 2 s ring timeout", d)
	}
	r = done("rp", refuseID)
	if r.Result != "FAILURE" || r.ResultReason != "TTL Expired" || r.AttemptsMade != 0 || len(r.Attempts) == 0 {
		t.Errorf("refusing media server: %s %q attempts made %d, want TTL Expired with no attempt counted", r.Result, r.ResultReason, r.AttemptsMade)
	}
	for _, a := range r.Attempts {
		if a.Outcome != "INTERNAL" || a.Reason != "IVRFailed (SIP 503)" {
			t.Errorf("refusing media server: attempt %s %q, want INTERNAL IVRFailed (SIP 503)", a.Outcome, a.Reason)
		}
	}
	n := checkNoOverlappingInvites(t, sipcap.messages(t), false)
	t.Logf("%d INVITE transactions to callees in the capture, none of one request overlapping", n)
	if n < calls+3 {
		t.Errorf("the capture holds %d INVITE transactions to callees, want at least %d", n, calls+3)
	}
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}
