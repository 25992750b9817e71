package portusage

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"
)

// Relay batches accepted reports into packets for the node's peers. Each
// packet is a codec version byte followed by encoded reports; a packet is
// sent when the next report would make it exceed MaxPacket bytes, or at
// the latest FlushEvery after its first report.
type Relay struct {
	send       func(packet []byte)
	maxPacket  int
	flushEvery time.Duration
	metrics    *Metrics

	mu  sync.Mutex
	buf []byte
	n   int // reports in buf
}

// RelayOptions configure a relay.
type RelayOptions struct {
	// MaxPacket bounds a packet (default 1200 bytes: one UDP datagram
	// below a LAN MTU, with room for the gossip framing).
	MaxPacket int
	// FlushEvery bounds how long a report waits in a batch (default 5 ms).
	FlushEvery time.Duration
	// Metrics counts the reports queued (EventRelayedOut); may be nil.
	Metrics *Metrics
}

// NewRelay returns a relay that hands packets to send (which must not keep
// the slice).
func NewRelay(send func(packet []byte), opts RelayOptions) *Relay {
	if opts.MaxPacket <= 0 {
		opts.MaxPacket = 1200
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = 5 * time.Millisecond
	}
	return &Relay{send: send, maxPacket: opts.MaxPacket, flushEvery: opts.FlushEvery, metrics: opts.Metrics}
}

// Add queues a report for the peers.
func (r *Relay) Add(rep Report) {
	r.metrics.Count(EventRelayedOut, 1)
	enc := appendReport(nil, rep)
	r.mu.Lock()
	var full []byte
	if r.n > 0 && len(r.buf)+len(enc) > r.maxPacket {
		full = r.take()
	}
	if r.n == 0 {
		r.buf = append(r.buf[:0], codecVersion)
	}
	r.buf = append(r.buf, enc...)
	r.n++
	r.mu.Unlock()
	if full != nil {
		r.send(full)
	}
}

// take returns the pending packet and empties the batch. r.mu is held.
func (r *Relay) take() []byte {
	p := r.buf
	r.buf, r.n = make([]byte, 0, r.maxPacket), 0
	return p
}

// Flush sends the pending batch now.
func (r *Relay) Flush() {
	r.mu.Lock()
	var p []byte
	if r.n > 0 {
		p = r.take()
	}
	r.mu.Unlock()
	if p != nil {
		r.send(p)
	}
}

// Run flushes every FlushEvery until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	t := time.NewTicker(r.flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.Flush()
			return
		case <-t.C:
			r.Flush()
		}
	}
}

const codecVersion = 1

// Limits on decoded fields, so a malformed packet cannot allocate much.
const maxDecodedString = 1024

// EncodeReports encodes reports as one packet (tests and tools).
func EncodeReports(reps ...Report) []byte {
	b := []byte{codecVersion}
	for _, r := range reps {
		b = appendReport(b, r)
	}
	return b
}

func appendReport(b []byte, r Report) []byte {
	for _, s := range []string{r.ServerID, r.Address, r.Tenant, r.ReceivedBy} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(r.Total))
	b = binary.AppendUvarint(b, uint64(r.InUse))
	b = binary.AppendVarint(b, r.TimeUnixMs)
	b = binary.AppendUvarint(b, r.Seq)
	b = binary.AppendVarint(b, r.ReceivedUnixMs)
	return b
}

var errCodec = errors.New("portusage: malformed relay packet")

// DecodeReports decodes a packet made by Relay or EncodeReports.
func DecodeReports(b []byte) ([]Report, error) {
	if len(b) == 0 || b[0] != codecVersion {
		return nil, errCodec
	}
	b = b[1:]
	var out []Report
	for len(b) > 0 {
		var r Report
		var strs [4]string
		for i := range strs {
			n, k := binary.Uvarint(b)
			if k <= 0 || n > maxDecodedString || uint64(len(b)-k) < n {
				return nil, errCodec
			}
			strs[i] = string(b[k : k+int(n)])
			b = b[k+int(n):]
		}
		r.ServerID, r.Address, r.Tenant, r.ReceivedBy = strs[0], strs[1], strs[2], strs[3]
		var u [2]uint64
		for i := range u {
			v, k := binary.Uvarint(b)
			if k <= 0 || v > uint64(^uint32(0)) {
				return nil, errCodec
			}
			u[i], b = v, b[k:]
		}
		r.Total, r.InUse = uint32(u[0]), uint32(u[1])
		var k int
		if r.TimeUnixMs, k = binary.Varint(b); k <= 0 {
			return nil, errCodec
		}
		b = b[k:]
		if r.Seq, k = binary.Uvarint(b); k <= 0 {
			return nil, errCodec
		}
		b = b[k:]
		if r.ReceivedUnixMs, k = binary.Varint(b); k <= 0 {
			return nil, errCodec
		}
		b = b[k:]
		out = append(out, r)
	}
	return out, nil
}
