package sipcall

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	inProgress   *prometheus.GaugeVec
	invites      *prometheus.CounterVec
	responses    *prometheus.CounterVec
	outcomes     *prometheus.CounterVec
	refused      *prometheus.CounterVec
	ivrResponses *prometheus.CounterVec
	adopted      prometheus.Counter
	strays       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		inProgress:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dialtone_sip_calls_in_progress", Help: "SIP calls (dialogs) in progress, per trunk."}, []string{"trunk"}),
		invites:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dialtone_sip_invites_total", Help: "INVITEs sent, per trunk."}, []string{"trunk"}),
		responses:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dialtone_sip_final_responses_total", Help: "Final responses to INVITEs, per trunk and status code (487 also for a ring timeout)."}, []string{"trunk", "code"}),
		outcomes:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dialtone_sip_outcomes_total", Help: "Call outcomes, per trunk and class."}, []string{"trunk", "class"}),
		refused:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dialtone_sip_refused_total", Help: "Calls refused because the trunk's max_calls were in progress or every media server of the IVR profile was full."}, []string{"trunk"}),
		ivrResponses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dialtone_sip_ivr_final_responses_total", Help: "Final responses to IVR-leg INVITEs, per IVR entry's profile and status code (timeout, transport)."}, []string{"profile", "code"}),
		adopted:      prometheus.NewCounter(prometheus.CounterOpts{Name: "dialtone_sip_adopted_total", Help: "Calls a new leader adopted from its predecessor's replicated dialogs."}),
		strays:       prometheus.NewCounter(prometheus.CounterOpts{Name: "dialtone_sip_stray_dialogs_ended_total", Help: "2xx responses of dialogs nobody owned (a predecessor's calls not adopted), ACKed and hung up."}),
	}
	if reg != nil {
		reg.MustRegister(m.inProgress, m.invites, m.responses, m.outcomes, m.refused, m.ivrResponses, m.adopted, m.strays)
	}
	return m
}
