package simcall

import (
	"encoding/binary"
	"net"
	"sync"
)

// The call stream's messages leave through gRPC's transport goroutine,
// which writes whatever is queued when it runs: on a loaded machine it
// ran tens of milliseconds late and wrote calls the gate had released
// 200 µs apart in one packet (a loopback capture at 5,000 CAPS showed up
// to 768 calls in 100 ms against a window of 501, ceil(X/10) + 1 at the
// time; 626 since). So the stream has a connection of its own, wrapped in
// a wireConn that follows the client's HTTP/2 frames as they are written
// and counts the gRPC messages whose last byte a write carried: the calls
// waiting in writtenQueue are then reported written
// (telephony.Call.Written), and the dialer's windows hold each send until
// it has really left (see SendQueue).

// clientPreface opens every HTTP/2 connection from the client.
const clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// frameCounter follows a client's HTTP/2 byte stream and counts the
// complete gRPC messages in its DATA frames. It assumes one stream
// carries DATA at a time (the call stream has its connection to
// itself); anything it does not expect (no preface, a padded DATA frame)
// stops it for good.
type frameCounter struct {
	preface int // bytes of the preface matched
	hdr     [9]byte
	hdrN    int
	left    int  // bytes of the current frame's payload still to come
	data    bool // the current frame is DATA
	msgHdr  [5]byte
	msgHdrN int
	msgLeft int // bytes of the current message's payload still to come
	failed  bool
}

// frame types and flags used here (RFC 9113).
const (
	frameData  = 0x0
	flagPadded = 0x8
)

// feed consumes b and returns the number of gRPC messages it completed;
// ok is false once the stream is not what the counter understands.
func (f *frameCounter) feed(b []byte) (msgs int, ok bool) {
	for len(b) > 0 && !f.failed {
		switch {
		case f.preface < len(clientPreface):
			n := min(len(b), len(clientPreface)-f.preface)
			if string(b[:n]) != clientPreface[f.preface:f.preface+n] {
				f.failed = true
				break
			}
			f.preface += n
			b = b[n:]
		case f.left == 0 && f.hdrN < len(f.hdr):
			n := copy(f.hdr[f.hdrN:], b)
			f.hdrN += n
			b = b[n:]
			if f.hdrN < len(f.hdr) {
				break
			}
			f.left = int(f.hdr[0])<<16 | int(f.hdr[1])<<8 | int(f.hdr[2])
			f.data = f.hdr[3] == frameData
			if f.data && f.hdr[4]&flagPadded != 0 {
				f.failed = true
				break
			}
			if f.left == 0 {
				f.hdrN = 0
			}
		default:
			n := min(len(b), f.left)
			if f.data {
				msgs += f.message(b[:n])
			}
			f.left -= n
			b = b[n:]
			if f.left == 0 {
				f.hdrN = 0
			}
		}
	}
	return msgs, !f.failed
}

// message consumes DATA payload bytes: gRPC's 5-byte prefix (flag,
// length) and the message, and returns the messages completed.
func (f *frameCounter) message(b []byte) (msgs int) {
	for len(b) > 0 {
		if f.msgHdrN < len(f.msgHdr) {
			n := copy(f.msgHdr[f.msgHdrN:], b)
			f.msgHdrN += n
			b = b[n:]
			if f.msgHdrN < len(f.msgHdr) {
				return msgs
			}
			f.msgLeft = int(binary.BigEndian.Uint32(f.msgHdr[1:]))
		} else {
			n := min(len(b), f.msgLeft)
			f.msgLeft -= n
			b = b[n:]
		}
		if f.msgLeft == 0 {
			msgs++
			f.msgHdrN = 0
		}
	}
	return msgs
}

// wireConn is the call stream's connection: after each write it reports
// the messages the write completed.
type wireConn struct {
	net.Conn
	q *writtenQueue

	mu sync.Mutex // gRPC writes from one goroutine; this keeps it safe regardless
	f  frameCounter
}

func (w *wireConn) Write(b []byte) (int, error) {
	n, err := w.Conn.Write(b)
	w.mu.Lock()
	msgs, ok := w.f.feed(b[:n])
	w.mu.Unlock()
	if !ok {
		w.q.stop()
		return n, err
	}
	w.q.written(msgs)
	return n, err
}

// writtenQueue holds, in stream order, what to call when each queued
// message of the call stream has been written (nil for a message nobody
// waits for, a hang-up).
type writtenQueue struct {
	mu      sync.Mutex
	exact   bool // a wireConn follows the connection: entries are reported
	pending []func()
}

// started says a connection is followed from its start.
func (q *writtenQueue) started() {
	q.mu.Lock()
	q.exact = true
	q.mu.Unlock()
}

// push queues done for the next message, and reports whether it will be
// called when the message is written; if not, the caller reports the
// write itself. Called in stream order, with the send lock held.
func (q *writtenQueue) push(done func()) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.exact {
		return false
	}
	q.pending = append(q.pending, done)
	return true
}

// unpush takes back the last entry: its message was not queued. Called
// with the send lock held, so it is the entry push added.
func (q *writtenQueue) unpush() {
	q.mu.Lock()
	if n := len(q.pending); n > 0 {
		q.pending = q.pending[:n-1]
	}
	q.mu.Unlock()
}

// written calls the first n entries.
func (q *writtenQueue) written(n int) {
	if n == 0 {
		return
	}
	q.mu.Lock()
	n = min(n, len(q.pending))
	done := make([]func(), n)
	copy(done, q.pending)
	q.pending = append(q.pending[:0], q.pending[n:]...)
	q.mu.Unlock()
	for _, d := range done {
		if d != nil {
			d()
		}
	}
}

// flush calls every entry: the stream broke, so its queued messages will
// not be written (or were, unseen).
func (q *writtenQueue) flush() {
	q.mu.Lock()
	n := len(q.pending)
	q.mu.Unlock()
	q.written(n)
}

// stop gives up following (the connection is not one the counter
// understands, TLS say): every entry is called, and callers report their
// writes themselves from now on.
func (q *writtenQueue) stop() {
	q.mu.Lock()
	q.exact = false
	q.mu.Unlock()
	q.flush()
}
