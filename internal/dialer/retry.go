package dialer

import (
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// BusyRetryBase is the first retry delay after a busy or non-permanent SIT
// outcome; each further busy outcome of the same request doubles it.
const BusyRetryBase = 15 * time.Second

// retryPolicy computes when a request whose attempt just ended is retried
// (the SSG's NextRetryTime). The state machine decides whether there is a
// retry at all (attempts and TTL left); this only says when.
type retryPolicy struct {
	nextRetryInterval time.Duration // internal failures
	interruptedDelay  time.Duration // attempts a previous leader left in progress
}

// nextRetry returns the retry time of r after an attempt that ended at now
// with outcome class c. r is the record as stored before the result is
// applied: AttemptsMade already counts the attempt that ended (unless it
// does not count, for internal and interrupted outcomes).
//
//   - internal: now + NextRetryInterval (the attempt is not counted).
//   - interrupted: now + interrupted_retry_delay.
//   - temporary (no answer, answering machine, fax): the remaining TTL is
//     divided equally among the remaining attempts: now + (expires − now) /
//     (remaining + 1), so the remaining attempts are evenly spread and the
//     last still falls inside the TTL.
//   - busy and non-permanent SIT: close together first, spread out later:
//     now + min(BusyRetryBase × 2^(b−1), (expires − now) / (remaining + 1)),
//     where b counts the busy outcomes of the request so far, this one
//     included.
//
// Every retry is capped at the expiry, so a request whose TTL runs out
// while it waits is due (and ended) at its expiry, not later.
func (p retryPolicy) nextRetry(r *fsmpb.Request, c fsmpb.OutcomeClass, now time.Time) time.Time {
	expires := time.UnixMilli(r.ExpiresUnixMs)
	remainingTTL := max(expires.Sub(now), 0)
	remaining := int64(0)
	if r.MaxAttempts > r.AttemptsMade {
		remaining = int64(r.MaxAttempts - r.AttemptsMade)
	}
	equalShare := remainingTTL / time.Duration(remaining+1)
	var d time.Duration
	switch c {
	case fsmpb.OutcomeClass_OUTCOME_INTERNAL:
		d = p.nextRetryInterval
	case fsmpb.OutcomeClass_OUTCOME_INTERRUPTED:
		d = p.interruptedDelay
	case fsmpb.OutcomeClass_OUTCOME_TEMPORARY:
		d = equalShare
	case fsmpb.OutcomeClass_OUTCOME_BUSY:
		b := 1 // this outcome
		for _, a := range r.Attempts {
			if a.Outcome == fsmpb.OutcomeClass_OUTCOME_BUSY {
				b++
			}
		}
		d = BusyRetryBase
		for i := 1; i < b && d < equalShare; i++ {
			d *= 2
		}
		d = min(d, equalShare)
	default: // finished: no retry
		return now
	}
	at := now.Add(d)
	if at.After(expires) {
		at = expires
	}
	return at
}
