package check

import (
	"fmt"
	"slices"
	"strings"

	"github.com/seed-7bfc04c2/dialtone/internal/sim/mediasim"
	"github.com/seed-7bfc04c2/dialtone/test/chaos/history"
)

// ContactRules (invariant 8): by the media platform's clock, no call
// started to a number after its suppression listing was acknowledged, none
// started while the calling window was closed (after the documented grace
// for requests claimed before the close), and no number got more calls
// than the frequency cap allows (tolerating Settings.Skew between the
// leader's clock, where the cap is enforced, and the platform's).
func ContactRules(h *history.History) Report {
	r := Report{Checker: "contact-rules"}
	c := h.Settings.Contact
	if c == nil {
		r.Checked = "no contact rules configured"
		return r
	}
	ix := newIndex(h)
	skew := h.Settings.Skew
	calls := placedOnly(h.Calls)
	byNumber := map[string][]mediasim.CallRecord{}
	for _, call := range calls {
		if call.Tenant == "" || call.Tenant == h.Settings.Tenant {
			n := strings.TrimPrefix(call.Telnum, "+")
			byNumber[n] = append(byNumber[n], call)
		}
	}

	for _, l := range c.Suppressed {
		for _, call := range byNumber[strings.TrimPrefix(l.Number, "+")] {
			if call.Start.After(l.From.Add(skew)) {
				r.Findings = append(r.Findings, Finding{
					Message: fmt.Sprintf("call %s to %s started %s, after the number was listed at %s", call.CallUUID, l.Number, ts(call.Start), ts(l.From)),
					Slice:   ix.requestSlice(call.RequestID)})
			}
		}
	}

	for _, sp := range c.Closed {
		from := sp.From.Add(c.WindowGrace + skew)
		for _, call := range calls {
			if !call.Start.Before(from) && call.Start.Before(sp.To.Add(-skew)) {
				r.Findings = append(r.Findings, Finding{
					Message: fmt.Sprintf("call %s to %s started %s, in the closed span %s..%s", call.CallUUID, call.Telnum, ts(call.Start), ts(sp.From), ts(sp.To)),
					Slice:   ix.requestSlice(call.RequestID)})
			}
		}
	}

	if c.CapMax > 0 || c.CapMinGap > 0 {
		for n, cs := range byNumber {
			slices.SortFunc(cs, func(a, b mediasim.CallRecord) int { return a.Start.Compare(b.Start) })
			for i := range cs {
				if i > 0 && c.CapMinGap > 0 && cs[i].Start.Sub(cs[i-1].Start) < c.CapMinGap-skew {
					r.Findings = append(r.Findings, Finding{
						Message: fmt.Sprintf("calls %s and %s to %s started %s apart; the minimum gap is %s", cs[i-1].CallUUID, cs[i].CallUUID, n, cs[i].Start.Sub(cs[i-1].Start), c.CapMinGap),
						Slice:   ix.requestSlice(cs[i].RequestID)})
				}
				// CapMax+1 calls within one period.
				if j := i - c.CapMax; c.CapMax > 0 && c.CapPeriod > 0 && j >= 0 && cs[i].Start.Sub(cs[j].Start) < c.CapPeriod-skew {
					r.Findings = append(r.Findings, Finding{
						Message: fmt.Sprintf("%d calls to %s within %s (%s..%s); the cap is %d per %s", c.CapMax+1, n, cs[i].Start.Sub(cs[j].Start), ts(cs[j].Start), ts(cs[i].Start), c.CapMax, c.CapPeriod),
						Slice:   ix.requestSlice(cs[i].RequestID)})
				}
			}
		}
	}
	r.Checked = fmt.Sprintf("%d calls to %d numbers against %d listings, %d closed spans, cap %d per %s (gap %s)",
		len(calls), len(byNumber), len(c.Suppressed), len(c.Closed), c.CapMax, c.CapPeriod, c.CapMinGap)
	return r
}
