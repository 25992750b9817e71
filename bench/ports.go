package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/seed-7bfc04c2/dialtone/bench/report"
)

// runPorts measures port utilisation and oversubscription: a backlog
// larger than the ports can take, calls holding ports for a talk time, and
// one cluster per port view (live, and the SSG-style sampled-5s baseline)
// running at the same time on the same machine, each with its own
// platform.
func (h *harness) runPorts(ctx context.Context) error {
	views := strings.Split(h.cfg.Ports.Views, ",")
	results := make([]PortsResult, len(views))
	errs := make([]error, len(views))
	var wg sync.WaitGroup
	for i, view := range views {
		wg.Go(func() {
			results[i], errs[i] = h.portsView(ctx, view)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	h.repMu.Lock()
	h.rep.Ports = append(h.rep.Ports, results...)
	h.repMu.Unlock()

	var series []report.Series
	for _, r := range results {
		var pts []report.Point
		for _, s := range r.Samples {
			pts = append(pts, report.Point{X: s.T, Y: float64(s.PlatformInUse)})
		}
		series = append(series, report.Series{Name: "ports in use, " + r.View, Points: pts})
	}
	if len(results) > 0 && len(results[0].Samples) > 0 {
		last := results[0].Samples[len(results[0].Samples)-1].T
		series = append(series, report.Series{Name: "budget (ports × PLF / 100)", Dashed: true,
			Points: []report.Point{{X: 0, Y: float64(results[0].Budget)}, {X: last, Y: float64(results[0].Budget)}}})
	}
	h.chart("ports-utilisation", report.Chart{
		Title:  "ports: ports in use on the platform, live budget vs SSG-style 5 s sampling",
		XLabel: "seconds", YLabel: "ports in use", Series: series,
		Markers: []report.Marker{{X: h.cfg.Ports.Skip.Seconds(), Name: "measured from"}},
	})
	for _, r := range results {
		h.chart("ports-"+r.View, report.Chart{
			Title:  "ports, " + r.View + ": ports in use vs budget; engine queue",
			XLabel: "seconds", YLabel: "ports / requests", Series: portSeries(r.Samples, true),
		})
	}
	return nil
}

func (h *harness) portsView(ctx context.Context, view string) (PortsResult, error) {
	c := h.cfg.Ports
	tenant := "ports"
	e, err := h.startEnv(ctx, "ports-"+view, view, []string{
		"--tenant", tenant, "--servers", strconv.Itoa(c.Servers), "--ports", strconv.Itoa(c.Ports),
		"--ring", c.Ring, "--talk", c.Talk, "--mix", c.Mix})
	if err != nil {
		return PortsResult{}, err
	}
	defer e.stop()
	if err := e.setPacing(ctx, tenant, 0.1, c.PLF); err != nil {
		return PortsResult{}, err
	}
	if _, err := e.createBacklog(ctx, tenant, c.Backlog, 3); err != nil {
		return PortsResult{}, err
	}
	if !waitFor(ctx, 30*time.Second, func() bool {
		st, err := e.dialerStatus(ctx)
		return err == nil && len(st.GetTenants()) > 0 && st.GetTenants()[0].GetPortsTotal() > 0
	}) {
		return PortsResult{}, fmt.Errorf("ports %s: the engine saw no ports within 30s", view)
	}
	origin := time.Now()
	if err := e.setPacing(ctx, tenant, c.CAPS, c.PLF); err != nil {
		return PortsResult{}, err
	}
	smp := e.startSampler(ctx, tenant, origin, 200*time.Millisecond)
	h.logf("ports %s: %s run ...", view, c.Duration.Duration)
	err = sleepCtx(ctx, c.Duration.Duration)
	samples := smp.finish()
	if err != nil {
		return PortsResult{}, err
	}
	st, err := e.simStats(ctx, tenant)
	if err != nil {
		return PortsResult{}, err
	}
	total := c.Servers * c.Ports
	res := PortsResult{View: view, Tenant: tenant, Ports: total, PLF: c.PLF, Budget: total * c.PLF / 100, CAPS: c.CAPS,
		Refused: st.Refused, Placed: st.Placed, PeakInUse: st.PeakInProgress, Samples: samples, MinInUse: -1}
	var sum float64
	n := 0
	for _, s := range samples {
		// While a backlog exists: the engine still has requests queued.
		if s.T < c.Skip.Seconds() || s.Queued == 0 {
			continue
		}
		n++
		sum += float64(s.PlatformInUse)
		if res.MinInUse < 0 || s.PlatformInUse < res.MinInUse {
			res.MinInUse = s.PlatformInUse
		}
	}
	if n > 0 && res.Budget > 0 {
		res.Seconds = float64(n) * 0.2
		res.MeanInUse = sum / float64(n)
		res.UtilisationPct = res.MeanInUse / float64(min(res.Budget, total)) * 100
	}
	h.logf("ports %s: utilisation %.1f%% of %d (mean %.1f in use, min %d), refused %d, placed %d",
		view, res.UtilisationPct, res.Budget, res.MeanInUse, res.MinInUse, res.Refused, res.Placed)
	if view == "live" {
		if c.PLF <= 100 {
			h.check("ports", "live: no call refused by a full platform", res.Refused == 0, "%d refused at PortLoadFactor %d", res.Refused, c.PLF)
		}
		h.target("ports", "live: utilisation ≥ 95% of ports × PLF", res.UtilisationPct >= 95, "%.1f%% (mean %.1f of %d)", res.UtilisationPct, res.MeanInUse, res.Budget)
	}
	return res, nil
}
