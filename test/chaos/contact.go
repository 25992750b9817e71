package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/test/chaos/history"
)

// Contact rules of a run (invariant 8, check.ContactRules): a few numbers
// on the suppression list, a frequency cap that a small pool of repeated
// numbers runs into, and a calling window closed for one minute two
// minutes into the run (UTC; the load's numbers have no zone, so the
// window's default zone applies). The load sends a share of its creates
// to the listed and the repeated numbers.
const (
	contactPool     = 20
	contactCapMax   = 2
	contactCapEvery = time.Minute // the API's shortest period
	contactCapGap   = 3 * time.Second
	// A request claimed just before the close may still be dialled within
	// its queue's drain time (docs/compliance.md).
	contactWindowGrace = 3 * time.Second
)

func listedNumber(i int) string   { return fmt.Sprintf("555000%04d", i) }
func repeatedNumber(i int) string { return fmt.Sprintf("555001%04d", i) }

// contactTelnum picks a create's number: 2% listed, 10% repeated, the
// rest random.
func contactTelnum(rng *rand.Rand) string {
	switch p := rng.IntN(100); {
	case p < 2:
		return listedNumber(rng.IntN(contactPool))
	case p < 12:
		return repeatedNumber(rng.IntN(contactPool))
	}
	return fmt.Sprintf("555%07d", rng.IntN(10_000_000))
}

// setContactRules configures the run's contact rules and returns them as
// the checker needs them.
func (r *Runner) setContactRules(ctx context.Context, now time.Time) (*history.ContactRules, error) {
	cr := &history.ContactRules{WindowGrace: contactWindowGrace, CapMax: contactCapMax, CapPeriod: contactCapEvery, CapMinGap: contactCapGap}
	var nums []string
	for i := range contactPool {
		nums = append(nums, listedNumber(i))
	}
	if err := r.retry(ctx, 30*time.Second, func(ctx context.Context, base string) error {
		c, err := r.api.node(base)
		if err != nil {
			return err
		}
		_, err = c.AddSuppressions(ctx, r.api.tenant, nums, "")
		return err
	}); err != nil {
		return nil, fmt.Errorf("suppression list: %w", err)
	}
	listed := time.Now()
	for _, n := range nums {
		cr.Suppressed = append(cr.Suppressed, history.Listing{Number: n, From: listed})
	}
	if err := r.retry(ctx, 30*time.Second, func(ctx context.Context, base string) error {
		c, err := r.api.node(base)
		if err != nil {
			return err
		}
		_, err = c.SetFrequencyCap(ctx, r.api.tenant, &pb.FrequencyCap{MaxAttempts: contactCapMax, Period: contactCapEvery.String(), MinGap: contactCapGap.String()})
		return err
	}); err != nil {
		return nil, fmt.Errorf("frequency cap: %w", err)
	}
	closed := now.UTC().Truncate(time.Minute).Add(2 * time.Minute)
	w := closedMinute(closed)
	if w == nil {
		return cr, nil // around midnight: no closure this run
	}
	if err := r.retry(ctx, 30*time.Second, func(ctx context.Context, base string) error {
		c, err := r.api.node(base)
		if err != nil {
			return err
		}
		_, err = c.SetCallingWindow(ctx, r.api.tenant, "", w)
		return err
	}); err != nil {
		return nil, fmt.Errorf("calling window: %w", err)
	}
	cr.Closed = []history.Span{{From: closed, To: closed.Add(time.Minute)}}
	return cr, nil
}

// closedMinute is a window open every day but for the minute at closed
// (UTC), or nil when that minute touches midnight.
func closedMinute(closed time.Time) *pb.CallingWindow {
	m := closed.Hour()*60 + closed.Minute()
	if m == 0 || m == 1439 {
		return nil
	}
	hhmm := func(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }
	return &pb.CallingWindow{
		Weekly: []*pb.CallingSpan{
			{Days: "daily", Open: "00:00", Close: hhmm(m)},
			{Days: "daily", Open: hhmm(m + 1), Close: "24:00"},
		},
		UnknownZone: "default_zone", DefaultZone: "UTC",
	}
}
