package wire

import (
	"encoding/binary"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/telephony/simcall/simpb"
)

// The client's connection preface (RFC 9113 §3.4).
const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

const (
	frameData         = 0x0
	frameHeaders      = 0x1
	frameRSTStream    = 0x3
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20
)

const (
	// maxHeaderBlock bounds one header block (HEADERS + CONTINUATION).
	maxHeaderBlock = 1 << 20
	// maxMessage is gRPC's default limit on a received message.
	maxMessage = 4 << 20
)

// h2conn decodes the client's half of one HTTP/2 connection as its bytes
// come, so that a message's time is that of the packet with its last byte.
type h2conn struct {
	d    *decoder
	name string
	dead bool // a problem was reported: the rest cannot be trusted

	pre int // preface bytes matched

	// The frame being read: its header (nh bytes of it so far), its
	// payload bytes read (pos) and, for a padded DATA frame, its padding
	// (-1 until its first payload byte is read).
	hdr         [9]byte
	nh          int
	length, pos int
	typ, flags  byte
	sid         uint32
	pad         int
	buf         []byte // a HEADERS or CONTINUATION payload
	block       []byte // the header block being assembled
	blockSID    uint32
	blockEnd    bool // the HEADERS frame that began it ended its stream
	inBlock     bool // CONTINUATION frames are due
	hp          *hpack.Decoder
	calls       map[uint32]*grpcStream // the PlaceCalls streams
	msg         simpb.PlaceCallsRequest
}

func newH2conn(d *decoder, name string) *h2conn {
	c := &h2conn{d: d, name: name, calls: map[uint32]*grpcStream{}}
	// The table size is the server's SETTINGS_HEADER_TABLE_SIZE (4,096 by
	// default), which the client's encoder may move up to by an update:
	// allow one larger than any server here advertises.
	c.hp = hpack.NewDecoder(4096, nil)
	c.hp.SetAllowedMaxDynamicTableSize(1 << 20)
	c.hp.SetMaxStringLength(maxHeaderBlock)
	return c
}

func (c *h2conn) fail(at int64, format string, a ...any) {
	c.d.problem(at, "%s: "+format+"; the rest of the connection is not decoded", append([]any{c.name}, a...)...)
	c.dead = true
}

// feed takes the next bytes of the stream, all carried by a packet
// captured at at.
func (c *h2conn) feed(p []byte, at int64) {
	for len(p) > 0 && !c.dead {
		if c.pre < len(preface) {
			n := min(len(preface)-c.pre, len(p))
			if string(p[:n]) != preface[c.pre:c.pre+n] {
				c.fail(at, "no HTTP/2 client preface")
				return
			}
			c.pre, p = c.pre+n, p[n:]
			continue
		}
		if c.nh < len(c.hdr) {
			n := copy(c.hdr[c.nh:], p)
			c.nh, p = c.nh+n, p[n:]
			if c.nh == len(c.hdr) {
				c.beginFrame(at)
			}
			continue
		}
		n := min(c.length-c.pos, len(p))
		chunk := p[:n]
		p = p[n:]
		switch c.typ {
		case frameData:
			c.data(chunk, at)
		case frameHeaders, frameContinuation:
			c.buf = append(c.buf, chunk...)
		}
		c.pos += n
		if c.pos == c.length && !c.dead {
			c.endFrame(at)
		}
	}
}

func (c *h2conn) beginFrame(at int64) {
	c.length = int(c.hdr[0])<<16 | int(c.hdr[1])<<8 | int(c.hdr[2])
	c.typ, c.flags = c.hdr[3], c.hdr[4]
	c.sid = binary.BigEndian.Uint32(c.hdr[5:]) & 0x7fffffff
	c.pos, c.pad, c.buf = 0, 0, c.buf[:0]
	switch {
	case c.inBlock && (c.typ != frameContinuation || c.sid != c.blockSID):
		c.fail(at, "frame type %d inside the header block of stream %d", c.typ, c.blockSID)
		return
	case (c.typ == frameHeaders || c.typ == frameContinuation) && len(c.block)+c.length > maxHeaderBlock:
		c.fail(at, "a header block over %d bytes", maxHeaderBlock)
		return
	case c.typ == frameData && c.flags&flagPadded != 0:
		c.pad = -1
	}
	if c.length == 0 {
		c.endFrame(at)
	}
}

// data passes the data bytes of a DATA frame's payload chunk (its padding
// left out) to the frame's stream if it is a PlaceCalls stream.
func (c *h2conn) data(chunk []byte, at int64) {
	start := c.pos // chunk's offset in the payload
	if c.pad < 0 { // the pad length is the payload's first byte
		c.pad, chunk, start = int(chunk[0]), chunk[1:], 1
		if c.pad >= c.length {
			c.fail(at, "DATA frame on stream %d with padding longer than itself", c.sid)
			return
		}
	}
	end := c.length - c.pad
	if start >= end {
		return
	}
	chunk = chunk[:min(len(chunk), end-start)]
	if s := c.calls[c.sid]; s != nil {
		c.grpc(s, chunk, at)
	}
}

