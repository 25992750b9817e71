package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// The nodes run with `serve --send-log`: each writes a line per call it
// sent, "<gate Unix ns> <written Unix ns>", in the order the calls were
// written. Paired in order with the calls on the wire (one call stream, so
// the n-th written is the n-th on the wire), it checks what the dialer's
// windows rest on: no call reaches the wire after the dialer counted it
// written (docs/dialer.md). Issue 18's sixth session found calls the
// kernel still held up to 6 ms after that this way.

// sendLogPath is node id's send log in the cluster's directory dir.
func sendLogPath(dir, id string) string { return filepath.Join(dir, "send-"+id+".log") }

// SendCheck pairs the leader's send log with the wire.
type SendCheck struct {
	// Note says why there is no pairing (then the rest is zero).
	Note string `json:"note,omitempty"`
	// Paired: pairs whose wire time is in the measured span.
	Paired int `json:"paired"`
	// Late: pairs whose call reached the wire after it was counted
	// written; WireAfterWritten*: the wire's time less the written time,
	// ms (negative: on the wire before).
	Late                int     `json:"late"`
	WireAfterWrittenP50 float64 `json:"wire_after_written_p50_ms"`
	WireAfterWrittenMax float64 `json:"wire_after_written_max_ms"`
}

// readSendLog returns the written times of a send log, in order; a last
// line still being written is left out.
func readSendLog(path string) ([]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var out []int64
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		_, w, ok := bytes.Cut(sc.Bytes(), []byte{' '})
		if !ok {
			return nil, fmt.Errorf("%s: line %d: %q is not \"<gate> <written>\"", path, len(out)+1, sc.Text())
		}
		t, err := strconv.ParseInt(string(w), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", path, len(out)+1, err)
		}
		out = append(out, t)
	}
	return out, sc.Err()
}

// pairSendLogs pairs the one sending node's log (of the nodes ids in dir)
// with wire, every attempt on the wire in capture order, over the pairs
// whose wire time is in [from, to].
func pairSendLogs(dir string, ids []string, wire []int64, from, to int64) SendCheck {
	var written []int64
	senders := 0
	for _, id := range ids {
		w, err := readSendLog(sendLogPath(dir, id))
		if err != nil {
			return SendCheck{Note: fmt.Sprintf("send log of %s: %v", id, err)}
		}
		if len(w) > 0 {
			senders++
			written = w
		}
	}
	if senders != 1 {
		return SendCheck{Note: fmt.Sprintf("%d nodes sent calls (a leader change): the logs do not pair with one stream", senders)}
	}
	return pairSendLog(written, wire, from, to)
}

// pairSendLog pairs written (a send log's written times) with wire (the
// attempts on the wire), the n-th with the n-th, over the common prefix.
func pairSendLog(written, wire []int64, from, to int64) SendCheck {
	n := min(len(written), len(wire))
	var d []float64
	for i := range n {
		if wire[i] >= from && wire[i] < to {
			d = append(d, float64(wire[i]-written[i])/1e6)
		}
	}
	if len(d) == 0 {
		return SendCheck{Note: fmt.Sprintf("no pair in the span (%d written, %d on the wire)", len(written), len(wire))}
	}
	c := SendCheck{Paired: len(d)}
	for _, x := range d {
		if x > 0 {
			c.Late++
		}
	}
	slices.Sort(d)
	c.WireAfterWrittenP50, c.WireAfterWrittenMax = d[len(d)/2], d[len(d)-1]
	// A median a second or more off means the two lists are not the same
	// calls in the same order (a call logged but never sent, or the
	// reverse, shifts every pair after it).
	if c.WireAfterWrittenP50 < -1000 || c.WireAfterWrittenP50 > 1000 {
		return SendCheck{Note: fmt.Sprintf("the send log does not pair with the wire (median wire − written %.1f ms)", c.WireAfterWrittenP50)}
	}
	return c
}
