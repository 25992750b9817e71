package main

import (
	"context"
	"time"

	"github.com/seed-7bfc04c2/dialtone/bench/load"
)

// scenario is one load shape.
type scenario struct {
	Name    string
	Writers int
	Batch   int
}

// runScenario drives sc.Writers closed-loop writers (bench/load) for
// warmup+duration; ctx cancels the run early (signal).
func runScenario(ctx context.Context, p *load.Pool, sc scenario, tenant string, warmup, duration, callTimeout time.Duration) *load.Result {
	return load.Run(ctx, load.Options{Workers: sc.Writers, Warmup: warmup, Duration: duration, CallTimeout: callTimeout},
		load.CreateOp(p, tenant, sc.Batch, "http://127.0.0.1:9/r"))
}
