// Package report turns what the benchmark harness recorded into figures
// and charts: attempt rates from the media platform's call start times
// (achieved rate, error against target, the largest count in any one-second
// window, inter-attempt intervals, dialling gaps), series for charts, and
// SVG charts drawn with gonum/plot.
//
// Times are Unix nanoseconds (int64), as mediasim's /starts answers them.
package report

import (
	"math"
	"slices"
	"sort"
	"time"
)

// Between returns the part of sorted starts in [from, to).
func Between(starts []int64, from, to int64) []int64 {
	i := sort.Search(len(starts), func(k int) bool { return starts[k] >= from })
	j := sort.Search(len(starts), func(k int) bool { return starts[k] >= to })
	return starts[i:j]
}

// MaxInWindow is the largest number of sorted starts inside any window of
// length w (a sliding window: [t, t+w) for every t).
func MaxInWindow(starts []int64, w int64) int {
	best, i := 0, 0
	for j := range starts {
		for starts[j]-starts[i] >= w {
			i++
		}
		best = max(best, j-i+1)
	}
	return best
}

// Quantile of sorted values (nearest rank); 0 for none.
func Quantile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Intervals are the sorted gaps between consecutive sorted starts.
func Intervals(starts []int64) []int64 {
	if len(starts) < 2 {
		return nil
	}
	out := make([]int64, len(starts)-1)
	for i := 1; i < len(starts); i++ {
		out[i-1] = starts[i] - starts[i-1]
	}
	slices.Sort(out)
	return out
}

// Rate describes attempts against a target rate over a window.
type Rate struct {
	Target  float64 `json:"target_per_sec"`
	Seconds float64 `json:"seconds"`
	Count   int     `json:"attempts"`
	// Achieved = Count / Seconds; ErrorPct = (Achieved − Target) / Target.
	Achieved float64 `json:"achieved_per_sec"`
	ErrorPct float64 `json:"error_pct"`
	// BinMAEPct is the mean absolute error of the whole seconds' counts
	// against the target, in percent of it.
	BinMAEPct float64 `json:"second_mean_abs_error_pct"`
	// MaxWindow is the largest count in any one-second sliding window,
	// MaxWindow100ms in any 100 ms one (the dialer promises floor(X)+1 and
	// ceil(X/8)+1 at CAPS X, pacing.WindowLimits, docs/dialer.md).
	MaxWindow      int `json:"max_in_any_1s_window"`
	MaxWindow100ms int `json:"max_in_any_100ms_window"`
	// Inter-attempt intervals, milliseconds.
	IntervalP50 float64 `json:"interval_p50_ms"`
	IntervalP99 float64 `json:"interval_p99_ms"`
	IntervalMax float64 `json:"interval_max_ms"`
}

// AnalyzeRate measures the sorted starts inside [from, to) against target
// attempts per second.
func AnalyzeRate(starts []int64, from, to int64, target float64) Rate {
	in := Between(starts, from, to)
	r := Rate{Target: target, Seconds: float64(to-from) / 1e9, Count: len(in)}
	if r.Seconds > 0 {
		r.Achieved = float64(r.Count) / r.Seconds
	}
	if target > 0 {
		r.ErrorPct = (r.Achieved - target) / target * 100
		secs := int((to - from) / int64(time.Second))
		var sum float64
		for k := range secs {
			a := from + int64(k)*int64(time.Second)
			n := len(Between(in, a, a+int64(time.Second)))
			sum += math.Abs(float64(n) - target)
		}
		if secs > 0 {
			r.BinMAEPct = sum / float64(secs) / target * 100
		}
	}
	r.MaxWindow = MaxInWindow(in, int64(time.Second))
	r.MaxWindow100ms = MaxInWindow(in, int64(100*time.Millisecond))
	iv := Intervals(in)
	r.IntervalP50 = float64(Quantile(iv, 0.50)) / 1e6
	r.IntervalP99 = float64(Quantile(iv, 0.99)) / 1e6
	r.IntervalMax = float64(Quantile(iv, 1)) / 1e6
	return r
}

// Point is one (x, y) of a series; x in seconds since the run's start.
type Point struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// RateSeries counts the sorted starts in bins of width bin from origin to
// end and returns each bin's rate per second, at the bin's end.
func RateSeries(starts []int64, origin, end int64, bin time.Duration) []Point {
	var out []Point
	w := int64(bin)
	for a := origin; a < end; a += w {
		n := len(Between(starts, a, a+w))
		out = append(out, Point{X: float64(a+w-origin) / 1e9, Y: float64(n) / bin.Seconds()})
	}
	return out
}

// Gap is the dialling pause around an event (a leader kill).
type Gap struct {
	At int64 `json:"at_unix_ns"`
	// LastBefore and FirstAfter are the starts around At (0 when none).
	LastBefore int64 `json:"last_before_unix_ns"`
	FirstAfter int64 `json:"first_after_unix_ns"`
	// Resumed is FirstAfter − At: how long after the event dialling
	// resumed; Gap is FirstAfter − LastBefore (seconds; −1 when dialling
	// never resumed).
	Resumed float64 `json:"resumed_after_s"`
	Gap     float64 `json:"gap_s"`
}

// GapAt finds the pause in the sorted starts at instant at. Starts in the
// first skip after at are ignored (calls already on their way before the
// event, e.g. a dying leader's last dials still reaching the platform).
func GapAt(starts []int64, at int64, skip time.Duration) Gap {
	g := Gap{At: at, Resumed: -1, Gap: -1}
	i := sort.Search(len(starts), func(k int) bool { return starts[k] >= at })
	if i > 0 {
		g.LastBefore = starts[i-1]
	}
	j := sort.Search(len(starts), func(k int) bool { return starts[k] >= at+int64(skip) })
	if j < len(starts) {
		g.FirstAfter = starts[j]
		g.Resumed = float64(g.FirstAfter-at) / 1e9
		if g.LastBefore != 0 {
			g.Gap = float64(g.FirstAfter-g.LastBefore) / 1e9
		}
	}
	return g
}
