package pacing

import "math"

// WindowLimits are the most sends the dialer's wire pacer lets into a
// sliding window at CAPS caps: perSecond in any one second, per100ms in
// any 100 ms (docs/dialer.md, "CAPS pacing"). These are its promises at
// the far end, and the pacer (internal/dialer/pacer.go) holds a send back
// until both windows have room for it; the tests and the benchmark check
// the same figures. For caps ≤ 0 (no limit) both are 0.
//
//   - perSecond = floor(X) + 1: the rate, with one send of slack so that a
//     sender late by a constant amount does not add up its lateness.
//   - per100ms = ceil(X/8) + 1: a quarter more than an even pace puts in
//     100 ms (X/10), plus one. The pace stays even (no bursts at second
//     boundaries; any 100 ms holds at most a quarter more than its share),
//     and after a stall (a late goroutine wake-up) the slots missed within
//     the 50 ms catch-up are made up at up to a quarter above the rate.
//     With ceil(X/10) + 1 they were made up one extra per 100 ms only, and
//     a loaded machine achieved 0.95–0.96 of CAPS 5,000 on the wire; with
//     ceil(X/8) + 1, 0.98–0.99, the one-second limit still held
//     (BENCHMARKS.md, issue 18 session 6).
func WindowLimits(caps float64) (perSecond, per100ms int) {
	if !(caps > 0) {
		return 0, 0
	}
	return int(math.Floor(caps)) + 1, int(math.Ceil(caps/8)) + 1
}
