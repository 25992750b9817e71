package dialer

import "testing"

func isOpen(w *sender) bool {
	select {
	case <-w.turn:
		return true
	default:
		return false
	}
}

// TestSenderQueueOrder: the turn passes in join order, skipping gates that
// left before their turn, and a gate leaving twice changes nothing.
func TestSenderQueueOrder(t *testing.T) {
	var q senderQueue
	ws := make([]*sender, 200)
	for i := range ws {
		ws[i] = q.join()
	}
	if !isOpen(ws[0]) || isOpen(ws[1]) {
		t.Fatal("only the first gate has the turn")
	}
	// Every third gate gives up while waiting.
	for i := 3; i < len(ws); i += 3 {
		q.leave(ws[i])
		q.leave(ws[i])
	}
	want := len(ws) - (len(ws)-1)/3
	if q.len() != want {
		t.Fatalf("len = %d, want %d", q.len(), want)
	}
	for i := 0; i < len(ws); i++ {
		if i%3 == 0 && i > 0 {
			continue
		}
		if !isOpen(ws[i]) {
			t.Fatalf("gate %d: no turn when every gate before it left", i)
		}
		for j := i + 1; j < len(ws); j++ {
			if isOpen(ws[j]) {
				t.Fatalf("gate %d has the turn while %d holds it", j, i)
			}
		}
		q.leave(ws[i])
		q.leave(ws[i])
	}
	if q.len() != 0 || len(q.q) != 0 {
		t.Fatalf("queue not empty: len %d, slice %d", q.len(), len(q.q))
	}
	// An empty queue gives the next gate the turn at once.
	if w := q.join(); !isOpen(w) {
		t.Fatal("a gate joining an empty queue waits")
	}
}
