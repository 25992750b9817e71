// Package sipjudge judges a round of live SIP calls after a leader
// failover by what the far ends (SIPp UASes) saw: it parses the UAS
// scenarios' logs, builds each request's far-end view (its INVITEs, how
// its first call ended), counts the far ends' most dialogs at once against
// their port budgets, and compares each request's stored result, attempts
// and notifications with that view. The chaos SIP run (test/chaos) and the
// e2e takeover test (test/e2e) report from its Result.
package sipjudge

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// Outcome is what a far end saw of a request.
type Outcome string

const (
	Success  Outcome = "SUCCESS"  // answered, and ended by the far end's own BYE answered 200
	Dropped  Outcome = "DROPPED"  // answered by an answering far end, but not ended so
	NoAnswer Outcome = "NOANSWER" // rang until CANCELled
	Unknown  Outcome = "?"        // a ringing far end's call never CANCELled (or never INVITEd)
)

// Far is one far end of a round: a trunk of its own, whose log holds only
// its requests' calls.
type Far struct {
	Name   string // its tenant, for the details
	Budget int    // its trunk's port budget: the most dialogs it may hold at once
	// Answers: it answers every call and hangs up itself (else it rings
	// until CANCELled).
	Answers bool
	// RingTimeout is its requests' ring timeout: a CANCEL more than a
	// second before it is early (the failover's, not the request's).
	// Zero: not checked.
	RingTimeout time.Duration
	Requests    []string // the round's requests dialled to it
	Entries     []Entry  // its log (entries of other requests are ignored)
}

// Note is one delivery of a request's result notification.
type Note struct {
	Result string // SUCCESS or FAILURE
	Status string // see internal/notify.Status
}

// Verdict is the judgement of one request.
type Verdict struct {
	ID, Far string
	Saw     Outcome // what the far end saw of its first call
	Invites int     // INVITEs the far end saw
	// Wrong: the request is missing, or its result or a notification of
	// it is not what the far end saw.
	Wrong bool
}

// FarDialogs is one far end's most dialogs at once.
type FarDialogs struct {
	Far          string
	Most, Budget int
}

// Result is the judgement of a round, summed over its far ends.
type Result struct {
	Dropped       int // answered calls not ended by the far end's own BYE answered 200
	Duplicates    int // INVITEs beyond the first per request
	ExtraAttempts int // counted attempts beyond the first per request
	Uncounted     int // attempts not counted (interrupted before their INVITE, e.g. fenced at the send): listed, not a failure
	WrongOutcome  int // requests whose result or a notification differs from what the far end saw
	Unnotified    int // requests never notified
	Renotified    int // repeated notifications (at least once: counted, not an error)
	MaxDialogs    int // the far ends' most dialogs at once, summed
	Budget        int // their port budgets, summed
	OverBudget    int // far ends above their budget
	EarlyCancels  int // ringing calls CANCELled well before their ring timeout
	// Details name the requests behind the counts above (their attempts'
	// outcomes), for the log.
	Details  []string
	Dialogs  []FarDialogs // per far end, in the order given
	Requests []Verdict    // per far end in the order given, then by id
}

// Judge compares the requests' records (reqs, by id) and their
// notifications (notes, by id, in delivery order) with what the far ends
// saw.
func Judge(fars []Far, reqs map[string]*pb.Request, notes map[string][]Note) Result {
	var r Result
	for _, f := range fars {
		r.judgeFar(f, reqs, notes)
	}
	return r
}

// farView is what one far end saw, its requests by id, its calls by
// Call-ID.
type farView struct {
	invites              map[string]int    // by request
	first                map[string]string // by request: its first call's Call-ID
	byeOK                map[string]bool   // its own BYE answered 200
	callerBye, cancelled map[string]bool   // ended by our BYE, by our CANCEL
	dialogs              map[string]*span
}

// span is a dialog (from its INVITE) in SIPp's clock; to < 0: not ended.
type span struct{ from, to int64 }

func (r *Result) judgeFar(f Far, reqs map[string]*pb.Request, notes map[string][]Note) {
	mine := map[string]bool{}
	for _, id := range f.Requests {
		mine[id] = true
	}
	v := farView{invites: map[string]int{}, first: map[string]string{}, byeOK: map[string]bool{},
		callerBye: map[string]bool{}, cancelled: map[string]bool{}, dialogs: map[string]*span{}}
	for _, e := range f.Entries {
		if !mine[e.RID] {
			continue
		}
		switch e.Kind {
		case "INVITE":
			if v.invites[e.RID]++; v.invites[e.RID] == 1 {
				v.first[e.RID] = e.CID
			}
			v.dialogs[e.CID] = &span{e.Tick, -1}
		case "BYEOK":
			v.byeOK[e.CID] = true
		case "END":
			switch e.Fields["how"] {
			case "caller_bye":
				v.callerBye[e.CID] = true
			case "cancel":
				v.cancelled[e.CID] = true
				if s := v.dialogs[e.CID]; s != nil && f.RingTimeout > 0 && time.Duration(e.Tick-s.from)*time.Millisecond < f.RingTimeout-time.Second {
					r.EarlyCancels++ // the ring timeout is the request's, not the failover's
				}
			}
		}
		if s := v.dialogs[e.CID]; s != nil && (e.Kind == "END" || e.Kind == "BYEOK") {
			s.to = e.Tick // the last of END and BYEOK
		}
	}
	m := mostAtOnce(v.dialogs)
	r.MaxDialogs += m
	r.Budget += f.Budget
	r.Dialogs = append(r.Dialogs, FarDialogs{Far: f.Name, Most: m, Budget: f.Budget})
	if m > f.Budget {
		r.OverBudget++
	}
	for _, id := range slices.Sorted(maps.Keys(mine)) {
		r.Requests = append(r.Requests, r.judgeRequest(f, v, id, reqs[id], notes[id]))
	}
}

