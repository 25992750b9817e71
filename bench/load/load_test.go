package load

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/seed-7bfc04c2/dialtone/client"
)

func TestRunCountsMeasuredCallsAndFailures(t *testing.T) {
	op := func(ctx context.Context, w *Worker) (int, error) {
		time.Sleep(time.Millisecond)
		switch {
		case w.ID == 0 && w.Seq%10 == 0:
			return 0, status.Error(codes.Unavailable, "no leader")
		case w.ID == 1 && w.Seq%10 == 0:
			return 0, &HTTPError{Code: 503}
		}
		w.Fail("FULL") // one record of each call fails
		return 2, nil
	}
	r := Run(context.Background(), Options{Workers: 4, Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond}, op)
	if r.Calls == 0 || r.Records != 2*r.Calls || int64(len(r.Latencies)) != r.Calls || r.Acked < r.Records {
		t.Fatalf("calls %d records %d latencies %d acked %d", r.Calls, r.Records, len(r.Latencies), r.Acked)
	}
	if r.Errors["Unavailable"] == 0 || r.Errors["HTTP 503"] == 0 || r.ItemFailures["FULL"] < r.Calls {
		t.Fatalf("errors %v, item failures %v", r.Errors, r.ItemFailures)
	}
	if r.Seconds != 0.2 || r.CallsPerSec() != float64(r.Calls)/0.2 {
		t.Fatalf("seconds %v, calls/s %v", r.Seconds, r.CallsPerSec())
	}
	if q := r.Quantile(0.5); q < time.Millisecond || q > time.Second {
		t.Fatalf("p50 %s", q)
	}
}

func TestKind(t *testing.T) {
	for err, want := range map[error]string{
		status.Error(codes.ResourceExhausted, "x"): "ResourceExhausted",
		&HTTPError{Code: 415}:                      "HTTP 415",
		fmt.Errorf("create: %w", &client.Error{StatusCode: 503, Code: codes.Unavailable, Message: "no leader"}): "HTTP 503",
		context.DeadlineExceeded:         "DeadlineExceeded",
		errors.New("connection refused"): "transport",
	} {
		if got := Kind(err); got != want {
			t.Errorf("Kind(%v) = %q, want %q", err, got, want)
		}
	}
}

// TestRunOpenCountsFromTheIntendedTime stalls one call for 100 ms with a
// single worker at 1,000 calls/s: every call due during the stall must
// show the wait in its latency (a closed loop would record one slow call).
func TestRunOpenCountsFromTheIntendedTime(t *testing.T) {
	stalled := false
	op := func(ctx context.Context, w *Worker) (int, error) {
		if w.Seq == 100 && !stalled {
			stalled = true
			time.Sleep(100 * time.Millisecond)
		}
		return 1, nil
	}
	r := RunOpen(context.Background(), OpenOptions{Rate: 1000, Warmup: 50 * time.Millisecond, Duration: 300 * time.Millisecond, MaxInFlight: 1}, op)
	if r.Scheduled < 290 || r.Scheduled > 310 || r.Completed != r.Scheduled || r.Unfinished != 0 || len(r.Errors) != 0 {
		t.Fatalf("scheduled %d completed %d unfinished %d errors %v", r.Scheduled, r.Completed, r.Unfinished, r.Errors)
	}
	slow := 0
	for _, l := range r.Latencies {
		if l >= 20*time.Millisecond {
			slow++
		}
	}
	if slow < 50 {
		t.Fatalf("%d calls at ≥ 20 ms after a 100 ms stall at 1,000/s; p50 %s p99 %s", slow, r.Quantile(0.5), r.Quantile(0.99))
	}
	if r.AchievedPerSec() < 900 {
		t.Fatalf("achieved %.0f/s", r.AchievedPerSec())
	}
}
