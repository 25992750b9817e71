package main

import (
	"slices"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/bench/wire"
)

func TestCompareWire(t *testing.T) {
	const ms = int64(time.Millisecond)
	// 100/s for 10 s on the wire; mediasim stamps each 1 ms later, and 30
	// ms later around 5 s (a stall).
	var onWire, atSim []int64
	for i := range 1000 {
		w := int64(i) * 10 * ms
		lag := ms
		if w >= 4990*ms && w < 5010*ms {
			lag = 30 * ms
		}
		onWire, atSim = append(onWire, w), append(atSim, w+lag)
	}
	res := &wire.Result{Packets: 1000, Streams: 1}
	from, to := 2*time.Second.Nanoseconds()+5*ms, 5*time.Second.Nanoseconds()+5*ms
	w := compareWire(onWire, atSim, from, to, res)
	// None in flight at 2.005 s; at 5.005 s the calls sent at 4.990 and
	// 5.000 s are.
	if w.OnWire != 300 || w.AtMediasim != 298 || w.InFlightStart != 0 || w.InFlightEnd != 2 {
		t.Fatalf("%+v", w)
	}
	if w.LagP50 != 1 || w.LagMax != 30 {
		t.Fatalf("lags %+v", w)
	}
	if !w.agrees(onWire, from, to) {
		t.Fatal("an honest capture disagrees")
	}

	// The wire missed a call mediasim got: in flight below zero.
	missed := slices.Delete(slices.Clone(onWire), 100, 101)
	if w := compareWire(missed, atSim, from, to, res); w.agrees(missed, from, to) {
		t.Fatalf("a missed call agrees: %+v", w)
	}
	// The wire counted the first two seconds' calls twice: more in flight
	// than the wire carried in the second before.
	twice := slices.Clone(onWire)
	twice = append(twice, onWire[:200]...)
	slices.Sort(twice)
	if w := compareWire(twice, atSim, from, to, res); w.agrees(twice, from, to) {
		t.Fatalf("calls counted twice agree: %+v", w)
	}
}
