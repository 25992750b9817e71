package simcall

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// frame is an HTTP/2 frame: type, flags, stream, payload.
func frame(typ, flags byte, stream uint32, payload []byte) []byte {
	b := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), typ, flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[5:], stream)
	return append(b, payload...)
}

// grpcMsg is a gRPC length-prefixed message of n bytes.
func grpcMsg(n int) []byte {
	b := make([]byte, 5+n)
	binary.BigEndian.PutUint32(b[1:], uint32(n))
	for i := range n {
		b[5+i] = byte(i)
	}
	return b
}

// clientStream is what a gRPC client writes for five messages, with the
// offsets just past each message's last byte: a preface, SETTINGS,
// HEADERS, a message alone in a DATA frame, two in one frame, one split
// across two DATA frames with a WINDOW_UPDATE between them, an empty
// message, a PING, and an empty END_STREAM DATA frame.
func clientStream() (b []byte, ends []int) {
	b = append(b, clientPreface...)
	b = append(b, frame(0x4, 0, 0, make([]byte, 12))...) // SETTINGS
	b = append(b, frame(0x1, 0x4, 1, []byte("hpack block"))...)
	m1 := grpcMsg(40)
	b = append(b, frame(frameData, 0, 1, m1)...)
	ends = append(ends, len(b))
	m2, m3 := grpcMsg(3), grpcMsg(200)
	b = append(b, frame(frameData, 0, 1, append(append([]byte{}, m2...), m3...))...)
	ends = append(ends, len(b)-len(m3), len(b))
	m4 := grpcMsg(70)
	b = append(b, frame(frameData, 0, 1, m4[:2])...) // inside the 5-byte prefix
	b = append(b, frame(0x8, 0, 0, []byte{0, 0, 1, 0})...)
	b = append(b, frame(frameData, 0, 1, m4[2:])...)
	ends = append(ends, len(b))
	b = append(b, frame(frameData, 0, 1, grpcMsg(0))...)
	ends = append(ends, len(b))
	b = append(b, frame(0x6, 0, 0, make([]byte, 8))...)
	b = append(b, frame(frameData, 0x1, 1, nil)...)
	return b, ends
}

// TestFrameCounterCountsMessagesAsWritten: however the writes cut the
// stream, each message is counted by the write that carried its last
// byte, and by no other, at the offset just past that byte.
func TestFrameCounterCountsMessagesAsWritten(t *testing.T) {
	stream, ends := clientStream()
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 500 {
		var f frameCounter
		total := 0
		for off := 0; off < len(stream); {
			n := 1 + rng.IntN(40)
			if trial == 0 {
				n = len(stream) // one write
			}
			n = min(n, len(stream)-off)
			got, ok := f.feed(stream[off : off+n])
			if !ok {
				t.Fatalf("trial %d: the counter gave up at offset %d", trial, off)
			}
			var want []int
			for _, e := range ends {
				if e > off && e <= off+n {
					want = append(want, e-off)
				}
			}
			if got != len(want) || !slices.Equal(f.ends, want) {
				t.Fatalf("trial %d: write [%d, %d) completed %d messages ending at %v, want %v", trial, off, off+n, got, f.ends, want)
			}
			total += got
			off += n
		}
		if total != len(ends) {
			t.Fatalf("trial %d: %d messages, want %d", trial, total, len(ends))
		}
	}
}

// TestFrameCounterGivesUp: a connection that does not start with the
// HTTP/2 preface (TLS) or that pads its DATA frames is not followed.
func TestFrameCounterGivesUp(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"TLS", []byte{0x16, 0x03, 0x01, 0x02, 0x00}},
		{"padded DATA", append([]byte(clientPreface), frame(frameData, flagPadded, 1, append([]byte{1}, grpcMsg(2)...))...)},
	} {
		var f frameCounter
		if _, ok := f.feed(tc.b); ok {
			t.Errorf("%s: followed", tc.name)
		}
	}
}

// TestWrittenQueue: entries are called in order as their messages are
// written, a taken-back entry never, the rest when the stream breaks;
// after the counter gives up, nothing more is queued.
func TestWrittenQueue(t *testing.T) {
	var q writtenQueue
	var calls []int
	done := func(i int) func() { return func() { calls = append(calls, i) } }
	if q.push(done(0)) {
		t.Fatal("queued before any connection was followed")
	}
	q.started()
	for i := 1; i <= 4; i++ {
		if !q.push(done(i)) {
			t.Fatal("not queued on a followed connection")
		}
	}
	q.unpush() // 4's message was not sent
	q.push(nil)
	q.push(done(5))
	q.written(2)
	if !slices.Equal(calls, []int{1, 2}) {
		t.Fatalf("after two written: %v", calls)
	}
	q.flush()
	if !slices.Equal(calls, []int{1, 2, 3, 5}) {
		t.Fatalf("after the break: %v", calls)
	}
	q.push(done(6))
	q.stop()
	if !slices.Equal(calls, []int{1, 2, 3, 5, 6}) || q.push(done(7)) {
		t.Fatalf("after stop: %v", calls)
	}
}

