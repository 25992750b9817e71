// Package check holds the chaos suite's checkers. Each reads a
// history.History and answers a Report: what it checked and every
// violation, with the slice of history that shows it (the operations,
// calls or notifications involved).
//
// Linearizable checks the request operations with porcupine (see model.go);
// the others check the correctness invariants of docs/DESIGN.md from what the media
// platform and the trigger application saw and the final replicated state.
package check

import (
	"fmt"
	"strings"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/sim/mediasim"
	"github.com/seed-7bfc04c2/dialtone/test/chaos/history"
)

// Finding is one violation.
type Finding struct {
	Message string
	// Slice is the history that shows it, one line per entry.
	Slice []string
}

// Report is one checker's verdict.
type Report struct {
	Checker string
	// Checked says what was examined ("1234 requests", ...).
	Checked  string
	Findings []Finding
	// Notes are facts worth reporting that are not violations.
	Notes []string
}

// OK reports whether the checker found nothing.
func (r Report) OK() bool { return len(r.Findings) == 0 }

// String renders the report, findings with their history slices.
func (r Report) String() string {
	var b strings.Builder
	verdict := "ok"
	if !r.OK() {
		verdict = fmt.Sprintf("FAILED (%d violations)", len(r.Findings))
	}
	fmt.Fprintf(&b, "%-28s %s: %s\n", r.Checker, verdict, r.Checked)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "    note: %s\n", n)
	}
	for i, f := range r.Findings {
		if i == 20 {
			fmt.Fprintf(&b, "  ... %d more\n", len(r.Findings)-i)
			break
		}
		fmt.Fprintf(&b, "  - %s\n", f.Message)
		for _, l := range f.Slice {
			fmt.Fprintf(&b, "      %s\n", l)
		}
	}
	return b.String()
}

// Invariants runs every invariant checker (all but Linearizable).
func Invariants(h *history.History) []Report {
	return []Report{
		NoLostCreates(h),
		NoConcurrentAttempts(h),
		AttemptsWithinMax(h),
		DialOnlyCommitted(h),
		DeposedLeaderSilent(h),
		NothingAfterCancelOrTTL(h),
		WithinPortBudget(h),
		WithinCAPS(h),
		TerminalAndNotified(h),
		ContactRules(h),
	}
}

// index groups a history by request.
type index struct {
	finals map[string]history.Final // by id
	calls  map[string][]mediasim.CallRecord
	ops    map[string][]history.Op // by id (creates once answered)
}

func newIndex(h *history.History) index {
	ix := index{finals: map[string]history.Final{}, calls: map[string][]mediasim.CallRecord{}, ops: map[string][]history.Op{}}
	for _, f := range h.Finals {
		ix.finals[f.ID] = f
	}
	for _, c := range h.Calls {
		ix.calls[c.RequestID] = append(ix.calls[c.RequestID], c)
	}
	for _, o := range h.Ops {
		if o.ID != "" {
			ix.ops[o.ID] = append(ix.ops[o.ID], o)
		}
	}
	return ix
}

// acked are the ids of creates the cluster acknowledged.
func acked(h *history.History) []history.Op {
	var out []history.Op
	for _, o := range h.Ops {
		if o.Kind == history.Create && o.Outcome == history.OK && o.ID != "" {
			out = append(out, o)
		}
	}
	return out
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("15:04:05.000")
}

func callLine(c mediasim.CallRecord) string {
	return fmt.Sprintf("call %s attempt %d by %s on %s [%s..%s] %s %s%s", c.CallUUID, c.Attempt, orDash(c.Caller), orDash(c.ServerID),
		ts(c.Start), ts(c.End), c.State, c.Outcome, map[bool]string{true: " CONCURRENT", false: ""}[c.Concurrent])
}

func finalLine(f history.Final) string {
	if !f.Found {
		return fmt.Sprintf("final %s token=%s: NOT FOUND", f.ID, f.Token)
	}
	return fmt.Sprintf("final %s token=%s: %s %s (%s) attempts %d/%d created %s expires %s notification %s",
		f.ID, f.Token, f.State, f.Result, f.ResultReason, f.AttemptsMade, f.MaxAttempts, ts(f.Created), ts(f.Expires), f.Notification)
}

func attemptLine(a history.Attempt) string {
	return fmt.Sprintf("attempt %d %s [%s..%s] %s %s", a.Number, a.CallUUID, ts(a.Started), ts(a.Ended), a.Outcome, a.Reason)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// requestSlice is everything recorded about one request.
func (ix index) requestSlice(id string) []string {
	var out []string
	for _, o := range ix.ops[id] {
		out = append(out, o.String())
	}
	if f, ok := ix.finals[id]; ok {
		out = append(out, finalLine(f))
		for _, a := range f.Attempts {
			out = append(out, "  "+attemptLine(a))
		}
	}
	for _, c := range ix.calls[id] {
		out = append(out, callLine(c))
	}
	return out
}
