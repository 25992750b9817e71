package dialer

import (
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// tenant is one tenant's in-memory dialer state. Guarded by Engine.mu.
type tenant struct {
	name     string
	settings pacing.Settings
	ports    PortReport
	queues   map[string][]*item  // per IVR profile: fetched (still PENDING), in priority order
	held     map[string]struct{} // ids queued or armed and not yet started or refused
	order    []string            // profiles, for round robin
	rr       int
	ready    []*item     // armed and committed, waiting for their dial slot
	pacer    pacer       // hand-off to the call goroutines (dispatch)
	wire     pacer       // the send itself (gate)
	senders  senderQueue // gates waiting for a wire slot
	budget   budget
	sampled  sampledPorts // sampledView only
	attempts []time.Time  // dial times, for the achieved rate
	pruned   time.Time    // last prune of the queues
	// emptyFetch is when a fetch last found nothing new (see
	// emptyFetchPause).
	emptyFetch time.Time
	outcomes   map[string]uint64
}

func newTenant(name string) *tenant {
	return &tenant{name: name, pacer: pacer{handoff: true}, queues: map[string][]*item{}, held: map[string]struct{}{}, outcomes: map[string]uint64{}}
}

// item is one request on its way through the engine.
type item struct {
	t        *tenant
	req      *fsmpb.Request // as fetched
	callUUID string
	armed    time.Time
	// sendToken is the attempt's pending entry in the wire pacers from its
	// gate until the backend reports the send written (0: none; gate.go).
	sendToken int64
	gateAt    time.Time // when it passed its gate
}

// result is the outcome of one item's attempt, or (mark set, it and res
// nil) a delivered notification, waiting to be committed: both go in the
// same entry (BatchRecordResults).
type result struct {
	it   *item
	res  *fsmpb.AttemptResult
	mark string
}

func (t *tenant) idle() bool {
	return t.queued() == 0 && len(t.ready) == 0 && t.budget.calls == 0 && t.budget.armed == 0 && t.senders.len() == 0
}

func (t *tenant) queued() int {
	n := 0
	for _, q := range t.queues {
		n += len(q)
	}
	return n
}

// lowOnWork reports whether t's queues are empty or below the low
// watermark (a percentage of the batch size): time to fetch.
func (t *tenant) lowOnWork() bool {
	q := t.queued()
	return q*100 < t.batchSize()*int(t.settings.LowWatermark) || q == 0
}

// batchSize is the SSG's Request Batch Size for the tenant now.
func (t *tenant) batchSize() int {
	if !t.ports.OK {
		return 0
	}
	switch t.settings.BatchMode {
	case pacing.BatchAvailablePorts:
		return int(t.ports.Total) - min(int(t.ports.InUse), int(t.ports.Total))
	case pacing.BatchFixed:
		return int(t.settings.BatchSize)
	default:
		return int(t.ports.Total)
	}
}

// rate is the attempts per second over the last 10 s (and trims the log).
func (t *tenant) rate(now time.Time) float64 {
	const span = 10 * time.Second
	i := 0
	for i < len(t.attempts) && now.Sub(t.attempts[i]) > span {
		i++
	}
	t.attempts = append(t.attempts[:0], t.attempts[i:]...)
	return float64(len(t.attempts)) / span.Seconds()
}
