package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/telephony/simcall/simpb"
)

// capFormat is how a synthetic capture is written.
type capFormat struct {
	name  string
	link  uint32
	order binary.ByteOrder
	nano  bool
	v6    bool
}

var ethernetLE = capFormat{name: "lo (Ethernet, IPv4, µs)", link: linkEthernet, order: binary.LittleEndian}

// capBuilder writes a pcap file in memory.
type capBuilder struct {
	f   capFormat
	buf bytes.Buffer
}

func newCapture(f capFormat) *capBuilder {
	c := &capBuilder{f: f}
	magic := uint32(0xa1b2c3d4)
	if f.nano {
		magic = 0xa1b23c4d
	}
	h := make([]byte, 24)
	f.order.PutUint32(h[0:], magic)
	f.order.PutUint16(h[4:], 2)
	f.order.PutUint16(h[6:], 4)
	f.order.PutUint32(h[16:], 262144)
	f.order.PutUint32(h[20:], f.link)
	c.buf.Write(h)
	return c
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpACK = 0x10
	tcpPSH = 0x08
)

// packet appends a TCP packet captured at at (Unix ns, a whole number of
// µs unless the format is nano).
func (c *capBuilder) packet(at int64, src, dst netip.AddrPort, seq uint32, flags byte, payload []byte) {
	tcp := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12] = 5 << 4
	tcp[13] = flags
	tcp = append(tcp, payload...)
	var ip []byte
	proto := uint16(0x0800)
	if c.f.v6 {
		proto = 0x86dd
		ip = make([]byte, 40)
		ip[0] = 6 << 4
		binary.BigEndian.PutUint16(ip[4:], uint16(len(tcp)))
		ip[6], ip[7] = 6, 64
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
	} else {
		ip = make([]byte, 20)
		ip[0] = 4<<4 | 5
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
		ip[6] = 0x40 // don't fragment
		ip[8], ip[9] = 64, 6
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
	}
	var link []byte
	switch c.f.link {
	case linkEthernet:
		link = make([]byte, 14)
		binary.BigEndian.PutUint16(link[12:], proto)
	case linkLinuxSLL2:
		link = make([]byte, 20)
		binary.BigEndian.PutUint16(link[0:], proto)
	case linkNull:
		link = make([]byte, 4)
		fam := uint32(2)
		if c.f.v6 {
			fam = 10
		}
		binary.LittleEndian.PutUint32(link, fam)
	}
	frame := append(append(link, ip...), tcp...)
	r := make([]byte, 16)
	frac := (at % 1e9) / 1e3
	if c.f.nano {
		frac = at % 1e9
	}
	c.f.order.PutUint32(r[0:], uint32(at/1e9))
	c.f.order.PutUint32(r[4:], uint32(frac))
	c.f.order.PutUint32(r[8:], uint32(len(frame)))
	c.f.order.PutUint32(r[12:], uint32(len(frame)))
	c.buf.Write(r)
	c.buf.Write(frame)
}

// conn is a client's TCP connection in a synthetic capture.
type conn struct {
	c        *capBuilder
	src, dst netip.AddrPort
	seq      uint32 // the next sequence number
	enc      *hpack.Encoder
	block    bytes.Buffer
}

func (c *capBuilder) dial(at int64, src, dst string, isn uint32) *conn {
	k := &conn{c: c, src: netip.MustParseAddrPort(src), dst: netip.MustParseAddrPort(dst), seq: isn + 1}
	k.enc = hpack.NewEncoder(&k.block)
	c.packet(at, k.src, k.dst, isn, tcpSYN, nil)
	return k
}

// send sends b as one segment and returns its sequence number.
func (k *conn) send(at int64, b []byte) uint32 {
	seq := k.seq
	k.c.packet(at, k.src, k.dst, seq, tcpACK|tcpPSH, b)
	k.seq += uint32(len(b))
	return seq
}

// resend sends b again at seq (a retransmission, or a segment sent out of
// order) without moving the next sequence number.
func (k *conn) resend(at int64, seq uint32, b []byte) {
	k.c.packet(at, k.src, k.dst, seq, tcpACK|tcpPSH, b)
}

// headers is a gRPC request's header block for path, HPACK-encoded with
// the connection's dynamic table.
func (k *conn) headers(path string) []byte {
	k.block.Reset()
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":path", Value: path},
		{Name: ":authority", Value: "127.0.0.1:9000"}, {Name: "content-type", Value: "application/grpc"},
		{Name: "user-agent", Value: "grpc-go/1.85.0"}, {Name: "te", Value: "trailers"},
		{Name: "dialtone-caller", Value: "n1"},
	} {
		if err := k.enc.WriteField(f); err != nil {
			panic(err)
		}
	}
	return bytes.Clone(k.block.Bytes())
}

