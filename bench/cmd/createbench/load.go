package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// pool holds a few client connections per node, so that the load is not
// funnelled through one HTTP/2 connection per node.
type pool struct {
	conns   []*grpc.ClientConn
	clients [][]pb.RequestServiceClient // [node][conn]
}

func dialPool(addrs []string, perNode int) (*pool, error) {
	p := &pool{clients: make([][]pb.RequestServiceClient, len(addrs))}
	for i, a := range addrs {
		for range perNode {
			cc, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				p.close()
				return nil, fmt.Errorf("dial %s: %w", a, err)
			}
			p.conns = append(p.conns, cc)
			p.clients[i] = append(p.clients[i], pb.NewRequestServiceClient(cc))
		}
	}
	return p, nil
}

func (p *pool) close() {
	for _, cc := range p.conns {
		_ = cc.Close()
	}
}

// scenario is one load shape.
type scenario struct {
	Name    string
	Writers int
	Batch   int
}

// writerStats is what one writer saw. Only calls that completed inside the
// measurement window count towards calls, records and latencies; acked
// counts every record acknowledged OK, warm-up and stragglers included, for
// the final correctness check.
type writerStats struct {
	latencies    []time.Duration
	calls        int64
	records      int64
	acked        int64
	errors       map[string]int64 // gRPC code of failed calls (whole run)
	itemFailures map[string]int64 // per-record FAILURE codes (whole run)
}

// runScenario drives sc.Writers closed-loop writers for warmup+duration and
// returns their merged statistics. ctx cancels the run early (signal).
func runScenario(ctx context.Context, p *pool, sc scenario, tenant string, warmup, duration, callTimeout time.Duration) (*writerStats, time.Duration) {
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(duration)
	stats := make([]*writerStats, sc.Writers)
	var wg sync.WaitGroup
	for w := range sc.Writers {
		st := &writerStats{errors: map[string]int64{}, itemFailures: map[string]int64{}}
		stats[w] = st
		wg.Go(func() { writer(ctx, p, w, sc.Batch, tenant, measureFrom, end, callTimeout, st) })
	}
	wg.Wait()
	measured := duration
	if now := time.Now(); now.Before(end) { // cut short by a signal
		measured = max(now.Sub(measureFrom), 0)
	}
	return merge(stats), measured
}

func writer(ctx context.Context, p *pool, w, batch int, tenant string, measureFrom, end time.Time, callTimeout time.Duration, st *writerStats) {
	nodes := len(p.clients)
	conn := (w / nodes) % len(p.clients[0])
	req := &pb.CreateRequestsRequest{Tenant: tenant, Requests: make([]*pb.RequestSpec, batch)}
	for i := range req.Requests {
		req.Requests[i] = &pb.RequestSpec{
			IvrProfile:      "Application",
			NotificationUrl: "http://127.0.0.1:9/r",
			MaxAttempts:     3,
			TimeToLive:      "3600s",
		}
	}
	prefix := "w" + strconv.Itoa(w) + "-"
	var seq int64
	for k := 0; ctx.Err() == nil; k++ {
		if !time.Now().Before(end) {
			return
		}
		for _, s := range req.Requests {
			seq++
			s.Token = prefix + strconv.FormatInt(seq, 10)
			s.Telnum = strconv.FormatInt(15_550_000_000+(int64(w)*1_000_003+seq)%10_000_000, 10)
		}
		client := p.clients[(w+k)%nodes][conn]
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		t0 := time.Now()
		resp, err := client.CreateRequests(cctx, req)
		t1 := time.Now()
		cancel()
		if err != nil {
			st.errors[status.Code(err).String()]++
			if status.Code(err) != codes.Canceled {
				// Do not spin against an unavailable cluster.
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		var ok int64
		for _, r := range resp.GetResults() {
			if r.GetOk() {
				ok++
			} else {
				st.itemFailures[r.GetCode()]++
			}
		}
		st.acked += ok
		if !t1.Before(measureFrom) && t1.Before(end) {
			st.calls++
			st.records += ok
			st.latencies = append(st.latencies, t1.Sub(t0))
		}
	}
}

func merge(stats []*writerStats) *writerStats {
	out := &writerStats{errors: map[string]int64{}, itemFailures: map[string]int64{}}
	n := 0
	for _, s := range stats {
		n += len(s.latencies)
	}
	out.latencies = make([]time.Duration, 0, n)
	for _, s := range stats {
		out.latencies = append(out.latencies, s.latencies...)
		out.calls += s.calls
		out.records += s.records
		out.acked += s.acked
		for k, v := range s.errors {
			out.errors[k] += v
		}
		for k, v := range s.itemFailures {
			out.itemFailures[k] += v
		}
	}
	slices.Sort(out.latencies)
	return out
}

// quantile of sorted latencies (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
