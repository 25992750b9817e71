package simcall

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
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
// byte, and by no other.
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
			want := 0
			for _, e := range ends {
				if e > off && e <= off+n {
					want++
				}
			}
			if got != want {
				t.Fatalf("trial %d: write [%d, %d) completed %d messages, want %d", trial, off, off+n, got, want)
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
