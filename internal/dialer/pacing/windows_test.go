package pacing

import (
	"math"
	"testing"
)

func TestWindowLimits(t *testing.T) {
	for _, tc := range []struct {
		caps          float64
		sec, per100ms int
	}{
		{0, 0, 0},
		{-1, 0, 0},
		{math.NaN(), 0, 0},
		{0.1, 1, 2},      // floor(0.1)+1, ceil(0.0125)+1
		{0.5, 1, 2},      // the bench's slowest target
		{7.5, 8, 2},      // ceil(0.9375)+1
		{10, 11, 3},      // ceil(1.25)+1
		{50, 51, 8},      // ceil(6.25)+1
		{55, 56, 8},      // ceil(6.875)+1
		{200, 201, 26},   // exactly X/8+1
		{333.3, 334, 43}, // ceil(41.6625)+1
		{500, 501, 64},   // ceil(62.5)+1
		{1000, 1001, 126},
		{5000, 5001, 626},
	} {
		sec, per100ms := WindowLimits(tc.caps)
		if sec != tc.sec || per100ms != tc.per100ms {
			t.Errorf("WindowLimits(%g) = %d, %d; want %d, %d", tc.caps, sec, per100ms, tc.sec, tc.per100ms)
		}
	}
}
