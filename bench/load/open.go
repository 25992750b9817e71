package load

import (
	"context"
	"slices"
	"sync"
	"time"
)

// OpenOptions shape an open-loop run.
type OpenOptions struct {
	// Rate is the offered load in calls per second, fixed whatever the
	// answers' latency.
	Rate     float64
	Warmup   time.Duration
	Duration time.Duration
	// MaxInFlight bounds the calls under way at once (default 64: 6 ms of
	// answers at 10,000/s; 512 workers cost the generator itself enough
	// scheduling on 2 cores to show in the p99); calls due while all are
	// busy wait in a queue, their latency still counted from the time
	// they were due.
	MaxInFlight int
	CallTimeout time.Duration // default 10s
	// Drain is how long after the end calls still queued or under way may
	// finish (default 5s); later ones count as Unfinished.
	Drain time.Duration
}

// OpenResult is an open-loop run. Latencies are measured from each call's
// intended send time (start + i/Rate), not from when a worker got to it,
// so a stall shows in the latency of every call due during it instead of
// silently lowering the offered load (coordinated omission).
type OpenResult struct {
	Rate      float64 // offered
	Seconds   float64
	Scheduled int64 // calls due in the measured window
	Completed int64 // of those, answered without error (by the end of the drain)
	// InWindow: calls answered without error inside the measured window
	// (whenever they were due): the rate the node sustained.
	InWindow int64
	// Unfinished: due in the measured window, not answered by the end of
	// the drain.
	Unfinished int64
	Latencies  []time.Duration // sorted; completed calls of the window
	// Late: how late the generator itself handed each call of the window
	// to its workers (sorted): its own scheduling stalls, which count in
	// Latencies as if the node had caused them.
	Late   []time.Duration
	Errors map[string]int64
}

// AchievedPerSec is the calls answered inside the measured window per
// second: below the offered rate when the node falls behind.
func (r *OpenResult) AchievedPerSec() float64 { return perSec(r.InWindow, r.Seconds) }

// Quantile of the measured latencies (nearest rank).
func (r *OpenResult) Quantile(q float64) time.Duration { return Quantile(r.Latencies, q) }

// RunOpen offers o.Rate calls per second of op for o.Warmup+o.Duration,
// each due at start + i/Rate. w.ID of the Worker is the worker that made
// the call, w.Seq the call's number in the schedule.
func RunOpen(ctx context.Context, o OpenOptions, op Op) *OpenResult {
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 64
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 10 * time.Second
	}
	if o.Drain <= 0 {
		o.Drain = 5 * time.Second
	}
	start := time.Now()
	measureFrom := start.Add(o.Warmup)
	end := measureFrom.Add(o.Duration)
	interval := time.Duration(float64(time.Second) / o.Rate)
	total := int64((o.Warmup + o.Duration) / interval)

	type job struct {
		seq int64
		due time.Time
	}
	jobs := make(chan job, 1<<16)
	drainCtx, cancel := context.WithDeadline(ctx, end.Add(o.Drain))
	defer cancel()

	type stats struct {
		lat       []time.Duration
		completed int64
		inWindow  int64
		errors    map[string]int64
	}
	all := make([]*stats, o.MaxInFlight)
	var wg sync.WaitGroup
	for i := range o.MaxInFlight {
		st := &stats{errors: map[string]int64{}}
		all[i] = st
		wg.Go(func() {
			w := &Worker{ID: i, failures: map[string]int64{}}
			for j := range jobs {
				if drainCtx.Err() != nil {
					continue // past the drain: left unfinished
				}
				w.Seq = j.seq
				cctx, cancelCall := context.WithTimeout(drainCtx, o.CallTimeout)
				_, err := op(cctx, w)
				t1 := time.Now()
				cancelCall()
				measured := !j.due.Before(measureFrom) && j.due.Before(end)
				if err != nil {
					if drainCtx.Err() == nil {
						st.errors[Kind(err)]++
					}
					continue
				}
				if !t1.Before(measureFrom) && t1.Before(end) {
					st.inWindow++
				}
				if measured {
					st.completed++
					st.lat = append(st.lat, t1.Sub(j.due))
				}
			}
		})
	}
	// The schedule: wake at each due time (or late, then send every call
	// already due at once, each with its own due time).
	var scheduled int64
	var late []time.Duration
	for i := int64(0); i < total && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if !due.Before(measureFrom) {
			scheduled++
		}
		select {
		case jobs <- job{seq: i, due: due}:
			if !due.Before(measureFrom) && due.Before(end) {
				late = append(late, time.Since(due))
			}
		case <-drainCtx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	measured := o.Duration
	if now := time.Now(); now.Before(end) {
		measured = max(now.Sub(measureFrom), 0)
	}
	r := &OpenResult{Rate: o.Rate, Seconds: measured.Seconds(), Scheduled: scheduled, Errors: map[string]int64{}}
	var errs int64
	for _, st := range all {
		r.Latencies = append(r.Latencies, st.lat...)
		r.Completed += st.completed
		r.InWindow += st.inWindow
		for k, v := range st.errors {
			r.Errors[k] += v
			errs += v
		}
	}
	r.Unfinished = max(r.Scheduled-r.Completed-errs, 0)
	slices.Sort(r.Latencies)
	slices.Sort(late)
	r.Late = late
	return r
}