func frame(typ, flags byte, sid uint32, payload []byte) []byte {
	h := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), typ, flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[5:], sid)
	return append(h, payload...)
}

func grpcMsg(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(b))), b...)
}

func place(id uint64, tenant string) []byte {
	return grpcMsg(&simpb.PlaceCallsRequest{Id: id, Place: &simpb.PlaceCallRequest{
		RequestId: fmt.Sprintf("req-%d", id), CallUuid: fmt.Sprintf("00000000-0000-0000-0000-%012d", id),
		Tenant: tenant, IvrProfile: "Sales", Telnum: "4930123456", Attempt: 1}})
}

func hangup(id uint64) []byte { return grpcMsg(&simpb.PlaceCallsRequest{Id: 9000 + id, Hangup: id}) }

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// base is the first packet's time; ms(i) is i ms later plus 7 µs, so a
// time lost to rounding shows.
const base = int64(1_700_000_000_000_000_000)

func ms(i int) int64 { return base + int64(i)*1e6 + 7e3 }

const placeCalls = "/dialtone.mediasim.v1.MediaSim/PlaceCalls"

// want is an attempt expected from the synthetic capture.
type want struct {
	at     int64
	tenant string
}

// synthetic writes a capture of two connections to port 9000 with every
// case the decoder must handle, and returns the attempts it holds.
func synthetic(f capFormat) ([]byte, []want) {
	c := newCapture(f)
	server := "127.0.0.1:9000"
	client1, client2, client3 := "127.0.0.1:40001", "127.0.0.1:40002", "127.0.0.1:40003"
	if f.v6 {
		server, client1, client2, client3 = "[::1]:9000", "[::1]:40001", "[::1]:40002", "[::1]:40003"
	}
	var out []want
	a := c.dial(ms(0), client1, server, 0xffffff00) // sequence numbers wrap on this connection
	a.send(ms(1), cat([]byte(preface), frame(0x4, 0, 0, nil), frame(0x8, 0, 0, []byte{0, 0, 0x10, 0})))
	// Two requests in one segment: PlaceCalls on stream 1 and another
	// method on stream 3 (its block refers to the first's dynamic entries).
	a.send(ms(2), cat(frame(frameHeaders, flagEndHeaders, 1, a.headers(placeCalls)),
		frame(frameHeaders, flagEndHeaders, 3, a.headers("/dialtone.mediasim.v1.MediaSim/PlaceCall"))))

	// m1 whole and m2 split across two segments.
	m1, m2 := place(1, "t-a"), place(2, "t-a")
	d1 := frame(frameData, 0, 1, cat(m1, m2))
	cut := len(d1) - 10
	a.send(ms(3), d1[:cut])
	out = append(out, want{ms(3), "t-a"})
	// The rest of m2, a message on the other stream that looks like an
	// attempt (not counted), then a hangup and two attempts in one segment.
	seg := cat(d1[cut:], frame(frameData, 0, 3, place(99, "t-x")), frame(frameData, 0, 1, cat(hangup(1), place(4, "t-b"), place(5, "t-a"))))
	seq := a.send(ms(4), seg)
	out = append(out, want{ms(4), "t-a"}, want{ms(4), "t-b"}, want{ms(4), "t-a"})
	// The same segment retransmitted: nothing new.
	a.resend(ms(5), seq, seg)
	// A retransmission overlapping new bytes: only m6 is new.
	m6 := frame(frameData, 0, 1, place(6, "t-a"))
	a.resend(ms(6), seq+uint32(len(seg))-20, cat(seg[len(seg)-20:], m6))
	a.seq += uint32(len(m6))
	out = append(out, want{ms(6), "t-a"})
	// Out of order: the second segment first; both messages reach the
	// far end with the first.
	m7, m8 := frame(frameData, 0, 1, place(7, "t-a")), frame(frameData, 0, 1, place(8, "t-a"))
	a.resend(ms(7), a.seq+uint32(len(m7)), m8)
	a.send(ms(8), m7)
	a.seq += uint32(len(m8))
	out = append(out, want{ms(8), "t-a"}, want{ms(8), "t-a"})
	// A padded DATA frame; a frame header split across segments.
	m9 := place(9, "t-a")
	d9 := frame(frameData, flagPadded, 1, cat([]byte{4}, m9, make([]byte, 4)))
	a.send(ms(9), d9[:5])
	a.send(ms(10), d9[5:])
	out = append(out, want{ms(10), "t-a"})
	// One message over two DATA frames.
	m10 := place(10, "t-a")
	a.send(ms(11), frame(frameData, 0, 1, m10[:7]))
	a.send(ms(12), frame(frameData, 0, 1, m10[7:]))
	out = append(out, want{ms(12), "t-a"})
	// A new PlaceCalls stream whose header block spans a CONTINUATION
	// frame, after the first one ends.
	a.send(ms(13), frame(frameData, flagEndStream, 1, nil))
	h := a.headers(placeCalls)
	a.send(ms(14), cat(frame(frameHeaders, 0, 5, h[:3]), frame(frameContinuation, flagEndHeaders, 5, h[3:]),
		frame(frameData, 0, 5, place(11, "t-b"))))
	out = append(out, want{ms(14), "t-b"})
	// The server's side is not counted (another port).
	c.packet(ms(15), netip.MustParseAddrPort(server), netip.MustParseAddrPort(client1), 1, tcpACK, frame(frameData, 0, 1, place(98, "t-x")))
	// A second connection, with its own HPACK table.
	b := c.dial(ms(16), client2, server, 7)
	b.send(ms(17), cat([]byte(preface), frame(0x4, 0, 0, nil), frame(frameHeaders, flagEndHeaders, 1, b.headers(placeCalls)),
		frame(frameData, 0, 1, place(1, "t-c"))))
	out = append(out, want{ms(17), "t-c"})
	// Their ends, and a last attempt on the first connection.
	b.c.packet(ms(18), b.src, b.dst, b.seq, tcpFIN|tcpACK, nil)
	a.send(ms(19), frame(frameData, 0, 5, place(12, "t-a")))
	out = append(out, want{ms(19), "t-a"})
	// The same port pair reused by a new connection (a new SYN).
	r := c.dial(ms(20), client2, server, 1_000_000)
	r.send(ms(21), cat([]byte(preface), frame(frameHeaders, flagEndHeaders, 1, r.headers(placeCalls)), frame(frameData, 0, 1, place(2, "t-c"))))
	out = append(out, want{ms(21), "t-c"})
	// A connection that never asks for PlaceCalls.
	o := c.dial(ms(22), client3, server, 1)
	o.send(ms(23), cat([]byte(preface), frame(frameHeaders, flagEndHeaders, 1, o.headers("/dialtone.mediasim.v1.MediaSim/GetStats")),
		frame(frameData, 0, 1, place(3, "t-x"))))
	return c.buf.Bytes(), out
}

