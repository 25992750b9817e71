package dialer

import (
	"maps"
	"slices"

	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
)

// allocate divides n fetch slots among IVR profiles (the SSG's Application
// Slot Calculation): PROPORTIONATE by their pending counts, EQUAL evenly.
// Profiles with nothing pending get nothing; the largest remainders get
// the leftover slots (ties by profile name), so the shares sum to
// min(n, total pending) and no profile gets more than it has pending.
func allocate(n int, pending map[string]int, mode string) map[string]int {
	names := make([]string, 0, len(pending))
	total := 0
	for p, c := range pending {
		if c > 0 {
			names = append(names, p)
			total += c
		}
	}
	slices.Sort(names)
	out := make(map[string]int, len(names))
	if n <= 0 || total == 0 {
		return out
	}
	n = min(n, total)
	type rem struct {
		name string
		frac int // remainder numerator
	}
	rems := make([]rem, 0, len(names))
	given := 0
	for _, p := range names {
		var share, frac int
		if mode == pacing.SlotsEqual {
			share, frac = n/len(names), n%len(names)
			if frac > 0 {
				frac = 1 // every profile is equally entitled to a leftover
			}
		} else {
			share, frac = n*pending[p]/total, n*pending[p]%total
		}
		share = min(share, pending[p])
		out[p] = share
		given += share
		rems = append(rems, rem{p, frac})
	}
	// Hand out what is left: first to profiles that got nothing (so a small
	// profile is never starved by a large one), then by largest remainder,
	// then to whoever still has pending requests (a capped EQUAL share
	// frees slots).
	slices.SortStableFunc(rems, func(a, b rem) int {
		if za, zb := out[a.name] == 0, out[b.name] == 0; za != zb {
			if za {
				return -1
			}
			return 1
		}
		return b.frac - a.frac
	})
	for given < n {
		progress := false
		for _, r := range rems {
			if given == n {
				break
			}
			if out[r.name] < pending[r.name] {
				out[r.name]++
				given++
				progress = true
			}
		}
		if !progress {
			break
		}
	}
	maps.DeleteFunc(out, func(_ string, v int) bool { return v == 0 })
	return out
}

// pick chooses up to n due requests of one profile from candidates, which
// are in the queue order (NextRetryTime, then least TTL remaining, then
// most attempts). With equalNewOld it alternates between new requests (no
// attempt made) and retries, so a fetch takes as many of each as it can;
// when one kind runs out the other fills the rest.
func pick(candidates []fsm.Queued, n int, equalNewOld bool) []fsm.Queued {
	if n <= 0 {
		return nil
	}
	if !equalNewOld {
		return candidates[:min(n, len(candidates))]
	}
	var fresh, retry []fsm.Queued
	for _, r := range candidates {
		if r.AttemptsMade == 0 {
			fresh = append(fresh, r)
		} else {
			retry = append(retry, r)
		}
	}
	out := make([]fsm.Queued, 0, min(n, len(candidates)))
	for len(out) < n && (len(fresh) > 0 || len(retry) > 0) {
		// Take the kind we have taken fewer of (new first on a tie).
		takeFresh := len(fresh) > 0 && (len(retry) == 0 || countNew(out)*2 <= len(out))
		if takeFresh {
			out, fresh = append(out, fresh[0]), fresh[1:]
		} else {
			out, retry = append(out, retry[0]), retry[1:]
		}
	}
	return out
}

func countNew(rs []fsm.Queued) int {
	n := 0
	for _, r := range rs {
		if r.AttemptsMade == 0 {
			n++
		}
	}
	return n
}
