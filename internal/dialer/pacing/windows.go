package pacing

import "math"

// WindowLimits are the most sends the dialer's wire pacer lets into a
// sliding window at CAPS X = caps: perSecond in any one second, per100ms
// in any 100 ms (docs/dialer.md, "CAPS: paced at the send"). These are
// its promises at the far end: the pacer (internal/dialer/pacer.go) holds
// a send back until both windows have room for it, and the tests and the
// benchmark check the same figures. For caps ≤ 0 (no limit) both are 0.
//
//   - perSecond = floor(X) + 1: the rate, with one send of slack so that a
//     sender late by a constant amount does not add up its lateness.
//   - per100ms = ceil(X/8) + 1: a quarter more than an even pace puts in
//     100 ms (X/10), plus one. Why a quarter: the pace stays even (no
//     bursts at second boundaries; any 100 ms holds at most a quarter more
//     than its share), yet after a stall (a late goroutine wake-up) the
//     slots missed within the 50 ms catch-up are made up at up to a
//     quarter above the rate. With ceil(X/10) + 1 they were made up one
//     extra per 100 ms only, and a loaded machine fell short of the rate
//     (the decision and its measurements: docs/dialer.md, "Why
//     ceil(X/8) + 1").
func WindowLimits(caps float64) (perSecond, per100ms int) {
	if !(caps > 0) {
		return 0, 0
	}
	return int(math.Floor(caps)) + 1, int(math.Ceil(caps/8)) + 1
}
