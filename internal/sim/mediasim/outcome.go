package mediasim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// The simulated outcomes, by name (as used in Options.Mix, Rule.Outcome and
// the --mix and --rule flags).
const (
	Success          = "success"
	Busy             = "busy"
	NoAnswer         = "no_answer"
	AnsweringMachine = "answering_machine"
	Fax              = "fax"
	SITInvalidNumber = "sit_invalid_number"
	SITVacant        = "sit_vacant"
	SITReorder       = "sit_reorder"
	InvalidNumber    = "invalid_number"
	InternalError    = "internal_error"
)

// outcomes maps each outcome name to its class and the seed's reason string.
var outcomes = map[string]telephony.Outcome{
	Success:          {Class: fsmpb.OutcomeClass_OUTCOME_SUCCESS, Reason: "TreatmentApplied"},
	Busy:             {Class: fsmpb.OutcomeClass_OUTCOME_BUSY, Reason: "DestinationBusy"},
	NoAnswer:         {Class: fsmpb.OutcomeClass_OUTCOME_TEMPORARY, Reason: "RingNoAnswer"},
	AnsweringMachine: {Class: fsmpb.OutcomeClass_OUTCOME_TEMPORARY, Reason: "AnsweringMachineDetected"},
	Fax:              {Class: fsmpb.OutcomeClass_OUTCOME_TEMPORARY, Reason: "FaxDetected"},
	SITInvalidNumber: {Class: fsmpb.OutcomeClass_OUTCOME_PERMANENT, Reason: "SITInvalidNumber"},
	SITVacant:        {Class: fsmpb.OutcomeClass_OUTCOME_PERMANENT, Reason: "SITVacantCircuit"},
	SITReorder:       {Class: fsmpb.OutcomeClass_OUTCOME_BUSY, Reason: "SITReorder"},
	InvalidNumber:    {Class: fsmpb.OutcomeClass_OUTCOME_PERMANENT, Reason: "InvalidNumber"},
	InternalError:    {Class: fsmpb.OutcomeClass_OUTCOME_INTERNAL, Reason: "InternalError"},
}

// Outcomes returns the outcome names, sorted.
func Outcomes() []string {
	names := make([]string, 0, len(outcomes))
	for n := range outcomes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// OutcomeOf returns the class and reason the platform reports for the named
// outcome; ok is false for an unknown name.
func OutcomeOf(name string) (o telephony.Outcome, ok bool) {
	o, ok = outcomes[name]
	return o, ok
}

// ParseMix parses "success=60,busy=10,..." into outcome weights.
func ParseMix(s string) (map[string]int, error) {
	mix := map[string]int{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if !ok {
			return nil, fmt.Errorf("mix %q: want outcome=weight", part)
		}
		if _, known := outcomes[name]; !known {
			return nil, fmt.Errorf("mix: unknown outcome %q (want one of %s)", name, strings.Join(Outcomes(), ", "))
		}
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("mix %q: weight must be a whole number ≥ 0", part)
		}
		mix[name] += n
	}
	return mix, nil
}

// ParseRule parses "prefix=outcome".
func ParseRule(s string) (Rule, error) {
	prefix, name, ok := strings.Cut(s, "=")
	prefix, name = strings.TrimSpace(prefix), strings.TrimSpace(name)
	if !ok || prefix == "" {
		return Rule{}, fmt.Errorf("rule %q: want telnum-prefix=outcome", s)
	}
	if _, known := outcomes[name]; !known {
		return Rule{}, fmt.Errorf("rule %q: unknown outcome %q (want one of %s)", s, name, strings.Join(Outcomes(), ", "))
	}
	return Rule{Prefix: prefix, Outcome: name}, nil
}

// Range is a duration chosen uniformly from [Min, Max]; a Max not above Min
// means exactly Min.
type Range struct {
	Min, Max time.Duration
}

// Fixed is a Range of exactly d.
func Fixed(d time.Duration) Range { return Range{Min: d, Max: d} }

// ParseRange parses "2s" (fixed) or "1s-3s" (uniform).
func ParseRange(s string) (Range, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	a, err := time.ParseDuration(strings.TrimSpace(lo))
	if err != nil {
		return Range{}, fmt.Errorf("duration range %q: %w", s, err)
	}
	r := Fixed(a)
	if isRange {
		b, err := time.ParseDuration(strings.TrimSpace(hi))
		if err != nil {
			return Range{}, fmt.Errorf("duration range %q: %w", s, err)
		}
		if b < a {
			return Range{}, fmt.Errorf("duration range %q: maximum below minimum", s)
		}
		r.Max = b
	}
	if r.Min < 0 {
		return Range{}, fmt.Errorf("duration range %q: negative", s)
	}
	return r, nil
}

func (r Range) String() string {
	if r.Max <= r.Min {
		return r.Min.String()
	}
	return r.Min.String() + "-" + r.Max.String()
}

// sample draws a duration (rng may only be used under the caller's lock).
func (r Range) sample(rng *rand.Rand) time.Duration {
	if r.Max <= r.Min {
		return max(r.Min, 0)
	}
	return r.Min + time.Duration(rng.Int64N(int64(r.Max-r.Min)+1))
}
