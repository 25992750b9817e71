// Package wire measures call attempts where the far end sees them: a
// tcpdump capture of the packets to mediasim's gRPC port on the loopback
// interface (Start), decoded in Go (Decode: pcap, IPv4/IPv6, TCP
// reassembly, HTTP/2 frames with HPACK, gRPC messages) into the
// PlaceCallsRequest messages that place a call, each stamped with the
// capture time of the packet that carried its last byte.
//
// mediasim's own stamps are taken in its receive loop, in user space, and
// on a busy machine the process is descheduled for tens of milliseconds:
// calls sent evenly then look bunched. The kernel stamps a packet as it
// passes the loopback interface, i.e. as it reaches the far end's socket.
package wire

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/telephony/simcall/simpb"
)

// Method is the gRPC method whose messages are call attempts.
const Method = simpb.MediaSim_PlaceCalls_FullMethodName

// Attempt is one PlaceCallsRequest with place set: a call attempt.
type Attempt struct {
	// At is the capture time of the packet that carried the message's
	// last byte (Unix ns).
	At     int64
	Tenant string
}

// Result is what a capture held.
type Result struct {
	// Attempts in capture order.
	Attempts []Attempt
	// Hangups: PlaceCallsRequest messages with hangup set (not attempts).
	Hangups int
	// Packets read, TCP connections to the port opened during the
	// capture, PlaceCalls streams found on them.
	Packets, Conns, Streams int
	// Resent: payload bytes seen a second time (TCP retransmissions or
	// duplicates); the first copy counts.
	Resent int64
	// Last is the newest packet's capture time (Unix ns).
	Last int64
	// Partial: the file ends inside a record (tcpdump was still writing).
	Partial bool
	// Problems make Attempts incomplete: a connection that began before
	// the capture, bytes the capture lost (a hole in a TCP stream), a frame
	// or message that would not decode. Empty when every byte decoded.
	Problems []string
}

// maxProblems bounds Result.Problems (garbage would list every packet).
const maxProblems = 20

// Decode reads a pcap capture of the client→server packets of TCP
// connections to port (0: every connection in the file) and returns the
// call attempts sent on their PlaceCalls streams. A connection's bytes are
// taken in sequence order; bytes seen again are skipped. Only an unreadable
// file is an error; what cannot be decoded is listed in Result.Problems.
func Decode(r io.Reader, port uint16) (*Result, error) {
	p, err := newPcapReader(r)
	if err != nil {
		return nil, err
	}
	d := &decoder{res: &Result{}, port: port, flows: map[flowKey]*flow{}, tenants: map[string]string{}}
	for {
		at, b, cut, err := p.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, errPartial) {
			d.res.Partial = true
			break
		}
		if err != nil {
			return d.res, fmt.Errorf("packet %d: %w", d.res.Packets+1, err)
		}
		d.res.Packets++
		d.res.Last = max(d.res.Last, at)
		s, ok, err := parseSegment(p.link, b, cut)
		if err != nil {
			d.problem(at, "packet %d: %v", d.res.Packets, err)
			continue
		}
		if ok && (port == 0 || s.dst.Port() == port) {
			d.segment(s, at)
		}
	}
	for k, f := range d.flows {
		if f.held > 0 && f.h2 != nil && !f.h2.dead {
			d.problem(d.res.Last, "%s: %d bytes after a hole at sequence %d: the capture lost the bytes between", k, f.held, f.next)
		}
	}
	if d.dropped > 0 {
		d.res.Problems = append(d.res.Problems, fmt.Sprintf("... and %d more", d.dropped))
	}
	return d.res, nil
}

type decoder struct {
	res     *Result
	port    uint16
	flows   map[flowKey]*flow
	tenants map[string]string // interned tenant names
	dropped int               // problems not listed
}

func (d *decoder) problem(at int64, format string, a ...any) {
	if len(d.res.Problems) >= maxProblems {
		d.dropped++
		return
	}
	stamp := time.Unix(0, at).UTC().Format("15:04:05.000000")
	d.res.Problems = append(d.res.Problems, stamp+" "+fmt.Sprintf(format, a...))
}

func (d *decoder) attempt(at int64, tenant string) {
	t, ok := d.tenants[tenant]
	if !ok {
		d.tenants[tenant], t = tenant, tenant
	}
	d.res.Attempts = append(d.res.Attempts, Attempt{At: at, Tenant: t})
}

// flowKey is one direction of a TCP connection.
type flowKey struct{ src, dst netip.AddrPort }

func (k flowKey) String() string { return k.src.String() + "→" + k.dst.String() }

// flow reassembles one client→server byte stream for its HTTP/2 decoder.
type flow struct {
	next    uint32            // the next sequence number due
	pending map[uint32][]byte // segments beyond a hole, by sequence number
	held    int               // bytes in pending
	h2      *h2conn           // nil: the connection began before the capture
	// reported: its problem is listed (a connection from before the capture).
	reported bool
}

// maxHeld bounds the bytes held beyond a hole: past it the hole is a loss.
const maxHeld = 64 << 20

func (d *decoder) segment(s segment, at int64) {
	k := flowKey{s.src, s.dst}
	f := d.flows[k]
	if s.syn {
		// A new connection (a reused port pair replaces the old one).
		f = &flow{next: s.seq + 1, pending: map[uint32][]byte{}, h2: newH2conn(d, k.String())}
		d.flows[k] = f
		d.res.Conns++
		s.seq++ // data on a SYN (TCP Fast Open) follows it
	}
	if f == nil {
		f = &flow{}
		d.flows[k] = f
	}
	if f.h2 == nil {
		// Its SYN, preface and HPACK state were before the capture.
		if len(s.payload) > 0 && !f.reported {
			f.reported = true
			d.problem(at, "%s: a connection that began before the capture (its HTTP/2 state is unknown): not decoded", k)
		}
		return
	}
	if f.h2.dead || len(s.payload) == 0 {
		return
	}
	d.res.Resent += int64(f.add(s.seq, s.payload, at))
	if f.held > maxHeld {
		d.problem(at, "%s: %d bytes held after a hole at sequence %d: the capture lost the bytes between", k, f.held, f.next)
		f.h2.dead = true
	}
}

// add takes a segment's bytes: those due now go to the decoder, with the
// ones held beyond a hole that they fill; those beyond a hole are held; those
// seen before are skipped, and their count returned.
func (f *flow) add(seq uint32, b []byte, at int64) (resent int) {
	off := int32(seq - f.next)
	if off < 0 {
		if int64(-off) >= int64(len(b)) {
			return len(b)
		}
		resent, b, off = int(-off), b[-off:], 0
	}
	if off > 0 {
		if old, ok := f.pending[seq]; !ok || len(old) < len(b) {
			f.held += len(b) - len(old)
			f.pending[seq] = append([]byte(nil), b...)
		}
		return resent
	}
	f.deliver(b, at)
	// The held segments now due reach the far end with this packet.
	for progressed := true; progressed && len(f.pending) > 0; {
		progressed = false
		for s, p := range f.pending {
			off := int32(s - f.next)
			if off > 0 {
				continue
			}
			delete(f.pending, s)
			f.held -= len(p)
			if int64(-off) < int64(len(p)) {
				f.deliver(p[-off:], at)
			}
			progressed = true
		}
	}
	return resent
}

func (f *flow) deliver(b []byte, at int64) {
	f.next += uint32(len(b))
	f.h2.feed(b, at)
}