func decodeBytes(t *testing.T, b []byte) *Result {
	t.Helper()
	r, err := Decode(bytes.NewReader(b), 9000)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func got(r *Result) []want {
	var out []want
	for _, a := range r.Attempts {
		out = append(out, want{a.At, a.Tenant})
	}
	return out
}

func TestDecode(t *testing.T) {
	for _, f := range []capFormat{
		ethernetLE,
		{name: "Linux cooked v2, IPv6, ns, big-endian", link: linkLinuxSLL2, order: binary.BigEndian, nano: true, v6: true},
		{name: "BSD loopback, IPv4, µs, big-endian", link: linkNull, order: binary.BigEndian},
	} {
		t.Run(f.name, func(t *testing.T) {
			b, wantAttempts := synthetic(f)
			r := decodeBytes(t, b)
			if len(r.Problems) > 0 {
				t.Errorf("problems: %q", r.Problems)
			}
			if g := got(r); !slices.Equal(g, wantAttempts) {
				t.Errorf("attempts:\n got %v\nwant %v", g, wantAttempts)
			}
			if r.Hangups != 1 || r.Conns != 4 || r.Streams != 4 || r.Partial {
				t.Errorf("hangups %d (want 1), conns %d (want 4), streams %d (want 4), partial %v", r.Hangups, r.Conns, r.Streams, r.Partial)
			}
			if r.Resent == 0 {
				t.Error("no resent bytes counted")
			}
			if r.Last != ms(23) {
				t.Errorf("last %d, want %d", r.Last, ms(23))
			}
		})
	}
}

func TestDecodeExactResent(t *testing.T) {
	c := newCapture(ethernetLE)
	k := c.dial(ms(0), "127.0.0.1:40001", "127.0.0.1:9000", 1)
	seg := cat([]byte(preface), frame(frameHeaders, flagEndHeaders, 1, k.headers(placeCalls)), frame(frameData, 0, 1, place(1, "t")))
	seq := k.send(ms(1), seg)
	k.resend(ms(2), seq, seg)
	k.resend(ms(3), seq+10, seg[10:20])
	r := decodeBytes(t, c.buf.Bytes())
	if r.Resent != int64(len(seg)+10) || len(r.Attempts) != 1 || r.Attempts[0].At != ms(1) {
		t.Fatalf("resent %d (want %d), attempts %v", r.Resent, len(seg)+10, r.Attempts)
	}
}

// A file still being written ends inside a record: what came before
// counts.
func TestDecodePartialFile(t *testing.T) {
	b, wantAttempts := synthetic(ethernetLE)
	r := decodeBytes(t, b[:len(b)-3])
	if !r.Partial || len(r.Problems) > 0 || !slices.Equal(got(r), wantAttempts) {
		t.Fatalf("partial %v, problems %q, attempts %v", r.Partial, r.Problems, got(r))
	}
}

func TestDecodeProblems(t *testing.T) {
	// A connection already open when the capture began.
	c := newCapture(ethernetLE)
	src, dst := netip.MustParseAddrPort("127.0.0.1:40001"), netip.MustParseAddrPort("127.0.0.1:9000")
	c.packet(ms(1), src, dst, 5000, tcpACK, nil)
	c.packet(ms(2), src, dst, 5000, tcpACK|tcpPSH, frame(frameData, 0, 1, place(1, "t")))
	r := decodeBytes(t, c.buf.Bytes())
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "began before the capture") || len(r.Attempts) != 0 {
		t.Errorf("mid-connection: problems %q, attempts %v", r.Problems, r.Attempts)
	}

	// A segment the capture lost.
	c = newCapture(ethernetLE)
	k := c.dial(ms(0), "127.0.0.1:40001", "127.0.0.1:9000", 1)
	k.send(ms(1), cat([]byte(preface), frame(frameHeaders, flagEndHeaders, 1, k.headers(placeCalls)), frame(frameData, 0, 1, place(1, "t"))))
	k.seq += 100 // lost
	k.send(ms(2), frame(frameData, 0, 1, place(2, "t")))
	r = decodeBytes(t, c.buf.Bytes())
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "after a hole") || len(r.Attempts) != 1 {
		t.Errorf("hole: problems %q, attempts %v", r.Problems, r.Attempts)
	}

	// A compressed message and one that does not decode.
	c = newCapture(ethernetLE)
	k = c.dial(ms(0), "127.0.0.1:40001", "127.0.0.1:9000", 1)
	bad := place(2, "t")
	bad[0] = 1
	k.send(ms(1), cat([]byte(preface), frame(frameHeaders, flagEndHeaders, 1, k.headers(placeCalls)), frame(frameHeaders, flagEndHeaders, 3, k.headers(placeCalls)),
		frame(frameData, 0, 1, cat(place(1, "t"), []byte{0, 0, 0, 0, 2, 0xff, 0xff})), frame(frameData, 0, 3, bad)))
	r = decodeBytes(t, c.buf.Bytes())
	if len(r.Problems) != 2 || len(r.Attempts) != 1 {
		t.Errorf("bad messages: problems %q, attempts %v", r.Problems, r.Attempts)
	}

	// Not HTTP/2.
	c = newCapture(ethernetLE)
	k = c.dial(ms(0), "127.0.0.1:40001", "127.0.0.1:9000", 1)
	k.send(ms(1), []byte("GET / HTTP/1.1\r\n\r\n"))
	r = decodeBytes(t, c.buf.Bytes())
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "preface") {
		t.Errorf("HTTP/1: problems %q", r.Problems)
	}
}

