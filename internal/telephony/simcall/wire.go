package simcall

import (
	"encoding/binary"
	"net"
	"sync"
	"time"
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
//
// A write's return is not yet the wire: the kernel may keep the bytes in
// the socket's send queue (TCP waits for the peer's window or for ACKs of
// what is in flight). On the same machine at 5,000 CAPS, calls reported
// written over 6 ms left in one packet 6 ms after the first was reported,
// which put 5,010–5,092 calls into a second on the wire against the
// windows' 5,001 (BENCHMARKS.md, issue 18 session 6). So, where the kernel
// says how much of the send queue it has not sent (Linux: SIOCOUTQNSD), a
// message counts as written only once its last byte is no longer unsent;
// what is still unsent after a write is checked again every holdPoll until
// it has left.

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
	// ends are the offsets in feed's b just past the last byte of each
	// message feed completed (reset by each feed).
	ends []int
}

// frame types and flags used here (RFC 9113).
const (
	frameData  = 0x0
	flagPadded = 0x8
)

// feed consumes b and returns the number of gRPC messages it completed
// (their ends are in f.ends); ok is false once the stream is not what the
// counter understands.
func (f *frameCounter) feed(b []byte) (msgs int, ok bool) {
	f.ends = f.ends[:0]
	size := len(b)
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
				f.message(b[:n], size-len(b))
			}
			f.left -= n
			b = b[n:]
			if f.left == 0 {
				f.hdrN = 0
			}
		}
	}
	return len(f.ends), !f.failed
}

// message consumes DATA payload bytes, b at offset at of feed's input:
// gRPC's 5-byte prefix (flag, length) and the message, and appends the
// ends of the messages completed.
func (f *frameCounter) message(b []byte, at int) {
	size := len(b)
	for len(b) > 0 {
		if f.msgHdrN < len(f.msgHdr) {
			n := copy(f.msgHdr[f.msgHdrN:], b)
			f.msgHdrN += n
			b = b[n:]
			if f.msgHdrN < len(f.msgHdr) {
				return
			}
			f.msgLeft = int(binary.BigEndian.Uint32(f.msgHdr[1:]))
		} else {
			n := min(len(b), f.msgLeft)
			f.msgLeft -= n
			b = b[n:]
		}
		if f.msgLeft == 0 {
			f.ends = append(f.ends, at+size-len(b))
			f.msgHdrN = 0
		}
	}
}

// holdPoll is how often a wireConn checks whether bytes the kernel still
// held after a write have left.
const holdPoll = 200 * time.Microsecond

// wireConn is the call stream's connection: it reports the messages its
// writes completed once the kernel has sent their last byte.
type wireConn struct {
	net.Conn
	q *writtenQueue
	// unsent is how many bytes written to the socket the kernel has not
	// sent yet; nil where that is not known (then a write's return counts).
	unsent func() (int, error)

	mu     sync.Mutex // gRPC writes from one goroutine; the poller shares the state
	f      frameCounter
	total  int64   // bytes written to the socket
	held   []int64 // ends (in total's terms) of completed messages not yet sent
	poll   bool    // the poller runs
	closed bool
	stop   chan struct{} // closed by Close: the poller ends
	wg     sync.WaitGroup
}

func newWireConn(conn net.Conn, q *writtenQueue, unsent func() (int, error)) *wireConn {
	return &wireConn{Conn: conn, q: q, unsent: unsent, stop: make(chan struct{})}
}

func (w *wireConn) Write(b []byte) (int, error) {
	n, err := w.Conn.Write(b)
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.f.feed(b[:n]); !ok {
		w.held = w.held[:0]
		w.q.stop()
		return n, err
	}
	for _, e := range w.f.ends {
		w.held = append(w.held, w.total+int64(e))
	}
	w.total += int64(n)
	w.releaseLocked()
	if len(w.held) > 0 && !w.poll && !w.closed {
		w.poll = true
		w.wg.Add(1)
		go w.poller()
	}
	return n, err
}

// releaseLocked reports the held messages the kernel has sent. Called with
// w.mu held, so reports keep the stream's order.
func (w *wireConn) releaseLocked() {
	if len(w.held) == 0 {
		return
	}
	sent := w.total
	if w.unsent != nil {
		if u, err := w.unsent(); err == nil {
			sent -= int64(u)
		}
		// An error (a closed socket) reports everything: nothing more
		// will leave, and the stream's break flushes the rest anyway.
	}
	k := 0
	for k < len(w.held) && w.held[k] <= sent {
		k++
	}
	if k == 0 {
		return
	}
	w.held = append(w.held[:0], w.held[k:]...)
	w.q.written(k)
}

// poller checks every holdPoll whether held messages have left, until
// none is held or the connection is closed.
func (w *wireConn) poller() {
	defer w.wg.Done()
	t := time.NewTicker(holdPoll)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		w.mu.Lock()
		w.releaseLocked()
		if len(w.held) == 0 || w.closed {
			w.poll = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
	}
}

// Close closes the connection and waits for the poller. Messages still
// held are left to the stream's break (writtenQueue.flush).
func (w *wireConn) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.stop)
	}
	w.mu.Unlock()
	err := w.Conn.Close()
	w.wg.Wait()
	return err
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
