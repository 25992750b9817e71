package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seed-7bfc04c2/dialtone/bench/env"
	"github.com/seed-7bfc04c2/dialtone/bench/report"
	"github.com/seed-7bfc04c2/dialtone/bench/wire"
)

// wireView is the caps scenario's capture of the calls to mediasim: the
// packets to its gRPC port on lo, from before the cluster first dials it
// (the decoder needs each connection from its start: HPACK's table is
// connection state). c is nil when there is none; why says why.
type wireView struct {
	c   *wire.Capture
	why string
}

// startWire starts capturing the packets to mediasim's gRPC port. Without
// tcpdump, root or lo it says so: the caps checks then use mediasim's own
// stamps, labelled as such.
func (h *harness) startWire(ctx context.Context, sim env.SimAddrs) *wireView {
	_, p, err := net.SplitHostPort(sim.GRPC)
	if err != nil {
		return h.noWire(fmt.Errorf("mediasim's gRPC address %q: %w", sim.GRPC, err))
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return h.noWire(fmt.Errorf("mediasim's gRPC port %q: %w", p, err))
	}
	file := filepath.Join(h.tmp, "caps-wire.pcap")
	c, err := wire.StartCapture(ctx, file, uint16(port))
	if err != nil {
		return h.noWire(err)
	}
	h.logf("caps: capturing the calls to mediasim on the wire (tcpdump -i lo 'tcp dst port %d') into %s", port, file)
	return &wireView{c: c}
}

func (h *harness) noWire(err error) *wireView {
	h.logf("caps: NO WIRE CAPTURE (%v): the pacing checks use mediasim's user-space stamps instead", err)
	return &wireView{why: "no wire capture: " + err.Error()}
}

func (w *wireView) stop(h *harness) {
	if w.c != nil {
		h.logf("caps: tcpdump stopped: %s", w.c.Stop())
	}
}

// attempts are tenant's call attempts on the wire, sorted, once the file
// holds every packet up to `until` (Unix ns). why is set when there are
// none to trust: no capture, or one that lost or could not decode bytes.
func (w *wireView) attempts(ctx context.Context, tenant string, until int64) (times []int64, res *wire.Result, why string) {
	if w.c == nil {
		return nil, nil, w.why
	}
	// The kernel hands packets over in blocks, up to a second late; the
	// margin covers stamps taken on the other core.
	if !w.c.WaitPast(ctx, until+int64(50*time.Millisecond), 5*time.Second) {
		return nil, nil, "the capture held no packet past the measured span 5 s after it"
	}
	res, err := w.c.Decode()
	if err != nil {
		return nil, res, fmt.Sprintf("the capture does not decode: %v", err)
	}
	if len(res.Problems) > 0 {
		return nil, res, "the capture is incomplete: " + strings.Join(res.Problems, "; ")
	}
	for _, a := range res.Attempts {
		if a.Tenant == tenant {
			times = append(times, a.At)
		}
	}
	slices.Sort(times)
	return times, res, ""
}

// WireCheck compares the attempts on the wire with mediasim's stamps for
// the same calls.
type WireCheck struct {
	// Attempts in the measured span on the wire and at mediasim.
	OnWire     int `json:"attempts_on_wire"`
	AtMediasim int `json:"attempts_at_mediasim"`
	// InFlight*: the tenant's calls on the wire that mediasim had not
	// stamped yet at the span's start and end (on the wire before the edge
	// less at mediasim before it); OnWire − AtMediasim = InFlightEnd −
	// InFlightStart. Never negative: mediasim cannot see a call before
	// its socket does.
	InFlightStart int `json:"in_flight_at_start"`
	InFlightEnd   int `json:"in_flight_at_end"`
	// Lag*: mediasim's stamp less the wire's for the i-th attempt of the
	// tenant on each (one stream, so the same call) in the span, ms.
	LagP50 float64 `json:"mediasim_lag_p50_ms"`
	LagP99 float64 `json:"mediasim_lag_p99_ms"`
	LagMax float64 `json:"mediasim_lag_max_ms"`
	// The capture as a whole (every tenant, since the cluster started).
	Packets int   `json:"packets"`
	Streams int   `json:"placecalls_streams"`
	Resent  int64 `json:"resent_bytes"`
}

