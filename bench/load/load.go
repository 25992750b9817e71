// Package load drives closed-loop load for the benchmarks: workers that each
// send the next call as soon as the previous one returns, with a warm-up that
// is not measured, exact latency quantiles over the measured window, and
// failures counted by kind. The create benchmark (bench/cmd/createbench) and
// the harness's ingest and read scenarios (build/bench) share it; Pool
// holds the gRPC connections the create load spreads over the nodes.
package load

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/client"
)

// Worker is one closed-loop worker, handed to every call it makes.
type Worker struct {
	ID  int
	Seq int64 // calls made by this worker so far (0 for the first)
	// failures of single records inside successful calls, by code
	failures map[string]int64
}

// Fail counts one record of the current call that failed with code (a
// bulk call can succeed while some of its records fail).
func (w *Worker) Fail(code string) { w.failures[code]++ }

// Op is one call. It returns how many records the call stored or read
// successfully; an error fails the whole call.
type Op func(ctx context.Context, w *Worker) (records int, err error)

// Options shape a run.
type Options struct {
	Workers  int
	Warmup   time.Duration // load that is not measured
	Duration time.Duration // measured
	// CallTimeout bounds one call (default 10s).
	CallTimeout time.Duration
}

// Result is what the workers saw. Calls, Records and Latencies count the
// calls that completed inside the measured window; Acked, Errors and
// ItemFailures the whole run, warm-up included.
type Result struct {
	Seconds      float64
	Calls        int64
	Records      int64
	Latencies    []time.Duration // sorted
	Acked        int64
	Errors       map[string]int64 // failed calls by gRPC code or HTTP status
	ItemFailures map[string]int64
}

// CallsPerSec over the measured window.
func (r *Result) CallsPerSec() float64 { return perSec(r.Calls, r.Seconds) }

// RecordsPerSec over the measured window.
func (r *Result) RecordsPerSec() float64 { return perSec(r.Records, r.Seconds) }

func perSec(n int64, s float64) float64 {
	if s <= 0 {
		return 0
	}
	return float64(n) / s
}

// Quantile of the measured latencies (nearest rank); 0 without calls.
func (r *Result) Quantile(q float64) time.Duration { return Quantile(r.Latencies, q) }

// Quantile of sorted durations (nearest rank).
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// HTTPError is a non-2xx answer; its kind is "HTTP <code>".
type HTTPError struct{ Code int }

func (e *HTTPError) Error() string { return fmt.Sprintf("HTTP %d", e.Code) }

// Kind names an error for counting: "HTTP <status>" for a REST answer, the
// gRPC code, or "transport" for anything else.
func Kind(err error) string {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Error()
	}
	// Before the gRPC status: a *client.Error has one too.
	var ce *client.Error
	if errors.As(err, &ce) {
		return fmt.Sprintf("HTTP %d", ce.StatusCode)
	}
	if s, ok := status.FromError(err); ok {
		return s.Code().String()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return codes.DeadlineExceeded.String()
	}
	return "transport"
}

