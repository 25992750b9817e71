package sipcall

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// classes maps the outcome table's class names.
var classes = map[string]fsmpb.OutcomeClass{
	"success":   fsmpb.OutcomeClass_OUTCOME_SUCCESS,
	"busy":      fsmpb.OutcomeClass_OUTCOME_BUSY,
	"temporary": fsmpb.OutcomeClass_OUTCOME_TEMPORARY,
	"permanent": fsmpb.OutcomeClass_OUTCOME_PERMANENT,
	"internal":  fsmpb.OutcomeClass_OUTCOME_INTERNAL,
}

// DefaultOutcomes is the built-in outcome table (docs/sip.md): keys are
// SIP status codes, "q850:<cause>" (a Reason: Q.850;cause=N header on a
// final response, checked before the status code) and "detect:<value>"
// (the detection header, checked first). A status code not in the table
// is a temporary external failure (ExternalError).
var DefaultOutcomes = map[string]string{
	"200":            "success/TreatmentApplied",
	"486":            "busy/DestinationBusy",
	"600":            "busy/DestinationBusy",
	"408":            "temporary/RingNoAnswer",
	"480":            "temporary/RingNoAnswer",
	"487":            "temporary/RingNoAnswer",
	"404":            "permanent/InvalidNumber",
	"484":            "permanent/InvalidNumber",
	"604":            "permanent/InvalidNumber",
	"q850:1":         "permanent/SITVacantCircuit",
	"500":            "internal/InternalError",
	"502":            "internal/InternalError",
	"503":            "internal/InternalError",
	"504":            "internal/InternalError",
	"detect:machine": "temporary/AnsweringMachineDetected",
	"detect:fax":     "temporary/FaxDetected",
	// Call-level events of the 3PCC model (docs/sip.md).
	"event:callee-hangup": "temporary/CalleeHungUpBeforeTreatment",
	"event:ivr-failed":    "internal/IVRFailed",
	"event:short-call":    "temporary/ShortCall",
	"event:no-offer":      "temporary/ExternalError",
}

// outcomeTable is the parsed table.
type outcomeTable map[string]telephony.Outcome

// newOutcomeTable merges overrides (config telephony.sip.outcomes) over
// DefaultOutcomes.
func newOutcomeTable(overrides map[string]string) (outcomeTable, error) {
	t := outcomeTable{}
	for _, m := range []map[string]string{DefaultOutcomes, overrides} {
		for k, v := range m {
			class, reason, err := config.ParseSIPOutcome(v)
			if err != nil {
				return nil, fmt.Errorf("sipcall: outcome %s: %w", k, err)
			}
			t[strings.ToLower(k)] = telephony.Outcome{Class: classes[class], Reason: reason}
		}
	}
	return t, nil
}

// classify maps a final response (or the 200 OK of an answered call) to
// an outcome whose reason carries the SIP code, e.g. "DestinationBusy (SIP
// 486)". detectHeader is the far end's detection header name ("" = none).
func (t outcomeTable) classify(res *sip.Response, detectHeader string) telephony.Outcome {
	suffix := fmt.Sprintf(" (SIP %d)", res.StatusCode)
	if detectHeader != "" {
		if h := res.GetHeader(detectHeader); h != nil {
			if o, ok := t["detect:"+strings.ToLower(strings.TrimSpace(h.Value()))]; ok {
				o.Reason += suffix
				return o
			}
		}
	}
	for _, h := range res.GetHeaders("Reason") {
		if cause, ok := q850Cause(h.Value()); ok {
			if o, ok := t["q850:"+strconv.Itoa(cause)]; ok {
				o.Reason += suffix
				return o
			}
		}
	}
	if o, ok := t[strconv.Itoa(res.StatusCode)]; ok {
		o.Reason += suffix
		return o
	}
	if res.IsSuccess() {
		return telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_SUCCESS, Reason: "TreatmentApplied" + suffix}
	}
	return telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_TEMPORARY, Reason: "ExternalError" + suffix}
}

// q850Cause reads the cause of a "Q.850;cause=16;text=..." Reason value
// (RFC 3326).
func q850Cause(v string) (int, bool) {
	parts := strings.Split(v, ";")
	if len(parts) < 2 || !strings.EqualFold(strings.TrimSpace(parts[0]), "Q.850") {
		return 0, false
	}
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(k, "cause") {
			n, err := strconv.Atoi(strings.Trim(val, `"`))
			return n, err == nil
		}
	}
	return 0, false
}

// internal is an internal failure (not counted as an attempt) with what
// went wrong in SIP terms.
func internal(what string) telephony.Outcome {
	return telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_INTERNAL, Reason: "InternalError (SIP " + what + ")"}
}
