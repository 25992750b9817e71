package dialer

import (
	"slices"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
)

// PortReport is a tenant's port figures from the port-usage cache.
type PortReport struct {
	Total, InUse uint32
	// ReceivedAt is when the newest report behind the figures arrived.
	ReceivedAt time.Time
	// OK is false when the tenant has no fresh report: no capacity.
	OK bool
}

// budget counts one tenant's calls for the port budget.
//
// Two limits apply. The budget proper bounds this engine's calls (in
// progress plus armed, i.e. committed but not dialled yet):
//
//	TotalPorts, Fixed: floor(total × PortLoadFactor / 100)
//	AvailablePorts:    floor((total − other) × PortLoadFactor / 100)
//
// where other is the ports the report shows in use by traffic that is not
// this engine's (inbound calls, say). The physical limit keeps the media
// platform from ever being asked for more ports than it has (at
// PortLoadFactor ≤ 100; above 100 the operator oversubscribes on purpose
// and the limit scales with it). The figures the media servers report
// arrive late, so the ports in use now are estimated as
//
//	max(calls, inUse + placedSince(report − margin)) + armed
//
// where calls are this engine's calls in progress (a lower bound on what
// it holds), placedSince counts the calls placed after the report (less a
// margin for the relay latency: a call may be counted twice, never not at
// all). This also covers calls a previous leader left on the platform:
// they are in inUse until they end. With no fresh report both limits are
// 0. This assumes, as the CVP seed says, that servers report on every
// change; with reports only every few seconds calls that ended still count
// as in use, so the estimate errs towards fewer calls, never more.
//
// lingering counts the attempts a previous leader left in progress that may
// still be up at the far end (half-open, see takeover.go) until their hold
// ends: they count as this engine's calls in both limits.
type budget struct {
	armed     int
	calls     int
	lingering int
	// placed[head:] are the dial times of the last placedKeep, oldest
	// first. Times that age out only move head; the slice is compacted
	// when head passes half of it, so a call costs O(1) amortised (at
	// 5,000 CAPS the window holds 50,000 times, and moving them all on
	// every call cost 4.5% of the leader's CPU).
	placed []time.Time
	head   int
}

// placedKeep bounds how far back placed dial times are kept: a report
// older than this is stale anyway (port_usage.stale_after).
const placedKeep = 10 * time.Second

func (b *budget) place(now time.Time) {
	b.armed--
	b.calls++
	b.placed = append(b.placed, now)
	for b.head < len(b.placed) && now.Sub(b.placed[b.head]) > placedKeep {
		b.head++
	}
	if b.head > 64 && b.head > len(b.placed)/2 {
		n := copy(b.placed, b.placed[b.head:])
		b.placed, b.head = b.placed[:n], 0
	}
}

func (b *budget) placedSince(t time.Time) int {
	// placed is sorted: the first time at or after t, by binary search.
	live := b.placed[b.head:]
	i, _ := slices.BinarySearchFunc(live, t, func(p, t time.Time) int { return p.Compare(t) })
	return len(live) - i
}

// limit returns the budget and this engine's calls counted against it
// (in progress plus armed), and the physical limit and the estimate of
// ports in use counted against that.
func (b *budget) limit(mode string, plf uint32, rep PortReport, margin time.Duration) (limit, own, physical, estimate int) {
	own = b.calls + b.armed + b.lingering
	if !rep.OK {
		return 0, own, 0, own
	}
	inUse, total := int(rep.InUse), int(rep.Total)
	since := b.placedSince(rep.ReceivedAt.Add(-margin))
	switch mode {
	case pacing.BatchAvailablePorts:
		// Of inUse, this engine's are the calls it has now less those
		// placed after the report (an over-estimate of its share when calls
		// ended since, so other traffic is if anything under-estimated; the
		// physical limit still holds).
		other := max(inUse-max(b.calls-since, 0), 0)
		limit = max(total-other, 0) * int(plf) / 100
	default:
		limit = total * int(plf) / 100
	}
	physical = total * int(max(plf, 100)) / 100
	estimate = max(b.calls+b.lingering, inUse+since) + b.armed
	return limit, own, physical, estimate
}

// canArm reports whether one more call fits both limits.
func (b *budget) canArm(mode string, plf uint32, rep PortReport, margin time.Duration) bool {
	l, own, phys, est := b.limit(mode, plf, rep, margin)
	return own < l && est < phys
}