func (r *Result) judgeRequest(f Far, v farView, id string, req *pb.Request, ns []Note) Verdict {
	r.Duplicates += max(v.invites[id]-1, 0)
	saw, cid := Unknown, v.first[id]
	switch {
	case f.Answers && v.byeOK[cid] && !v.callerBye[cid]:
		saw = Success
	case f.Answers:
		r.Dropped++
		saw = Dropped
	case v.cancelled[cid]:
		saw = NoAnswer
	}
	verdict := Verdict{ID: id, Far: f.Name, Saw: saw, Invites: v.invites[id], Wrong: true}
	if req == nil {
		r.WrongOutcome++
		return verdict
	}
	// An attempt that ended INTERRUPTED or INTERNAL does not count (the
	// state machine gives it back); one that reached the far end shows as
	// a duplicate INVITE above.
	counted := 0
	for _, a := range req.GetAttempts() {
		if o := a.GetOutcome(); o == "INTERRUPTED" || o == "INTERNAL" {
			r.Uncounted++
		} else {
			counted++
		}
	}
	r.ExtraAttempts += max(counted-1, 0)
	if len(req.GetAttempts()) > 1 || saw == Dropped || v.invites[id] > 1 {
		var as []string
		for _, a := range req.GetAttempts() {
			as = append(as, a.GetOutcome()+" "+a.GetReason())
		}
		r.Details = append(r.Details, fmt.Sprintf("%s (%s): far end saw %s in %d INVITEs; attempts %q", id, f.Name, saw, v.invites[id], as))
	}
	wrong := req.GetResult() != resultOf(saw)
	if len(ns) == 0 {
		r.Unnotified++
	}
	r.Renotified += max(len(ns)-1, 0)
	for _, n := range ns {
		wrong = wrong || notified(n) != saw
	}
	verdict.Wrong = wrong
	if wrong {
		r.WrongOutcome++
		var got []string
		for _, n := range ns {
			got = append(got, n.Result+" "+n.Status)
		}
		r.Details = append(r.Details, fmt.Sprintf("%s (%s): far end saw %s; result %s %q, notified %q", id, f.Name, saw, req.GetResult(), req.GetResultReason(), got))
	}
	return verdict
}

// resultOf is the stored result a far end's view calls for; none for a
// dropped call or an unknown one.
func resultOf(saw Outcome) string {
	switch saw {
	case Success:
		return "SUCCESS"
	case NoAnswer:
		return "FAILURE"
	}
	return ""
}

// notified is the outcome a notification reports, in a far end's terms.
func notified(n Note) Outcome {
	if n.Result == "FAILURE" && ringOut(n.Status) {
		return NoAnswer
	}
	return Outcome(n.Result)
}

// ringOut reports whether a notification's Status says the last attempt
// rang out. Status is every unsuccessful attempt's reason in order, then
// the final reason, joined by ':' (internal/notify.Status, which leaves
// out sends the gate refused); an interrupted attempt ("Interrupted") may
// come before the one that reached the far end, so only the last
// attempt's reason tells what it saw.
func ringOut(status string) bool {
	parts := strings.Split(strings.TrimSuffix(status, ":MaxAttempts Exceeded"), ":")
	return strings.HasPrefix(parts[len(parts)-1], "RingNoAnswer (SIP 487)")
}

// mostAtOnce is the most dialogs open at one time; one ending at the tick
// another starts does not overlap it.
func mostAtOnce(dialogs map[string]*span) int {
	type ev struct {
		at    int64
		delta int
	}
	var evs []ev
	for _, s := range dialogs {
		evs = append(evs, ev{s.from, 1})
		if s.to >= 0 {
			evs = append(evs, ev{s.to, -1})
		}
	}
	slices.SortFunc(evs, func(a, b ev) int {
		if a.at != b.at {
			return cmp.Compare(a.at, b.at)
		}
		return cmp.Compare(a.delta, b.delta) // ends first
	})
	n, most := 0, 0
	for _, e := range evs {
		n += e.delta
		most = max(most, n)
	}
	return most
}
