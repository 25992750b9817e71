package dialer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/notify"
)

// heldSender holds every send until release, counting the sends in flight
// and the most at once, then delivers it through next.
type heldSender struct {
	next    notify.Sender
	release chan struct{}
	once    sync.Once

	mu       sync.Mutex
	inFlight int
	most     int
	calls    int
}

func newHeldSender() *heldSender {
	return &heldSender{next: notify.Sender{Timeout: time.Second}, release: make(chan struct{})}
}

func (s *heldSender) Send(ctx context.Context, r *fsmpb.Request) error {
	s.mu.Lock()
	s.inFlight++
	s.most = max(s.most, s.inFlight)
	s.calls++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	<-s.release // even past ctx: a send that is slow to return
	return s.next.Send(ctx, r)
}

func (s *heldSender) open() { s.once.Do(func() { close(s.release) }) }

func (s *heldSender) counts() (inFlight, most, calls int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight, s.most, s.calls
}

// heldSenderHarness runs n requests whose notifications go through a
// heldSender with NotifyConcurrency workers.
func heldSenderHarness(t *testing.T, n, workers int) (*harness, *heldSender, []string) {
	t.Helper()
	h := newHarness(t, 5*time.Millisecond)
	hs := newHeldSender()
	h.opts = func(o *Options) {
		o.Sender = hs
		o.NotifyConcurrency = workers
	}
	h.setPorts("acme", n)
	ids := h.submit("acme", "P", n, 1, time.Hour, digits)
	h.start()
	t.Cleanup(hs.open) // before h.stop (cleanups run last first)
	return h, hs, ids
}

func TestNotifierBoundsSendsInFlightAndDeliversAll(t *testing.T) {
	const n, workers = 20, 3
	h, hs, ids := heldSenderHarness(t, n, workers)
	// Every note queued and every worker holding one: the rest wait.
	eventually(t, 10*time.Second, "every notification pending and every worker sending", func() error {
		h.engine.mu.Lock() // Run sets notes under it
		notes := h.engine.notes
		h.engine.mu.Unlock()
		if notes == nil {
			return fmt.Errorf("no notifier yet")
		}
		if pending, _ := notes.stats("acme"); pending != n {
			return fmt.Errorf("%d notifications pending", pending)
		}
		if inFlight, _, _ := hs.counts(); inFlight != workers {
			return fmt.Errorf("%d sends in flight", inFlight)
		}
		return nil
	})
	hs.open()
	h.allNotified(ids, 10*time.Second)
	if _, most, calls := hs.counts(); most != workers || calls < n {
		t.Errorf("%d sends at most in flight and %d in all, want %d and at least %d", most, calls, workers, n)
	}
}

func TestNotifierRunWaitsForItsWorkers(t *testing.T) {
	const workers = 2
	h, hs, _ := heldSenderHarness(t, 5, workers)
	eventually(t, 10*time.Second, "every worker sending", func() error {
		if inFlight, _, _ := hs.counts(); inFlight != workers {
			return fmt.Errorf("%d sends in flight", inFlight)
		}
		return nil
	})
	h.cancel()
	select {
	case <-h.done:
		inFlight, _, _ := hs.counts()
		t.Fatalf("Run returned with %d notification sends in flight", inFlight)
	case <-time.After(100 * time.Millisecond): // the grace a wrong Run has to return
	}
	hs.open()
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its sends ending")
	}
	h.cancel = nil
	if inFlight, _, _ := hs.counts(); inFlight != 0 {
		t.Fatalf("Run returned with %d notification sends in flight", inFlight)
	}
}

// TestNotifierRetriesAtTheirBackoff: a failed delivery is retried after
// its backoff (here at most 100 ms), not at the dispatcher's next
// once-a-second look at a queue it last saw empty.
func TestNotifierRetriesAtTheirBackoff(t *testing.T) {
	h := newHarness(t, 5*time.Millisecond)
	h.recv.failN = 3
	h.setPorts("acme", 1)
	ids := h.submit("acme", "P", 1, 1, time.Hour, digits)
	h.start()
	eventually(t, 10*time.Second, "the first delivery failed", func() error {
		h.recv.mu.Lock()
		defer h.recv.mu.Unlock()
		if h.recv.failed == 0 {
			return fmt.Errorf("no delivery yet")
		}
		return nil
	})
	// Three retries at ~100 ms (±20%); a second each would be 2 s or more.
	h.allNotified(ids, 1500*time.Millisecond)
}
