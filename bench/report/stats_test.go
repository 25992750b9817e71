package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const sec = int64(time.Second)

// even returns n starts every 1/rate s from t0.
func even(t0 int64, rate float64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = t0 + int64(float64(i)*float64(time.Second)/rate)
	}
	return out
}

func TestMaxInWindow(t *testing.T) {
	for _, tc := range []struct {
		name   string
		starts []int64
		want   int
	}{
		{"none", nil, 0},
		{"one", []int64{5}, 1},
		{"even 100/s", even(0, 100, 1000), 100},
		// 10 at second boundary 0.99..1.0 and 10 at 1.0..1.01: a sliding
		// window sees all 20 where fixed seconds see 10 each.
		{"burst across a boundary", append(even(sec-sec/100, 1000, 10), even(sec, 1000, 10)...), 20},
		{"exactly one second apart is two windows", []int64{0, sec}, 1},
	} {
		if got := MaxInWindow(tc.starts, sec); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestAnalyzeRate(t *testing.T) {
	starts := even(0, 200, 200*10) // 10 s at 200/s
	r := AnalyzeRate(starts, 2*sec, 8*sec, 200)
	if r.Count != 1200 || r.Achieved != 200 || r.ErrorPct != 0 || r.BinMAEPct != 0 || r.MaxWindow != 200 || r.MaxWindow100ms != 20 {
		t.Fatalf("even: %+v", r)
	}
	if r.IntervalP50 != 5 || r.IntervalP99 != 5 {
		t.Fatalf("intervals: %+v", r)
	}
	// Half the rate: -50%.
	r = AnalyzeRate(even(0, 100, 1000), 0, 10*sec, 200)
	if r.Achieved != 100 || r.ErrorPct != -50 || r.BinMAEPct != 50 {
		t.Fatalf("half: %+v", r)
	}
}

func TestRateSeriesAndGap(t *testing.T) {
	starts := append(even(0, 10, 20), even(3*sec, 10, 20)...) // 0..2s, pause, 3..5s
	pts := RateSeries(starts, 0, 5*sec, time.Second)
	want := []float64{10, 10, 0, 10, 10}
	if len(pts) != len(want) {
		t.Fatalf("%v", pts)
	}
	for i, p := range pts {
		if p.Y != want[i] || p.X != float64(i+1) {
			t.Fatalf("bin %d: %+v", i, p)
		}
	}
	g := GapAt(starts, 2*sec, 0)
	if g.Resumed != 1 || g.Gap < 1.09 || g.Gap > 1.11 {
		t.Fatalf("gap: %+v", g)
	}
	if g := GapAt(starts, 6*sec, 0); g.Resumed != -1 {
		t.Fatalf("never resumed: %+v", g)
	}
}

func TestChartSaves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.svg")
	c := Chart{Title: "attempts/s", XLabel: "s", YLabel: "/s",
		Series:  []Series{{Name: "achieved", Points: []Point{{1, 10}, {2, 12}}}, {Name: "target", Points: []Point{{1, 10}, {2, 10}}, Dashed: true}},
		Markers: []Marker{{X: 1.5, Name: "kill n1"}}}
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), "<svg") || !strings.Contains(string(b), "achieved") {
		t.Fatalf("not an SVG with the legend: %v %.200s", err, b)
	}
}