// Run drives o.Workers workers calling op for o.Warmup+o.Duration (less
// when ctx ends first) and merges what they saw.
func Run(ctx context.Context, o Options, op Op) *Result {
	if o.CallTimeout <= 0 {
		o.CallTimeout = 10 * time.Second
	}
	start := time.Now()
	measureFrom := start.Add(o.Warmup)
	end := measureFrom.Add(o.Duration)
	type stats struct {
		lat            []time.Duration
		calls, records int64
		acked          int64
		errors         map[string]int64
		w              Worker
	}
	all := make([]*stats, o.Workers)
	var wg sync.WaitGroup
	for i := range o.Workers {
		st := &stats{errors: map[string]int64{}, w: Worker{ID: i, failures: map[string]int64{}}}
		all[i] = st
		wg.Go(func() {
			for ; ctx.Err() == nil && time.Now().Before(end); st.w.Seq++ {
				cctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
				t0 := time.Now()
				n, err := op(cctx, &st.w)
				t1 := time.Now()
				cancel()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					st.errors[Kind(err)]++
					time.Sleep(10 * time.Millisecond) // do not spin against an unavailable cluster
					continue
				}
				st.acked += int64(n)
				if !t1.Before(measureFrom) && t1.Before(end) {
					st.calls++
					st.records += int64(n)
					st.lat = append(st.lat, t1.Sub(t0))
				}
			}
		})
	}
	wg.Wait()
	measured := o.Duration
	if now := time.Now(); now.Before(end) { // cut short
		measured = max(now.Sub(measureFrom), 0)
	}
	r := &Result{Seconds: measured.Seconds(), Errors: map[string]int64{}, ItemFailures: map[string]int64{}}
	for _, st := range all {
		r.Latencies = append(r.Latencies, st.lat...)
		r.Calls += st.calls
		r.Records += st.records
		r.Acked += st.acked
		for k, v := range st.errors {
			r.Errors[k] += v
		}
		for k, v := range st.w.failures {
			r.ItemFailures[k] += v
		}
	}
	slices.Sort(r.Latencies)
	return r
}

// Pool holds a few gRPC client connections per node, so that the load is
// not funnelled through one HTTP/2 connection per node.
type Pool struct {
	conns []*grpc.ClientConn
	// Clients[node][conn]
	Clients [][]pb.RequestServiceClient
}

// DialPool connects perNode plaintext connections to each address.
func DialPool(addrs []string, perNode int) (*Pool, error) {
	p := &Pool{Clients: make([][]pb.RequestServiceClient, len(addrs))}
	for i, a := range addrs {
		for range perNode {
			cc, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				p.Close()
				return nil, fmt.Errorf("dial %s: %w", a, err)
			}
			p.conns = append(p.conns, cc)
			p.Clients[i] = append(p.Clients[i], pb.NewRequestServiceClient(cc))
		}
	}
	return p, nil
}

// Client is the client worker w uses for its call k: calls rotate over
// the nodes (so followers forward, as real clients' calls would), each
// worker keeping to one connection per node.
func (p *Pool) Client(w, k int) pb.RequestServiceClient {
	nodes := len(p.Clients)
	conn := (w / nodes) % len(p.Clients[0])
	return p.Clients[(w+k)%nodes][conn]
}

// Close closes every connection.
func (p *Pool) Close() {
	for _, cc := range p.conns {
		_ = cc.Close()
	}
}

// CreateOp creates batch requests per call through the pool's gRPC
// clients (RequestService.CreateRequests), rotating over the nodes; each
// request notifies notifyURL.
func CreateOp(p *Pool, tenant string, batch int, notifyURL string) Op {
	return func(ctx context.Context, w *Worker) (int, error) {
		req := &pb.CreateRequestsRequest{Tenant: tenant, Requests: make([]*pb.RequestSpec, batch)}
		prefix := "w" + strconv.Itoa(w.ID) + "-"
		for i := range req.Requests {
			seq := w.Seq*int64(batch) + int64(i)
			req.Requests[i] = &pb.RequestSpec{
				Token:           prefix + strconv.FormatInt(seq, 10),
				IvrProfile:      "Application",
				Telnum:          Telnum(w.ID, seq),
				NotificationUrl: notifyURL,
				MaxAttempts:     3,
				TimeToLive:      "3600s",
			}
		}
		resp, err := p.Client(w.ID, int(w.Seq)).CreateRequests(ctx, req)
		if err != nil {
			return 0, err
		}
		ok := 0
		for _, r := range resp.GetResults() {
			if r.GetOk() {
				ok++
			} else {
				w.Fail(r.GetCode())
			}
		}
		return ok, nil
	}
}

// Telnum is a made-up number for worker w's seq-th request.
func Telnum(w int, seq int64) string {
	return strconv.FormatInt(15_550_000_000+(int64(w)*1_000_003+seq)%10_000_000, 10)
}

// Counts prints failure counts by key, sorted: "Unavailable=3 503=1", or
// "none".
func Counts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
