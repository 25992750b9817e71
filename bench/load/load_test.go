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
