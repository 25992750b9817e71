package sipcall

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// sdpBody is a message's SDP body, or nil when it carries none.
// message is what requests and responses share here.
type message interface {
	Body() []byte
	SetBody([]byte)
	GetHeader(string) sip.Header
	RemoveHeader(string) bool
	AppendHeader(sip.Header)
}

func sdpBody(m message) []byte {
	b := m.Body()
	if len(b) == 0 {
		return nil
	}
	ct := m.GetHeader("Content-Type")
	if ct == nil {
		return nil
	}
	mt, _, _ := strings.Cut(ct.Value(), ";")
	if !strings.EqualFold(strings.TrimSpace(mt), "application/sdp") {
		return nil
	}
	return b
}

// setSDP sets an SDP body, or an empty one (Content-Length: 0).
func setSDP(m message, body []byte) {
	m.RemoveHeader("Content-Type")
	if body != nil {
		m.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	m.SetBody(body)
}

// errBadOffer: an SDP offer that cannot be answered.
var errBadOffer = errors.New("SDP offer")

// inactiveAnswer is a valid RFC 3264 answer to offer for a party that
// sends and receives no media (direct mode: Dialtone is the answerer but
// carries no RTP): one m-line per offered one, in order; a stream the
// offer rejected (port 0) stays rejected, every other one is accepted
// with its first offered format (and that format's rtpmap/fmtp), a
// non-zero port (9, discard) and a=inactive. Declining the only stream
// with port 0 would end the call at strict peers (Asterisk hangs up).
func inactiveAnswer(offer []byte, host string) ([]byte, error) {
	type media struct {
		kind, proto, fmt string
		port             string
		attrs            []string
	}
	var ms []*media
	var cur *media
	sawV := false
	for _, line := range strings.Split(strings.ReplaceAll(string(offer), "\r\n", "\n"), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		if len(line) < 2 || line[1] != '=' {
			return nil, fmt.Errorf("%w: malformed line %q", errBadOffer, truncate(line))
		}
		switch line[0] {
		case 'v':
			sawV = true
		case 'm':
			f := strings.Fields(line[2:])
			if len(f) < 4 {
				return nil, fmt.Errorf("%w: m-line %q needs media, port, proto and a format", errBadOffer, truncate(line))
			}
			port, _, _ := strings.Cut(f[1], "/")
			if _, err := strconv.ParseUint(port, 10, 16); err != nil {
				return nil, fmt.Errorf("%w: m-line %q: bad port", errBadOffer, truncate(line))
			}
			cur = &media{kind: f[0], port: port, proto: f[2], fmt: f[3]}
			ms = append(ms, cur)
		case 'a':
			if cur == nil {
				continue
			}
			name, val, _ := strings.Cut(line[2:], ":")
			if name == "rtpmap" || name == "fmtp" {
				if pt, _, _ := strings.Cut(val, " "); pt == cur.fmt {
					cur.attrs = append(cur.attrs, line)
				}
			}
		}
	}
	if !sawV || len(ms) == 0 {
		return nil, fmt.Errorf("%w: no v= line or no m-line", errBadOffer)
	}
	ipv := "IP4"
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		ipv = "IP6"
	}
	id := strconv.FormatInt(time.Now().UnixNano()/1000, 10)
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=dialtone %s %s IN %s %s\r\ns=-\r\nc=IN %s %s\r\nt=0 0\r\n", id, id, ipv, host, ipv, host)
	for _, m := range ms {
		if m.port == "0" {
			fmt.Fprintf(&b, "m=%s 0 %s %s\r\n", m.kind, m.proto, m.fmt)
			continue
		}
		fmt.Fprintf(&b, "m=%s 9 %s %s\r\n", m.kind, m.proto, m.fmt)
		for _, a := range m.attrs {
			b.WriteString(a + "\r\n")
		}
		b.WriteString("a=inactive\r\n")
	}
	return []byte(b.String()), nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