func (c *h2conn) endFrame(at int64) {
	c.nh = 0
	switch c.typ {
	case frameData:
		if c.pad < 0 {
			c.fail(at, "padded DATA frame on stream %d without its pad length", c.sid)
			return
		}
		if c.flags&flagEndStream != 0 {
			c.endStream(at, c.sid)
		}
	case frameHeaders:
		frag := c.buf
		if c.flags&flagPadded != 0 {
			if len(frag) < 1 || int(frag[0]) > len(frag)-1 {
				c.fail(at, "HEADERS frame on stream %d with bad padding", c.sid)
				return
			}
			frag = frag[1 : len(frag)-int(frag[0])]
		}
		if c.flags&flagPriority != 0 {
			if len(frag) < 5 {
				c.fail(at, "HEADERS frame on stream %d too short for its priority", c.sid)
				return
			}
			frag = frag[5:]
		}
		c.block = append(c.block[:0], frag...)
		c.blockSID, c.blockEnd, c.inBlock = c.sid, c.flags&flagEndStream != 0, true
		if c.flags&flagEndHeaders != 0 {
			c.headers(at)
		}
	case frameContinuation:
		if !c.inBlock {
			c.fail(at, "CONTINUATION frame on stream %d without HEADERS", c.sid)
			return
		}
		c.block = append(c.block, c.buf...)
		if c.flags&flagEndHeaders != 0 {
			c.headers(at)
		}
	case frameRSTStream:
		delete(c.calls, c.sid) // the client cancelled the stream
	}
}

// headers decodes a whole header block: every block, since HPACK's dynamic
// table is the connection's state. A request for the PlaceCalls method
// makes its stream one whose messages count.
func (c *h2conn) headers(at int64) {
	c.inBlock = false
	fields, err := c.hp.DecodeFull(c.block)
	if err != nil {
		c.fail(at, "HPACK: %v", err)
		return
	}
	for _, f := range fields {
		if f.Name == ":path" && f.Value == Method && c.calls[c.blockSID] == nil {
			c.calls[c.blockSID] = &grpcStream{}
			c.d.res.Streams++
		}
	}
	if c.blockEnd {
		c.endStream(at, c.blockSID)
	}
}

func (c *h2conn) endStream(at int64, sid uint32) {
	if s := c.calls[sid]; s != nil && (s.nh > 0 || len(s.msg) > 0) {
		c.d.problem(at, "%s: stream %d ended inside a gRPC message", c.name, sid)
	}
	delete(c.calls, sid)
}

// grpcStream reads gRPC's length-prefixed messages from a stream's data.
type grpcStream struct {
	hdr  [5]byte // compressed flag, length
	nh   int
	need int // the message's length
	msg  []byte
}

func (c *h2conn) grpc(s *grpcStream, p []byte, at int64) {
	for len(p) > 0 {
		if s.nh < len(s.hdr) {
			n := copy(s.hdr[s.nh:], p)
			s.nh, p = s.nh+n, p[n:]
			if s.nh < len(s.hdr) {
				return
			}
			size := binary.BigEndian.Uint32(s.hdr[1:])
			switch {
			case s.hdr[0] != 0:
				c.streamFailed(at, "a compressed gRPC message")
				return
			case size > maxMessage:
				c.streamFailed(at, "a gRPC message of %d bytes", size)
				return
			}
			s.need, s.msg = int(size), s.msg[:0]
			if s.need == 0 {
				c.message(s, at)
			}
			continue
		}
		n := min(s.need-len(s.msg), len(p))
		s.msg, p = append(s.msg, p[:n]...), p[n:]
		if len(s.msg) == s.need {
			c.message(s, at)
		}
	}
}

// streamFailed reports a message that cannot be read and drops the stream.
func (c *h2conn) streamFailed(at int64, format string, a ...any) {
	c.d.problem(at, "%s: stream %d: "+format+"; the rest of the stream is not decoded", append([]any{c.name, c.sid}, a...)...)
	delete(c.calls, c.sid)
}

// message decodes a whole PlaceCallsRequest that ended in a packet
// captured at at.
func (c *h2conn) message(s *grpcStream, at int64) {
	s.nh = 0
	m := &c.msg
	if err := proto.Unmarshal(s.msg, m); err != nil {
		c.d.problem(at, "%s: stream %d: a PlaceCallsRequest that does not decode: %v", c.name, c.sid, err)
		s.msg = s.msg[:0]
		return
	}
	s.msg = s.msg[:0]
	switch {
	case m.GetPlace() != nil:
		c.d.attempt(at, m.GetPlace().GetTenant())
	case m.GetHangup() != 0:
		c.d.res.Hangups++
	}
}
