package console

import (
	"sync"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// historyWindow is how far back the dialer charts reach.
const historyWindow = 15 * time.Minute

// Point is one second of a tenant's dialer figures.
type Point struct {
	T          int64   `json:"t"` // unix seconds
	CAPS       float64 `json:"caps"`
	Achieved   float64 `json:"achieved"`
	InProgress uint32  `json:"in_progress"`
	Budget     uint32  `json:"port_budget"`
	PortsInUse uint32  `json:"ports_in_use"`
	Queued     uint32  `json:"queued"`
}

// LeaderChange is one entry of the leader timeline.
type LeaderChange struct {
	T      int64  `json:"t"` // unix milliseconds
	Leader string `json:"leader"`
	Term   uint64 `json:"term"`
}

// history keeps, in memory on this node, the last 15 minutes of each
// tenant's dialer figures and the leader changes this node has seen. The
// dialer points come from the answers the console's streams receive
// (already scoped to their viewer) and are filtered again by viewer when
// served; they cover the time a console has been open on this node.
type history struct {
	mu      sync.Mutex
	tenants map[string][]Point
	leaders []LeaderChange
}

const maxLeaderChanges = 100

func newHistory() *history { return &history{tenants: map[string][]Point{}} }

// recordDialer adds one point per tenant of st for second now (a later
// answer within the same second replaces the earlier one).
func (h *history) recordDialer(now time.Time, st *pb.DialerStatus) {
	sec := now.Unix()
	cut := now.Add(-historyWindow).Unix()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range st.GetTenants() {
		p := Point{T: sec, CAPS: t.GetCaps(), Achieved: t.GetAttemptsPerSec(), InProgress: t.GetInProgress(),
			Budget: t.GetPortBudget(), PortsInUse: t.GetPortsInUse(), Queued: t.GetQueued()}
		pts := h.tenants[t.GetTenant()]
		if n := len(pts); n > 0 && pts[n-1].T == sec {
			pts[n-1] = p
		} else {
			pts = append(pts, p)
		}
		i := 0
		for i < len(pts) && pts[i].T < cut {
			i++
		}
		if i > 0 {
			pts = append(pts[:0:0], pts[i:]...)
		}
		h.tenants[t.GetTenant()] = pts
	}
}

// dialer returns a copy of tenant's points.
func (h *history) dialer(tenant string) []Point {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Point(nil), h.tenants[tenant]...)
}

// recordLeader notes the leader this node sees, if it changed.
func (h *history) recordLeader(now time.Time, leader string, term uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.leaders); n > 0 && h.leaders[n-1].Leader == leader && h.leaders[n-1].Term == term {
		return
	}
	h.leaders = append(h.leaders, LeaderChange{T: now.UnixMilli(), Leader: leader, Term: term})
	if len(h.leaders) > maxLeaderChanges {
		h.leaders = append(h.leaders[:0:0], h.leaders[len(h.leaders)-maxLeaderChanges:]...)
	}
}

func (h *history) leaderChanges() []LeaderChange {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]LeaderChange(nil), h.leaders...)
}
