package dialer

// senderQueue is a tenant's gates waiting for a wire slot, first in first
// out; the head's turn channel is closed. Joining and leaving are O(1): at
// 5,000 CAPS thousands of gates can wait, and a slice searched and shifted
// on every leave (under the engine's lock) made the gate itself the
// bottleneck (BENCHMARKS.md, issue 18 session 4, "the gate fell behind the
// dispatcher").
type senderQueue struct {
	q    []*sender // q[head:] waits, in order; gone entries are skipped
	head int
	n    int // waiting, gone ones excluded
}

// sender is one gate's place in its tenant's queue.
type sender struct {
	turn chan struct{} // closed when it is the head
	gone bool
}

func (s *senderQueue) len() int { return s.n }

// join queues a new gate, giving it the turn at once if nobody waits.
func (s *senderQueue) join() *sender {
	w := &sender{turn: make(chan struct{})}
	s.q = append(s.q, w)
	s.n++
	if s.n == 1 {
		s.skipGone()
		close(w.turn)
	}
	return w
}

// leave takes w out of the queue; if it was the head, the next waiter's
// turn comes. A no-op for a gate that has left.
func (s *senderQueue) leave(w *sender) {
	if w.gone {
		return
	}
	w.gone = true
	s.n--
	if s.head < len(s.q) && s.q[s.head] != w {
		return // not the head: skipped when its turn would come
	}
	s.skipGone()
	if s.head < len(s.q) {
		close(s.q[s.head].turn)
	}
}

// skipGone drops the gone gates at the head and compacts the slice once
// most of it is behind the head.
func (s *senderQueue) skipGone() {
	for s.head < len(s.q) && s.q[s.head].gone {
		s.q[s.head] = nil
		s.head++
	}
	if s.head == len(s.q) {
		s.q, s.head = s.q[:0], 0
	} else if s.head > 64 && s.head > len(s.q)/2 {
		n := copy(s.q, s.q[s.head:])
		clear(s.q[n:])
		s.q, s.head = s.q[:n], 0
	}
}