func TestDecodeBadFile(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":   nil,
		"pcapng":  {0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"link 42": newCapture(capFormat{link: 42, order: binary.LittleEndian}).buf.Bytes(),
	} {
		if _, err := Decode(bytes.NewReader(b), 0); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// FuzzDecode: no input makes the decoder panic, as a whole file or as the
// bytes of one connection cut into segments.
func FuzzDecode(f *testing.F) {
	b, _ := synthetic(ethernetLE)
	f.Add(b, uint16(0))
	v6, _ := synthetic(capFormat{link: linkLinuxSLL2, order: binary.BigEndian, nano: true, v6: true})
	f.Add(v6, uint16(7))
	k := newCapture(ethernetLE).dial(0, "127.0.0.1:1", "127.0.0.1:9000", 1)
	f.Add(cat([]byte(preface), frame(frameHeaders, flagEndHeaders, 1, k.headers(placeCalls)), frame(frameData, flagPadded, 1, cat([]byte{2}, place(1, "t"), []byte{0, 0}))), uint16(30))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		_, _ = Decode(bytes.NewReader(data), 0)
		c := newCapture(ethernetLE)
		k := c.dial(ms(0), "127.0.0.1:40001", "127.0.0.1:9000", 1)
		n := int(cut)%(len(data)+1) + 1
		for i := 0; len(data) > 0; i++ {
			m := min(n, len(data))
			k.send(ms(i+1), data[:m])
			data = data[m:]
		}
		if _, err := Decode(bytes.NewReader(c.buf.Bytes()), 9000); err != nil {
			t.Fatal(err)
		}
	})
}