// FuzzFrameCounter: any bytes, cut anywhere: no panic, and a stream the
// counter follows never yields more messages than it has bytes.
func FuzzFrameCounter(f *testing.F) {
	stream, _ := clientStream()
	f.Add(stream, uint8(7))
	f.Add([]byte(clientPreface), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, cut uint8) {
		var fc frameCounter
		total := 0
		step := int(cut) + 1
		for off := 0; off < len(b); off += step {
			n, ok := fc.feed(b[off:min(off+step, len(b))])
			total += n
			if !ok {
				return
			}
		}
		if total > len(b) {
			t.Fatalf("%d messages in %d bytes", total, len(b))
		}
	})
}

// heldConn is a net.Conn whose writes succeed at once and whose kernel
// holds the last unsent bytes (set by the test).
type heldConn struct {
	net.Conn
	mu     sync.Mutex
	unsent int
}

func (c *heldConn) Write(b []byte) (int, error) { return len(b), nil }
func (c *heldConn) Close() error                { return nil }
func (c *heldConn) setUnsent(n int)             { c.mu.Lock(); c.unsent = n; c.mu.Unlock() }
func (c *heldConn) unsentBytes() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unsent, nil
}

// TestWireConnHoldsUnsentMessages: a message whose last byte the kernel
// has not sent is not reported written when the write returns, but as
// soon as the byte has left (the poller), in order; Close stops the
// poller.
func TestWireConnHoldsUnsentMessages(t *testing.T) {
	stream, ends := clientStream()
	var q writtenQueue
	q.started()
	var mu sync.Mutex
	var calls []int
	for i := range ends {
		q.push(func() { mu.Lock(); calls = append(calls, i); mu.Unlock() })
	}
	got := func() []int { mu.Lock(); defer mu.Unlock(); return slices.Clone(calls) }
	hc := &heldConn{}
	w := newWireConn(hc, &q, hc.unsentBytes)

	// The kernel holds everything from the middle of message 2 on.
	hc.setUnsent(len(stream) - (ends[2] - 1))
	if _, err := w.Write(stream); err != nil {
		t.Fatal(err)
	}
	if c := got(); !slices.Equal(c, []int{0, 1}) {
		t.Fatalf("after the write: %v written, want [0 1] (the rest unsent)", c)
	}
	// It sends up to message 3's end.
	hc.setUnsent(len(stream) - ends[3])
	waitFor(t, func() bool { return slices.Equal(got(), []int{0, 1, 2, 3}) }, "messages 2 and 3 reported once sent")
	hc.setUnsent(0)
	waitFor(t, func() bool { return slices.Equal(got(), []int{0, 1, 2, 3, 4}) }, "every message reported")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	poll := w.poll
	w.mu.Unlock()
	if poll {
		t.Fatal("the poller still runs after Close")
	}
}

// TestWireConnOnALoopbackSocket: over a real TCP connection whose reader
// stops reading, the kernel keeps what does not fit the reader's window;
// the messages it kept are reported written only once the reader reads.
func TestWireConnOnALoopbackSocket(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the unsent byte count is not known on this platform")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4<<20) })
	}}
	conn, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	defer peer.Close()
	if unsentBytes(conn) == nil {
		t.Fatal("no unsent byte count for a TCP connection on Linux")
	}

	// A stream of 4,000 messages of 500 bytes (2 MB): more than a reader
	// that does not read can take, less than the send buffer.
	const msgs = 4000
	b := []byte(clientPreface)
	for range msgs {
		b = append(b, frame(frameData, 0, 1, grpcMsg(495))...)
	}
	var q writtenQueue
	q.started()
	var n atomic.Int64
	for range msgs {
		q.push(func() { n.Add(1) })
	}
	w := newWireConn(conn, &q, unsentBytes(conn))
	defer w.Close()
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got >= msgs {
		t.Fatalf("all %d messages reported written while the reader had read nothing", got)
	}
	readDone := make(chan error, 1)
	go func() { _, err := io.ReadFull(peer, make([]byte, len(b))); readDone <- err }()
	waitFor(t, func() bool { return n.Load() == msgs }, "every message reported once the reader read")
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
