package dialer

import (
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

func TestNextRetry(t *testing.T) {
	now := time.UnixMilli(1_000_000_000)
	p := retryPolicy{nextRetryInterval: 10 * time.Second, interruptedDelay: 2 * time.Second}
	busy := &fsmpb.Attempt{Outcome: fsmpb.OutcomeClass_OUTCOME_BUSY}
	noAnswer := &fsmpb.Attempt{Outcome: fsmpb.OutcomeClass_OUTCOME_TEMPORARY}
	req := func(made, maxA uint32, ttlLeft time.Duration, hist ...*fsmpb.Attempt) *fsmpb.Request {
		return &fsmpb.Request{AttemptsMade: made, MaxAttempts: maxA, ExpiresUnixMs: now.Add(ttlLeft).UnixMilli(), Attempts: hist}
	}
	for _, tc := range []struct {
		name string
		r    *fsmpb.Request
		c    fsmpb.OutcomeClass
		want time.Duration
	}{
		{"internal uses NextRetryInterval", req(0, 3, time.Hour), fsmpb.OutcomeClass_OUTCOME_INTERNAL, 10 * time.Second},
		{"internal capped at expiry", req(0, 3, 4*time.Second), fsmpb.OutcomeClass_OUTCOME_INTERNAL, 4 * time.Second},
		{"interrupted", req(1, 3, time.Hour), fsmpb.OutcomeClass_OUTCOME_INTERRUPTED, 2 * time.Second},
		// 2 attempts left in 90 min: gaps of 30 min.
		{"no answer divides the TTL equally", req(1, 3, 90*time.Minute, noAnswer), fsmpb.OutcomeClass_OUTCOME_TEMPORARY, 30 * time.Minute},
		{"no answer, one attempt left", req(4, 5, 10*time.Minute, noAnswer), fsmpb.OutcomeClass_OUTCOME_TEMPORARY, 5 * time.Minute},
		{"first busy retries soon", req(1, 10, 24*time.Hour), fsmpb.OutcomeClass_OUTCOME_BUSY, 15 * time.Second},
		{"second busy doubles", req(2, 10, 24*time.Hour, busy), fsmpb.OutcomeClass_OUTCOME_BUSY, 30 * time.Second},
		{"fourth busy", req(4, 10, 24*time.Hour, busy, noAnswer, busy, busy), fsmpb.OutcomeClass_OUTCOME_BUSY, 120 * time.Second},
		// 9 busy outcomes would be 15s×2^8 = 64 min, more than the equal share (8h/3).
		{"busy capped by the equal share", req(8, 10, 3*time.Hour, busy, busy, busy, busy, busy, busy, busy, busy), fsmpb.OutcomeClass_OUTCOME_BUSY, time.Hour},
		{"busy with little TTL left", req(1, 3, 9*time.Second), fsmpb.OutcomeClass_OUTCOME_BUSY, 3 * time.Second},
		{"success: no retry", req(1, 3, time.Hour), fsmpb.OutcomeClass_OUTCOME_SUCCESS, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.nextRetry(tc.r, tc.c, now).Sub(now); got != tc.want {
				t.Fatalf("next retry in %s, want %s", got, tc.want)
			}
		})
	}
}

// The retries of a request that never answers stay inside its TTL, so every
// attempt is made (none is lost to the TTL ending first).
func TestNoAnswerRetriesFitTheTTL(t *testing.T) {
	p := retryPolicy{nextRetryInterval: 10 * time.Second}
	for _, maxA := range []uint32{1, 2, 3, 7, 20} {
		now := time.UnixMilli(0)
		r := &fsmpb.Request{MaxAttempts: maxA, ExpiresUnixMs: time.Hour.Milliseconds()}
		for r.AttemptsMade < maxA {
			r.AttemptsMade++
			if r.AttemptsMade == maxA {
				break
			}
			next := p.nextRetry(r, fsmpb.OutcomeClass_OUTCOME_TEMPORARY, now)
			if !next.Before(time.UnixMilli(r.ExpiresUnixMs)) || !next.After(now) {
				t.Fatalf("max %d, attempt %d at %s: next retry %s is not inside the TTL", maxA, r.AttemptsMade, now, next)
			}
			now = next
		}
	}
}
