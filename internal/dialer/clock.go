package dialer

import "time"

// Clock is the engine's source of the current time: every time the engine
// compares with a stored one (a request's next retry and TTL, calling
// windows, frequency caps, attempt starts) comes from it. The engine's
// timers still run on real time, so a Clock must advance at the real
// rate: the real clock, or the real clock shifted by a fixed offset
// (OffsetClock), which tests use to put "now" at a chosen wall time. The
// cluster must stamp its entries with the same clock (cluster.Config.Now),
// or the engine and the state machine disagree on what is due.
type Clock interface {
	Now() time.Time
}

// RealClock is time.Now.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// OffsetClock is the real clock shifted by a fixed offset (test only:
// config dialer.test_clock_offset).
type OffsetClock time.Duration

// Now returns time.Now() plus the offset.
func (c OffsetClock) Now() time.Time { return time.Now().Add(time.Duration(c)) }
