package dialer

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// notifier delivers result notifications at least once: every finished
// request with a pending notification is sent, retried with capped
// exponential backoff (1 s, 2 s, 4 s, ... up to NotifyMaxBackoff, ±20%
// jitter) until the trigger application answers 2xx, and the delivery is
// then committed: the mark goes to the engine's outcome batcher, so it
// rides in the next outcomes entry (BatchRecordResults) rather than an
// entry of its own. A new leader starts by
// queueing every request still marked pending, so a notification whose
// delivery was not committed is sent again: at least once, possibly twice.
type notifier struct {
	e *Engine

	mu      sync.Mutex
	queue   noteHeap
	byID    map[string]*note
	pending map[string]int    // per tenant
	retries map[string]uint64 // per tenant
	wake    chan struct{}
}

type note struct {
	id, tenant string
	next       time.Time
	tries      int
	sending    bool
	idx        int
}

func newNotifier(e *Engine) *notifier {
	return &notifier{e: e, byID: map[string]*note{}, pending: map[string]int{}, retries: map[string]uint64{}, wake: make(chan struct{}, 1)}
}

// add queues the notification of a finished request (idempotent).
func (n *notifier) add(id string) {
	r, ok := n.e.opts.Store.Get(id)
	if !ok || r.State != fsmpb.State_PROCESSED || r.NotifyState != fsmpb.NotifyState_NOTIFY_PENDING {
		return
	}
	n.mu.Lock()
	if n.byID[id] == nil {
		nt := &note{id: id, tenant: r.Tenant, next: time.Now()}
		n.byID[id] = nt
		heap.Push(&n.queue, nt)
		n.pending[r.Tenant]++
	}
	n.mu.Unlock()
	n.signal()
}

// signal wakes the dispatcher: the queue changed.
func (n *notifier) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) stats(tenant string) (pending int, retries uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pending[tenant], n.retries[tenant]
}

// run delivers the notifications of this term until ctx ends: it queues
// what earlier leaders left pending, then hands each due note to one of
// NotifyConcurrency workers. It returns once every worker has.
func (n *notifier) run(ctx context.Context) {
	// What earlier leaders finished but did not get delivered.
	for _, tn := range n.e.opts.Store.Tenants(fsmpb.State_PROCESSED) {
		after := ""
		for ctx.Err() == nil {
			recs := n.e.opts.Store.InState(tn, fsmpb.State_PROCESSED, after, maxEntryItems)
			if len(recs) == 0 {
				break
			}
			after = recs[len(recs)-1].Id
			for _, r := range recs {
				if r.NotifyState == fsmpb.NotifyState_NOTIFY_PENDING {
					n.add(r.Id)
				}
			}
		}
	}
	// Long-lived workers, not a goroutine per note: each delivery runs
	// deep in net/http, and a fresh goroutine grows (copies) its stack
	// there every time. Unbuffered: a note leaves the queue only when a
	// worker takes it, so the dispatcher blocks rather than polls while
	// all of them are busy.
	work := make(chan *note)
	var wg sync.WaitGroup
	defer wg.Wait()
	if n.e.opts.Sender != nil {
		for range n.e.opts.NotifyConcurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-ctx.Done():
						return
					case nt := <-work:
						n.send(ctx, nt)
					}
				}
			}()
		}
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		nt, wait := n.due(time.Now())
		if nt != nil {
			select {
			case work <- nt:
				continue
			case <-ctx.Done():
				return
			}
		}
		timer.Reset(wait) // Go ≥1.23 timers: Reset discards a pending tick
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-timer.C:
		}
	}
}

// due takes the earliest note off the queue, marked sending, if it is due
// at now; otherwise it says how long to wait (at most a second). With no
// Sender nothing is ever due.
func (n *notifier) due(now time.Time) (*note, time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.e.opts.Sender == nil || n.queue.Len() == 0 {
		return nil, time.Second
	}
	nt := n.queue[0]
	if d := nt.next.Sub(now); d > 0 {
		return nil, min(d, time.Second)
	}
	heap.Pop(&n.queue)
	nt.sending = true
	return nt, 0
}

func (n *notifier) send(ctx context.Context, nt *note) {
	r, ok := n.e.opts.Store.Get(nt.id)
	if !ok || r.State != fsmpb.State_PROCESSED || r.NotifyState != fsmpb.NotifyState_NOTIFY_PENDING {
		n.forget(nt)
		return
	}
	err := n.e.opts.Sender.Send(ctx, r)
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		n.e.m.Notifications.WithLabelValues(r.Tenant, "delivered").Inc()
		n.e.results.add(result{mark: nt.id})
		return
	}
	n.e.m.Notifications.WithLabelValues(r.Tenant, "failed").Inc()
	n.e.log.Debug("notification failed; will retry", "request", nt.id, "tries", nt.tries+1, "err", err)
	n.mu.Lock()
	nt.tries++
	n.retries[nt.tenant]++
	backoff := time.Second << min(nt.tries-1, 20)
	backoff = min(backoff, n.e.opts.NotifyMaxBackoff)
	backoff = time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
	nt.next = time.Now().Add(backoff)
	nt.sending = false
	heap.Push(&n.queue, nt)
	n.mu.Unlock()
	n.signal() // the dispatcher may be asleep on an empty queue for up to a second
}

func (n *notifier) forget(nt *note) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.byID[nt.id] == nt {
		delete(n.byID, nt.id)
		n.pending[nt.tenant]--
		if n.pending[nt.tenant] <= 0 {
			delete(n.pending, nt.tenant)
		}
	}
}

// forgetIDs forgets the notes of committed marks.
func (n *notifier) forgetIDs(marked []result) {
	if len(marked) == 0 {
		return
	}
	n.mu.Lock()
	nts := make([]*note, 0, len(marked))
	for _, m := range marked {
		if nt := n.byID[m.mark]; nt != nil {
			nts = append(nts, nt)
		}
	}
	n.mu.Unlock()
	for _, nt := range nts {
		n.forget(nt)
	}
}

// noteHeap orders notes by next delivery time.
type noteHeap []*note

func (h noteHeap) Len() int           { return len(h) }
func (h noteHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h noteHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *noteHeap) Push(x any) {
	nt := x.(*note)
	nt.idx = len(*h)
	*h = append(*h, nt)
}
func (h *noteHeap) Pop() any {
	old := *h
	nt := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return nt
}
