package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/bench/report"
	"github.com/seed-7bfc04c2/dialtone/internal/sim/mediasim"
)

// runFailover SIGKILLs the leader every KillEvery during a CAPS run
// (restarting it RestartAfter later), measures the dialling gap at each
// kill from the platform's call starts, waits for every request to
// finish and checks the invariants.
func (h *harness) runFailover(ctx context.Context) error {
	c := h.cfg.Failover
	const tenant, maxAttempts = "failover", 3
	e, err := h.startEnv(ctx, "failover", "live", []string{
		"--tenant", tenant, "--servers", "4", "--ports", "500", "--ring", "50ms-150ms", "--talk", "100ms-300ms", "--mix", "success=100"})
	if err != nil {
		return err
	}
	defer e.stop()
	if err := e.setPacing(ctx, tenant, 0.1, 100); err != nil {
		return err
	}
	n := int(c.CAPS * c.Duration.Seconds())
	ids, err := e.createBacklog(ctx, tenant, n, maxAttempts)
	if err != nil {
		return err
	}
	if !waitFor(ctx, 30*time.Second, func() bool {
		st, err := e.dialerStatus(ctx)
		return err == nil && len(st.GetTenants()) > 0 && st.GetTenants()[0].GetQueued() > 0
	}) {
		return fmt.Errorf("failover: the engine did not fetch within 30s")
	}
	origin := time.Now()
	if err := e.setPacing(ctx, tenant, c.CAPS, 100); err != nil {
		return err
	}
	smp := e.startSampler(ctx, tenant, origin, 250*time.Millisecond)
	res := &FailoverResult{CAPS: c.CAPS, Requests: len(ids)}
	h.logf("failover: %d requests at %g CAPS, killing the leader every %s for %s ...", len(ids), c.CAPS, c.KillEvery.Duration, c.Duration.Duration)
	end := origin.Add(c.Duration.Duration)
	for k := 1; ; k++ {
		at := origin.Add(time.Duration(k) * c.KillEvery.Duration)
		if at.Add(c.KillEvery.Duration / 2).After(end) {
			break
		}
		if err := sleepCtx(ctx, time.Until(at)); err != nil {
			smp.finish()
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		leader, err := e.c.WaitLeader(wctx)
		cancel()
		if err != nil {
			smp.finish()
			return err
		}
		killAt := time.Now()
		if err := e.c.Kill(leader); err != nil {
			smp.finish()
			return fmt.Errorf("kill %s: %w", leader, err)
		}
		kill := Kill{Node: leader, At: killAt.Sub(origin).Seconds()}
		// The killed node no longer runs, so the leader waited for is another.
		wctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		if nl, err := e.c.WaitLeader(wctx); err == nil {
			kill.NewLeader, kill.ElectedAfter = nl, time.Since(killAt).Seconds()
		}
		cancel()
		h.logf("failover: killed leader %s at %.1fs; new leader %s after %.2fs", leader, kill.At, kill.NewLeader, kill.ElectedAfter)
		res.Kills = append(res.Kills, kill)
		if err := sleepCtx(ctx, time.Until(killAt.Add(c.RestartAfter.Duration))); err != nil {
			smp.finish()
			return err
		}
		if err := e.c.Restart(ctx, leader); err != nil {
			smp.finish()
			return err
		}
	}
	err = sleepCtx(ctx, time.Until(end))
	res.Samples = smp.finish()
	if err != nil {
		return err
	}

	// Every request must finish (the calls are short) and be notified.
	t0 := time.Now()
	var recs map[string]*pb.Request
	done := waitFor(ctx, c.Settle.Duration, func() bool {
		recs, err = e.getAll(ctx, tenant, ids)
		if err != nil || len(recs) < len(ids) {
			return false
		}
		for _, r := range recs {
			if r.GetState() != "PROCESSED" || r.GetNotification() != "NOTIFIED" {
				return false
			}
		}
		return true
	})
	res.SettleSeconds = time.Since(t0).Seconds()
	if !done {
		h.logf("failover: not every request finished and was notified within %s", c.Settle.Duration)
	}
	if recs == nil {
		return fmt.Errorf("failover: reading the requests: %w", err)
	}
	for _, id := range ids {
		r, ok := recs[id]
		switch {
		case !ok:
			res.Lost++
		case r.GetState() != "PROCESSED":
			res.NotTerminal++
		}
		if ok && r.GetAttemptsMade() > r.GetSpec().GetMaxAttempts() {
			res.OverMaxAttempts++
		}
	}
	calls, err := e.simCalls(ctx, tenant)
	if err != nil {
		return err
	}
	st, err := e.simStats(ctx, tenant)
	if err != nil {
		return err
	}
	res.Refused = st.Refused
	var counted map[string]int
	res.Concurrent, res.InterruptedCalls, counted = overlaps(calls)
	for id, n := range counted {
		if n > maxAttempts {
			res.OverMaxAttempts++
			h.logf("failover: request %s: %d counted calls on the platform", id, n)
		}
	}
	var notified struct {
		RequestIDs int `json:"request_ids"`
	}
	if err := e.notifyStats(ctx, &notified); err == nil {
		res.Notified = notified.RequestIDs
	}

	cs, err := e.simStarts(ctx, tenant)
	if err != nil {
		return err
	}
	all := attempts(cs)
	for i := range res.Kills {
		k := &res.Kills[i]
		k.Gap = report.GapAt(all, origin.Add(time.Duration(k.At*float64(time.Second))).UnixNano(), 0)
		res.MaxGap = max(res.MaxGap, k.Gap.Resumed)
		if k.Gap.Resumed < 0 {
			res.MaxGap = 1e9
		}
	}
	res.Rate = report.AnalyzeRate(all, origin.UnixNano(), end.UnixNano(), c.CAPS)
	res.Series = report.RateSeries(all, origin.UnixNano(), end.UnixNano(), 250*time.Millisecond)
	h.repMu.Lock()
	h.rep.Failover = res
	h.repMu.Unlock()

	sc := "failover"
	h.check(sc, "no lost request", res.Lost == 0, "%d of %d acknowledged requests missing", res.Lost, len(ids))
	h.check(sc, "every request terminal", res.NotTerminal == 0 && done, "%d not PROCESSED after %.1fs", res.NotTerminal, res.SettleSeconds)
	h.check(sc, "every request notified", res.Notified >= len(ids), "%d of %d request ids notified", res.Notified, len(ids))
	h.check(sc, "no two attempts of one request at once", res.Concurrent == 0 && st.ConcurrentViolations == 0,
		"%d overlapping calls (mediasim counted %d)", res.Concurrent, st.ConcurrentViolations)
	h.check(sc, "attempts ≤ MaxAttempts", res.OverMaxAttempts == 0, "%d requests over", res.OverMaxAttempts)
	h.check(sc, "budget respected (no call refused at PLF 100)", res.Refused == 0, "%d refused", res.Refused)
	for i, k := range res.Kills {
		h.target(sc, "kill "+strconv.Itoa(i+1)+": dialling resumes < 2 s", k.Gap.Resumed >= 0 && k.Gap.Resumed < 2,
			"resumed %.3fs after killing %s (new leader %s elected after %.2fs)", k.Gap.Resumed, k.Node, k.NewLeader, k.ElectedAfter)
	}
	var markers []report.Marker
	for _, k := range res.Kills {
		markers = append(markers, report.Marker{X: k.At, Name: "kill " + k.Node})
	}
	h.chart("failover-rate", report.Chart{
		Title:  fmt.Sprintf("failover: attempts per second (250 ms bins) at %g CAPS, leader SIGKILLed every %s", c.CAPS, c.KillEvery.Duration),
		XLabel: "seconds", YLabel: "attempts/s",
		Series: []report.Series{{Name: "attempts/s", Points: res.Series},
			{Name: "target", Dashed: true, Points: []report.Point{{X: 0, Y: c.CAPS}, {X: c.Duration.Seconds(), Y: c.CAPS}}}},
		Markers: markers,
	})
	h.chart("failover-queue", report.Chart{
		Title: "failover: ports in use and the engine queue", XLabel: "seconds", YLabel: "ports / requests",
		Series: portSeries(res.Samples, true), Markers: markers,
	})
	return nil
}

// overlaps checks the platform's call log: calls of one request that were
// in progress at the same time, the calls hung up by the caller (a dying
// leader's, not counted as attempts), and per request the calls counted
// against MaxAttempts (everything that ended on its own).
func overlaps(calls []mediasim.CallRecord) (concurrent, hungUp int, counted map[string]int) {
	by := map[string][]mediasim.CallRecord{}
	counted = map[string]int{}
	for _, c := range calls {
		if c.State == mediasim.StateRefused {
			continue
		}
		by[c.RequestID] = append(by[c.RequestID], c)
		if c.State == mediasim.StateCancelled {
			hungUp++
		} else {
			counted[c.RequestID]++
		}
	}
	for _, cs := range by {
		slices.SortFunc(cs, func(a, b mediasim.CallRecord) int { return a.Start.Compare(b.Start) })
		for i := 1; i < len(cs); i++ {
			prevEnd := cs[i-1].End
			if prevEnd.IsZero() || cs[i].Start.Before(prevEnd) {
				concurrent++
			}
		}
	}
	return concurrent, hungUp, counted
}

// getAll reads ids (1000 per call, linearizable on the leader's side).
func (e *environment) getAll(ctx context.Context, tenant string, ids []string) (map[string]*pb.Request, error) {
	out := make(map[string]*pb.Request, len(ids))
	for from := 0; from < len(ids); from += 1000 {
		chunk := ids[from:min(from+1000, len(ids))]
		var resp *pb.BatchGetRequestsResponse
		var err error
		leader, _ := e.c.Leader(ctx)
		for id := range slices.Values(append([]string{leader}, e.c.IDs()...)) {
			if id == "" {
				continue
			}
			var conn *grpc.ClientConn
			if conn, err = e.c.Conn(id); err != nil {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			resp, err = pb.NewRequestServiceClient(conn).BatchGetRequests(cctx, &pb.BatchGetRequestsRequest{Tenant: tenant, Ids: chunk, Consistency: "linearizable"})
			cancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			return nil, err
		}
		for _, r := range resp.GetResults() {
			if r.GetRequest() != nil {
				out[r.GetId()] = r.GetRequest()
			}
		}
	}
	return out, nil
}

// notifyStats reads the notification receiver's counters.
func (e *environment) notifyStats(ctx context.Context, v any) error {
	return e.getJSON(ctx, "http://"+e.sim.Notify+"/notifications/stats", v)
}
