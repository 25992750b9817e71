package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/bench/env"
	"github.com/seed-7bfc04c2/dialtone/bench/report"
	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
	"github.com/seed-7bfc04c2/dialtone/internal/sim/mediasim"
)

// attempts merges the platform's placed and refused call starts: every
// call that reached the platform is an attempt.
func attempts(cs mediasim.CallStarts) []int64 {
	out := append(append(make([]int64, 0, len(cs.Placed)+len(cs.Refused)), cs.Placed...), cs.Refused...)
	slices.Sort(out)
	return out
}

func capsTenant(t capsTarget) string {
	return "caps-" + strings.ReplaceAll(t.label(), "@", "-plf")
}

// runCaps measures CAPS accuracy: for each target a tenant with a backlog
// larger than the run can dial and enough ports (unless its PortLoadFactor
// says otherwise), the tenant's CAPS raised from 0.1 to the target, and
// the attempts the platform saw counted over the measured window.
func (h *harness) runCaps(ctx context.Context) error {
	c := h.cfg.Caps
	targets, _ := c.targets()
	var tenants, all []string
	for _, t := range targets {
		tenants = append(tenants, capsTenant(t))
		all = append(all, capsTenant(t))
		if c.DNC > 0 {
			all = append(all, capsTenant(t)+"-dnc")
		}
	}
	sim, err := env.FreeSimAddrs()
	if err != nil {
		return err
	}
	// The capture starts before the cluster: it must see every connection
	// to mediasim from its first byte.
	w := h.startWire(ctx, sim)
	defer w.stop(h)
	e, err := h.startEnvAt(ctx, sim, "caps", "live", []string{
		"--tenant", strings.Join(all, ","), "--servers", strconv.Itoa(c.Servers), "--ports", strconv.Itoa(c.Ports),
		"--ring", c.Ring, "--talk", c.Talk, "--mix", "success=100", "--max-log", "2000000"})
	if err != nil {
		return err
	}
	defer e.stop()
	for i, t := range targets {
		plain, err := h.runCapsTarget(ctx, e, w, t, tenants[i], 0)
		if err != nil {
			return err
		}
		if c.DNC <= 0 {
			continue
		}
		listed, err := h.runCapsTarget(ctx, e, w, t, tenants[i]+"-dnc", c.DNC)
		if err != nil {
			return err
		}
		h.logf("caps %s: with %d numbers on a suppression list %.2f/s, without %.2f/s: ratio %.4f",
			t.label(), c.DNC, listed.Rate.Achieved, plain.Rate.Achieved, listed.Rate.Achieved/plain.Rate.Achieved)
	}
	return nil
}

