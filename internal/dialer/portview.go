package dialer

import "time"

// The port views (Options.PortView). The strings are the configuration
// values (dialer.port_view).
const (
	PortViewLive    = "live"
	PortViewSampled = "sampled-5s"
)

// portView is how the engine sees the media platform's ports when it arms
// attempts: the live budget (PortViewLive, see budget) or the SSG-style
// sampled baseline (PortViewSampled, benchmarks only). It is chosen once,
// when the engine is built, so the hot paths do not look at the option.
// Its methods run under Engine.mu; per-tenant state lives in the tenant.
type portView interface {
	// refresh sees t's latest port report and settings (every
	// housekeeping period).
	refresh(t *tenant, now time.Time)
	// canArm reports whether t may arm one more attempt now.
	canArm(t *tenant) bool
	// armed counts one attempt t armed.
	armed(t *tenant)
}

// newPortView returns the view Options.PortView names; anything but
// PortViewSampled is the live budget.
func newPortView(o Options) portView {
	if o.PortView == PortViewSampled {
		return sampledView{interval: o.PortSampleInterval}
	}
	return liveView{margin: o.ReportMargin}
}

// liveView arms within the live port budget (budget.canArm).
type liveView struct {
	margin time.Duration // Options.ReportMargin
}

func (liveView) refresh(*tenant, time.Time) {}

func (v liveView) canArm(t *tenant) bool {
	return t.budget.canArm(t.settings.BatchMode, t.settings.PortLoadFactor, t.ports, v.margin)
}

func (liveView) armed(*tenant) {}

// sampledView arms within the quota of the tenant's last port sample
// (sampledPorts), taken every interval.
type sampledView struct {
	interval time.Duration // Options.PortSampleInterval
}

func (v sampledView) refresh(t *tenant, now time.Time) {
	t.sampled.refresh(now, v.interval, t.ports, t.settings.PortLoadFactor)
}

func (sampledView) canArm(t *tenant) bool { return t.sampled.quota > 0 }

func (sampledView) armed(t *tenant) { t.sampled.quota-- }

// sampledPorts is the SSG-style baseline port view (PortViewSampled), kept
// only so benchmarks can compare the live budget with it on the same
// engine. The SSG learns its ports from an EventResourceInfo sent every 5
// seconds and passes floor(available × PortLoadFactor / 100) calls until
// the next one. So here: every interval the engine takes the port report
// once and may arm that many calls until the next sample. Calls that end in
// between free nothing until the next sample (idle ports), and calls armed
// before a sample but not yet in its figures are not counted against it (a
// possible oversubscription).
type sampledPorts struct {
	at    time.Time
	quota int
}

// refresh takes a new sample when the last one is interval old.
func (s *sampledPorts) refresh(now time.Time, interval time.Duration, rep PortReport, plf uint32) {
	if !s.at.IsZero() && now.Sub(s.at) < interval {
		return
	}
	s.at = now
	s.quota = 0
	if rep.OK && rep.Total > rep.InUse {
		s.quota = int(rep.Total-rep.InUse) * int(plf) / 100
	}
}