// compareWire checks the wire's attempts against mediasim's (both sorted,
// the tenant's whole run) over [from, to).
func compareWire(onWire, atSim []int64, from, to int64, res *wire.Result) WireCheck {
	before := func(s []int64, t int64) int { return len(report.Between(s, math.MinInt64, t)) }
	w := WireCheck{
		OnWire: len(report.Between(onWire, from, to)), AtMediasim: len(report.Between(atSim, from, to)),
		Packets: res.Packets, Streams: res.Streams, Resent: res.Resent,
	}
	w.InFlightStart = before(onWire, from) - before(atSim, from)
	w.InFlightEnd = before(onWire, to) - before(atSim, to)
	var lags []int64
	for i, t := range onWire {
		if i < len(atSim) && t >= from && t < to {
			lags = append(lags, atSim[i]-t)
		}
	}
	slices.Sort(lags)
	w.LagP50 = float64(report.Quantile(lags, 0.50)) / 1e6
	w.LagP99 = float64(report.Quantile(lags, 0.99)) / 1e6
	w.LagMax = float64(report.Quantile(lags, 1)) / 1e6
	return w
}

// agrees: no call in flight at an edge is negative (the capture or the
// decoder would have missed calls mediasim got) or more than the wire
// carried in the second before it (it would have counted calls twice).
func (w WireCheck) agrees(onWire []int64, from, to int64) bool {
	sec := int64(time.Second)
	ok := func(n int, edge int64) bool { return n >= 0 && n <= len(report.Between(onWire, edge-sec, edge)) }
	return ok(w.InFlightStart, from) && ok(w.InFlightEnd, to)
}

// capsWire fills res's rate figures: from the wire when the capture can be
// trusted (cross-checked against mediasim's count), else from mediasim's
// stamps, labelled as such.
func (h *harness) capsWire(ctx context.Context, e *environment, w *wireView, res *CapsResult, atSim []int64, origin, from, to int64) {
	res.AtMediasim = report.AnalyzeRate(atSim, from, to, res.Rate.Target)
	onWire, dec, why := w.attempts(ctx, res.Tenant, to)
	if why == "" && len(onWire) == 0 && len(atSim) > 0 {
		why = "the capture holds none of the tenant's attempts"
	}
	if why != "" {
		res.Measured, res.WireNote = measuredAtMediasim, why
		res.Rate, res.RateSeries = res.AtMediasim, report.RateSeries(atSim, origin, to, time.Second)
		h.logf("caps %s: NOT MEASURED ON THE WIRE (%s): the figures and checks below use mediasim's user-space stamps", res.Label, why)
		return
	}
	res.Measured = measuredOnWire
	res.Rate = report.AnalyzeRate(onWire, from, to, res.Rate.Target)
	res.RateSeries = report.RateSeries(onWire, origin, to, time.Second)
	res.RateSeriesAtMediasim = report.RateSeries(atSim, origin, to, time.Second)
	wc := compareWire(onWire, atSim, from, to, dec)
	res.Wire = &wc
	h.logf("caps %s: attempts in the measured span: %d on the wire, %d at mediasim; in flight (on the wire, not yet at mediasim) at its start %d, at its end %d; mediasim stamped them %.3f ms (p50), %.3f ms (p99), %.1f ms (max) after the wire",
		res.Label, wc.OnWire, wc.AtMediasim, wc.InFlightStart, wc.InFlightEnd, wc.LagP50, wc.LagP99, wc.LagMax)
	h.check("caps", "caps "+res.Label+": attempts on the wire agree with mediasim's", wc.agrees(onWire, from, to),
		"%d on the wire, %d at mediasim in the span; in flight at its start %d, at its end %d (each must be ≥ 0 and ≤ the wire's attempts in the second before)",
		wc.OnWire, wc.AtMediasim, wc.InFlightStart, wc.InFlightEnd)
	all := make([]int64, len(dec.Attempts))
	for i, a := range dec.Attempts {
		all[i] = a.At
	}
	sc := pairSendLogs(e.dir, e.c.IDs(), all, from, to)
	res.Send = &sc
	if sc.Note != "" {
		h.logf("caps %s: send log not paired with the wire: %s", res.Label, sc.Note)
		return
	}
	h.target("caps", "caps "+res.Label+": no call on the wire after the dialer counted it written", sc.Late == 0,
		"%d of %d calls in the span reached the wire after they were counted written; wire − written p50 %.3f ms, max %.3f ms (send log paired with the capture)",
		sc.Late, sc.Paired, sc.WireAfterWrittenP50, sc.WireAfterWrittenMax)
}

const (
	measuredOnWire     = "wire"
	measuredAtMediasim = "mediasim"
)

// measuredLabel says where res's figures were counted, for logs and checks.
func measuredLabel(res CapsResult) string {
	if res.Measured == measuredOnWire {
		return "on the wire"
	}
	return "at mediasim (user space; " + res.WireNote + ")"
}