// loadDNC streams n numbers (none of them a backlog number) into tenant's
// suppression list through LoadSuppressions and logs the rate.
func (h *harness) loadDNC(ctx context.Context, e *environment, tenant string, n int) error {
	dc, err := e.dialerClient(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	stream, err := dc.LoadSuppressions(ctx)
	if err != nil {
		return err
	}
	var buf []byte
	for i := range n {
		buf = strconv.AppendUint(buf, 12_000_000_000+uint64(i)*7, 10)
		buf = append(buf, '\n')
		if len(buf) >= 1<<20 || i == n-1 {
			if err := stream.Send(&pb.LoadSuppressionsChunk{Tenant: tenant, Data: buf}); err != nil {
				return fmt.Errorf("load suppressions: %w", err)
			}
			buf = nil
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return fmt.Errorf("load suppressions: %w", err)
	}
	took := time.Since(t0)
	h.logf("caps %s: %d numbers loaded into the suppression list in %s (%.0f numbers/s through the API into the cluster)",
		tenant, resp.GetCount(), took.Round(time.Millisecond), float64(resp.GetCount())/took.Seconds())
	return nil
}

// runCapsTarget measures one target on tenant, with a suppression list of
// dnc numbers loaded first when dnc > 0: on the wire when w captures, else
// at mediasim.
func (h *harness) runCapsTarget(ctx context.Context, e *environment, w *wireView, t capsTarget, tenant string, dnc int) (CapsResult, error) {
	c := h.cfg.Caps
	ports := c.Servers * c.Ports
	if ctx.Err() != nil {
		return CapsResult{}, ctx.Err()
	}
	if dnc > 0 {
		if err := h.loadDNC(ctx, e, tenant, dnc); err != nil {
			return CapsResult{}, err
		}
	}
	if err := e.setPacing(ctx, tenant, 0.1, t.PLF); err != nil {
		return CapsResult{}, err
	}
	n := int(t.CAPS*(c.Warmup.Seconds()+c.Duration.Seconds())*1.05) + 2000
	t0 := time.Now()
	ids, err := e.createBacklog(ctx, tenant, n, 3)
	if err != nil {
		return CapsResult{}, err
	}
	h.logf("caps %s: backlog of %d requests created in %s", t.label(), len(ids), time.Since(t0).Round(time.Millisecond))
	// Wait for the engine to see the ports and fetch.
	if !waitFor(ctx, 30*time.Second, func() bool {
		st, err := e.dialerStatus(ctx)
		if err != nil {
			return false
		}
		for _, ts := range st.GetTenants() {
			if ts.GetTenant() == tenant && ts.GetQueued() > 0 && ts.GetPortsTotal() > 0 {
				return true
			}
		}
		return false
	}) {
		return CapsResult{}, fmt.Errorf("caps %s: the engine did not fetch the backlog within 30s", t.label())
	}
	origin := time.Now()
	if err := e.setPacing(ctx, tenant, t.CAPS, t.PLF); err != nil {
		return CapsResult{}, err
	}
	smp := e.startSampler(ctx, tenant, origin, 250*time.Millisecond)
	h.logf("caps %s: CAPS set; %s warm-up + %s measured ...", t.label(), c.Warmup.Duration, c.Duration.Duration)
	err = sleepCtx(ctx, c.Warmup.Duration+c.Duration.Duration)
	samples := smp.finish()
	if err != nil {
		return CapsResult{}, err
	}
	if err := e.setPacing(ctx, tenant, 0.1, t.PLF); err != nil {
		return CapsResult{}, err
	}
	cs, err := e.simStarts(ctx, tenant)
	if err != nil {
		return CapsResult{}, err
	}
	st, err := e.simStats(ctx, tenant)
	if err != nil {
		return CapsResult{}, err
	}
	from := origin.Add(c.Warmup.Duration).UnixNano()
	to := from + int64(c.Duration.Duration)
	res := CapsResult{
		Label: t.label(), Tenant: tenant, PLF: t.PLF, Backlog: len(ids), Ports: ports, Rate: report.Rate{Target: t.CAPS},
		Refused: st.Refused, Concurrent: st.ConcurrentViolations, PeakInUse: st.PeakInProgress, Samples: samples,
	}
	h.capsWire(ctx, e, w, &res, attempts(cs), origin.UnixNano(), from, to)
	res.LeaderChanges = leaderChanges(samples)
	capped, measured := 0, 0
	for _, s := range samples {
		if s.T < c.Warmup.Seconds() {
			continue
		}
		measured++
		if s.Budget > 0 && s.InProgress >= s.Budget {
			capped++
		}
	}
	if measured > 0 {
		res.CappedByPortsPct = float64(capped) / float64(measured) * 100
	}
	h.repMu.Lock()
	h.rep.Caps = append(h.rep.Caps, res)
	h.repMu.Unlock()
	r, m := res.Rate, res.AtMediasim
	limSec, lim100ms := pacing.WindowLimits(r.Target)
	h.logf("caps %s: %s: achieved %.2f/s (%.3f of target, error %+.3f%%), max in any 1s window %d (limit %d), in any 100 ms %d (limit %d), interval p50 %.3f ms p99 %.3f ms, capped by ports %.0f%% of samples, %d leader changes",
		t.label(), measuredLabel(res), r.Achieved, r.Achieved/r.Target, r.ErrorPct, r.MaxWindow, limSec, r.MaxWindow100ms, lim100ms,
		r.IntervalP50, r.IntervalP99, res.CappedByPortsPct, res.LeaderChanges)
	if res.Measured == measuredOnWire {
		h.logf("caps %s: at mediasim (user space): achieved %.2f/s, max in any 1s window %d, in any 100 ms %d, interval p50 %.3f ms p99 %.3f ms",
			t.label(), m.Achieved, m.MaxWindow, m.MaxWindow100ms, m.IntervalP50, m.IntervalP99)
	}
	h.capsChecks(res)
	h.capsCharts(res, c.Warmup.Seconds())
	return res, nil
}

func (h *harness) capsChecks(res CapsResult) {
	name := "caps " + res.Label
	if res.PLF <= 100 {
		h.check("caps", name+": no call refused by a full platform", res.Refused == 0, "%d refused at PortLoadFactor %d", res.Refused, res.PLF)
	}
	h.check("caps", name+": no concurrent attempt of one request", res.Concurrent == 0, "%d concurrent", res.Concurrent)
	h.target("caps", name+": no leader change", res.LeaderChanges == 0, "%d leader changes seen by the sampler", res.LeaderChanges)
	r := res.Rate
	// Ports capped the run when its load factor says so, or when the
	// engine sat at its port budget in most samples.
	if res.PLF < 100 || res.CappedByPortsPct >= 50 {
		h.target("caps", name+": capped by ports (PortLoadFactor "+strconv.Itoa(res.PLF)+")", r.Achieved <= r.Target,
			"achieved %.1f/s of %g/s %s; at the port budget in %.0f%% of samples", r.Achieved, r.Target, measuredLabel(res), res.CappedByPortsPct)
		return
	}
	if r.Target <= 1000 {
		h.target("caps", name+": within ±1% over the run", r.ErrorPct >= -1 && r.ErrorPct <= 1, "achieved %.2f/s, error %+.3f%% over %.0fs, %s",
			r.Achieved, r.ErrorPct, r.Seconds, measuredLabel(res))
	} else {
		h.target("caps", name+": sustained (≥99% of target)", r.ErrorPct >= -1, "achieved %.1f/s, error %+.3f%% over %.0fs, %s",
			r.Achieved, r.ErrorPct, r.Seconds, measuredLabel(res))
	}
	h.target("caps", name+": no 1s window above target+1", float64(r.MaxWindow) <= r.Target+1, "max %d in any 1s window (target %g), %s%s",
		r.MaxWindow, r.Target, measuredLabel(res), alsoAtMediasim(res, res.AtMediasim.MaxWindow))
	// The 100 ms promise only on the wire: mediasim's own stamps carry its
	// scheduling delays (tens of ms on this machine), far above 100 ms's
	// share of slack.
	if res.Measured == measuredOnWire {
		_, lim := pacing.WindowLimits(r.Target)
		h.target("caps", name+": no 100 ms window above ceil(target/8)+1", r.MaxWindow100ms <= lim, "max %d in any 100 ms window (limit %d), %s; %d at mediasim (user space, not checked)",
			r.MaxWindow100ms, lim, measuredLabel(res), res.AtMediasim.MaxWindow100ms)
	}
}

// alsoAtMediasim adds mediasim's figure to a check measured on the wire.
func alsoAtMediasim(res CapsResult, n int) string {
	if res.Measured != measuredOnWire {
		return ""
	}
	return fmt.Sprintf("; %d at mediasim (user space)", n)
}

func (h *harness) capsCharts(res CapsResult, warmup float64) {
	var target []report.Point
	if len(res.RateSeries) > 0 {
		target = []report.Point{{X: 0, Y: res.Rate.Target}, {X: res.RateSeries[len(res.RateSeries)-1].X, Y: res.Rate.Target}}
	}
	series := []report.Series{{Name: "achieved, at mediasim (user space; no wire capture)", Points: res.RateSeries}}
	if res.Measured == measuredOnWire {
		series = []report.Series{{Name: "achieved, on the wire", Points: res.RateSeries},
			{Name: "at mediasim (user space)", Points: res.RateSeriesAtMediasim}}
	}
	h.chart("caps-"+res.Label+"-rate", report.Chart{
		Title:  fmt.Sprintf("caps %s: attempts per second (1 s bins) vs target", res.Label),
		XLabel: "seconds since the CAPS change", YLabel: "attempts/s",
		Series:  append(series, report.Series{Name: "target", Points: target, Dashed: true}),
		Markers: []report.Marker{{X: warmup, Name: "measured from"}},
	})
	h.chart("caps-"+res.Label+"-ports", report.Chart{
		Title:  fmt.Sprintf("caps %s: ports in use vs budget and capacity; engine queue", res.Label),
		XLabel: "seconds since the CAPS change", YLabel: "ports / requests",
		Series: portSeries(res.Samples, true),
	})
}

// portSeries are the ports in use (platform), the engine's budget and the
// capacity, and optionally the engine's queue, from samples.
func portSeries(samples []Sample, queue bool) []report.Series {
	var inUse, budget, total, queued []report.Point
	for _, s := range samples {
		inUse = append(inUse, report.Point{X: s.T, Y: float64(s.PlatformInUse)})
		budget = append(budget, report.Point{X: s.T, Y: float64(s.Budget)})
		total = append(total, report.Point{X: s.T, Y: float64(s.PortsTotal)})
		queued = append(queued, report.Point{X: s.T, Y: float64(s.Queued)})
	}
	out := []report.Series{{Name: "ports in use (platform)", Points: inUse}, {Name: "port budget (engine)", Points: budget, Dashed: true},
		{Name: "ports total (reported)", Points: total, Dashed: true}}
	if queue {
		out = append(out, report.Series{Name: "engine queue (fetched, waiting)", Points: queued})
	}
	return out
}

// chart saves c as <name>.svg (or .png) in the report directory and lists
// it.
func (h *harness) chart(name string, c report.Chart) {
	file := name + "." + h.cfg.ChartFormat
	if err := c.Save(h.out + "/" + file); err != nil {
		h.logf("chart %s: %v", name, err)
		return
	}
	h.repMu.Lock()
	h.rep.Charts = append(h.rep.Charts, file)
	h.repMu.Unlock()
}

// leaderChanges counts the changes of the leader between consecutive
// samples that saw one (a sample that could not ask is skipped).
func leaderChanges(samples []Sample) int {
	n, last := 0, ""
	for _, s := range samples {
		if s.Leader == "" {
			continue
		}
		if last != "" && s.Leader != last {
			n++
		}
		last = s.Leader
	}
	return n
}
