package sipjudge

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// A call as uas_takeover.xml logs it (answered, held, hung up by SIPp, its
// BYE answered 200), with an indented line and SIPp's own noise around.
const answeredLog = `SIPp log started
INVITE rid=0197a3c2-5b1e-7c40-9f1d-2b8e4a6c1d01 cid=6f1c2a9e-3d4b-4e7a-8b2c-1a9d0e5f7c31 t=10234 tenant=acme ani=4930999 rna=
ACKED rid=0197a3c2-5b1e-7c40-9f1d-2b8e4a6c1d01 cid=6f1c2a9e-3d4b-4e7a-8b2c-1a9d0e5f7c31 t=10241 ftag=8b3e1f0c ttag=4121SIPpTag011

  END rid=0197a3c2-5b1e-7c40-9f1d-2b8e4a6c1d01 cid=6f1c2a9e-3d4b-4e7a-8b2c-1a9d0e5f7c31 t=40241 how=callee_bye
BYEOK rid=0197a3c2-5b1e-7c40-9f1d-2b8e4a6c1d01 cid=6f1c2a9e-3d4b-4e7a-8b2c-1a9d0e5f7c31 t=40243
`

const answeredID = "0197a3c2-5b1e-7c40-9f1d-2b8e4a6c1d01"

func TestReadLog(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sipp-acme.log")
	if err := os.WriteFile(p, []byte(answeredLog), 0o600); err != nil {
		t.Fatal(err)
	}
	es, err := ReadLog(p)
	if err != nil {
		t.Fatal(err)
	}
	const cid = "6f1c2a9e-3d4b-4e7a-8b2c-1a9d0e5f7c31"
	var got []string
	for _, e := range es {
		if e.RID != answeredID || e.CID != cid {
			t.Errorf("%s: rid %q cid %q", e.Kind, e.RID, e.CID)
		}
		got = append(got, e.Kind)
	}
	if want := []string{"INVITE", "ACKED", "END", "BYEOK"}; !slices.Equal(got, want) {
		t.Fatalf("kinds %v, want %v", got, want)
	}
	if es[0].Tick != 10234 || es[0].Fields["tenant"] != "acme" || es[0].Fields["rna"] != "" {
		t.Errorf("INVITE %+v", es[0])
	}
	if es[1].Fields["ftag"] != "8b3e1f0c" || es[1].Fields["ttag"] != "4121SIPpTag011" {
		t.Errorf("ACKED %+v", es[1])
	}
	if es[2].Tick != 40241 || es[2].Fields["how"] != "callee_bye" {
		t.Errorf("END %+v", es[2])
	}

	if es, err := ReadLog(filepath.Join(dir, "not-yet")); es != nil || err != nil {
		t.Errorf("a log not written yet: %v, %v; want none and no error", es, err)
	}
	if _, err := ReadLog(dir); err == nil {
		t.Error("reading a directory: no error")
	}
}

func TestRingOut(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   bool
	}{
		{"RingNoAnswer (SIP 487)", true},
		{"RingNoAnswer (SIP 487):MaxAttempts Exceeded", true},
		// Uncounted attempts come first: the last attempt rang out.
		{"NotSent:RingNoAnswer (SIP 487):MaxAttempts Exceeded", true},
		{"Interrupted:RingNoAnswer (SIP 487)", true},
		// A ring-out, then a last attempt that did not ring out: a
		// match anywhere in Status would misread these.
		{"RingNoAnswer (SIP 487):DestinationBusy (SIP 486):MaxAttempts Exceeded", false},
		{"RingNoAnswer (SIP 487):NotSent", false},
		{"DestinationBusy (SIP 486):MaxAttempts Exceeded", false},
		{"MaxAttempts Exceeded", false},
		{"", false},
	} {
		if got := ringOut(tc.status); got != tc.want {
			t.Errorf("ringOut(%q) = %v, want %v", tc.status, got, tc.want)
		}
	}
}

func TestNotified(t *testing.T) {
	for _, tc := range []struct {
		n    Note
		want Outcome
	}{
		{Note{Result: "FAILURE", Status: "NotSent:RingNoAnswer (SIP 487):MaxAttempts Exceeded"}, NoAnswer},
		// Rang out, then answered: Status lists the ring-out, the result
		// is the answer.
		{Note{Result: "SUCCESS", Status: "RingNoAnswer (SIP 487)"}, Success},
		{Note{Result: "FAILURE", Status: "RingNoAnswer (SIP 487):DestinationBusy (SIP 486):MaxAttempts Exceeded"}, "FAILURE"},
	} {
		if got := notified(tc.n); got != tc.want {
			t.Errorf("notified(%+v) = %s, want %s", tc.n, got, tc.want)
		}
	}
}

func TestMostAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spans []span
		want  int
	}{
		{"none", nil, 0},
		{"one after another", []span{{0, 10}, {20, 30}}, 1},
		{"an end at the next start", []span{{0, 10}, {10, 20}}, 1},
		{"overlapping", []span{{0, 10}, {5, 20}, {6, 7}}, 3},
		{"still open", []span{{0, -1}, {100, 200}}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]*span{}
			for i, s := range tc.spans {
				m[strings.Repeat("c", i+1)] = &s
			}
			if got := mostAtOnce(m); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	const (
		clean     = "INVITE rid=a cid=1 t=10\nACKED rid=a cid=1 t=11\nEND rid=a cid=1 t=50 how=callee_bye\nBYEOK rid=a cid=1 t=51\n"
		ringClean = "INVITE rid=r cid=9 t=10 tenant=ring rna=15000ms\nEND rid=r cid=9 t=15010 how=cancel\n"
	)
	ok := func(id string) *pb.Request {
		return &pb.Request{Id: id, State: "PROCESSED", Result: "SUCCESS", Attempts: []*pb.Attempt{{Outcome: "SUCCESS"}}}
	}
	noAnswer := &pb.Request{Id: "r", State: "PROCESSED", Result: "FAILURE", ResultReason: "MaxAttempts Exceeded",
		Attempts: []*pb.Attempt{{Outcome: "TEMPORARY", Reason: "RingNoAnswer (SIP 487)"}}}
	ringOutNote := Note{Result: "FAILURE", Status: "RingNoAnswer (SIP 487):MaxAttempts Exceeded"}
	notes := map[string][]Note{"a": {{Result: "SUCCESS"}}, "r": {ringOutNote}}
	for _, tc := range []struct {
		name      string
		log, ring string            // the answering and the ringing far end's logs
		a         *pb.Request       // request "a" (answered); "r" rings out
		extra     bool              // request "b" placed to the answering far end too
		notes     map[string][]Note // nil: notes
		want      Result            // Details, Dialogs and Requests aside
		wrong     []string          // the requests judged wrong
	}{
		{name: "clean", log: clean, ring: ringClean, a: ok("a"), want: Result{MaxDialogs: 2, Budget: 2}},
		{name: "a real log excerpt", log: strings.ReplaceAll(answeredLog, answeredID, "a"), ring: ringClean, a: ok("a"),
			want: Result{MaxDialogs: 2, Budget: 2}},
		{name: "dropped (our BYE)", log: "INVITE rid=a cid=1 t=10\nACKED rid=a cid=1 t=11\nEND rid=a cid=1 t=20 how=caller_bye\n", ring: ringClean, a: ok("a"),
			want: Result{Dropped: 1, WrongOutcome: 1, MaxDialogs: 2, Budget: 2}, wrong: []string{"a"}},
		{name: "dropped (its BYE unanswered)", log: "INVITE rid=a cid=1 t=10\nACKED rid=a cid=1 t=11\nEND rid=a cid=1 t=50 how=callee_bye\n", ring: ringClean, a: ok("a"),
			want: Result{Dropped: 1, WrongOutcome: 1, MaxDialogs: 2, Budget: 2}, wrong: []string{"a"}},
		{name: "duplicate INVITE", log: clean + "INVITE rid=a cid=2 t=60\nACKED rid=a cid=2 t=61\nEND rid=a cid=2 t=70 how=callee_bye\nBYEOK rid=a cid=2 t=71\n", ring: ringClean,
			a:    &pb.Request{Id: "a", Result: "SUCCESS", Attempts: []*pb.Attempt{{Outcome: "INTERRUPTED"}, {Outcome: "SUCCESS"}}},
			want: Result{Duplicates: 1, Uncounted: 1, MaxDialogs: 2, Budget: 2}},
		{name: "duplicate INVITE, two counted attempts", log: clean + "INVITE rid=a cid=2 t=60\nACKED rid=a cid=2 t=61\nEND rid=a cid=2 t=70 how=callee_bye\nBYEOK rid=a cid=2 t=71\n", ring: ringClean,
			a: &pb.Request{Id: "a", Result: "SUCCESS", Attempts: []*pb.Attempt{{}, {}}}, want: Result{Duplicates: 1, ExtraAttempts: 1, MaxDialogs: 2, Budget: 2}},
		{name: "an uncounted attempt before the call", log: clean, ring: ringClean,
			a:    &pb.Request{Id: "a", Result: "SUCCESS", Attempts: []*pb.Attempt{{Outcome: "INTERRUPTED", Reason: "NotSent"}, {Outcome: "SUCCESS"}}},
			want: Result{Uncounted: 1, MaxDialogs: 2, Budget: 2}},
		{name: "an uncounted attempt before a ring-out", log: clean, ring: ringClean, a: ok("a"),
			notes: map[string][]Note{"a": {{Result: "SUCCESS"}}, "r": {{Result: "FAILURE", Status: "NotSent:RingNoAnswer (SIP 487):MaxAttempts Exceeded"}}},
			want:  Result{MaxDialogs: 2, Budget: 2}},
		{name: "a notification whose last attempt did not ring out", log: clean, ring: ringClean, a: ok("a"),
			notes: map[string][]Note{"a": {{Result: "SUCCESS"}}, "r": {{Result: "FAILURE", Status: "RingNoAnswer (SIP 487):DestinationBusy (SIP 486):MaxAttempts Exceeded"}}},
			want:  Result{WrongOutcome: 1, MaxDialogs: 2, Budget: 2}, wrong: []string{"r"}},
		{name: "two counted attempts", log: clean, ring: ringClean,
			a:    &pb.Request{Id: "a", Result: "SUCCESS", Attempts: []*pb.Attempt{{Outcome: "TEMPORARY"}, {Outcome: "SUCCESS"}}},
			want: Result{ExtraAttempts: 1, MaxDialogs: 2, Budget: 2}},
		{name: "an extra dialog over the budget", log: clean + "INVITE rid=b cid=3 t=20\nACKED rid=b cid=3 t=21\nEND rid=b cid=3 t=30 how=callee_bye\nBYEOK rid=b cid=3 t=31\n", ring: ringClean,
			a: ok("a"), extra: true, notes: map[string][]Note{"a": {{Result: "SUCCESS"}}, "b": {{Result: "SUCCESS"}}, "r": {ringOutNote}},
			want: Result{OverBudget: 1, MaxDialogs: 3, Budget: 2}},
		{name: "early CANCEL", log: clean, ring: "INVITE rid=r cid=9 t=10\nEND rid=r cid=9 t=1000 how=cancel\n", a: ok("a"),
			want: Result{EarlyCancels: 1, MaxDialogs: 2, Budget: 2}},
		{name: "CANCEL just before the ring timeout", log: clean, ring: "INVITE rid=r cid=9 t=10\nEND rid=r cid=9 t=14011 how=cancel\n", a: ok("a"),
			want: Result{MaxDialogs: 2, Budget: 2}},
		{name: "wrong stored result", log: clean, ring: ringClean, a: &pb.Request{Id: "a", Result: "FAILURE", Attempts: []*pb.Attempt{{}}},
			want: Result{WrongOutcome: 1, MaxDialogs: 2, Budget: 2}, wrong: []string{"a"}},
		{name: "never CANCELled", log: clean, ring: "INVITE rid=r cid=9 t=10\n", a: ok("a"),
			want: Result{WrongOutcome: 1, MaxDialogs: 2, Budget: 2}, wrong: []string{"r"}},
		{name: "no record of the request", log: clean, ring: ringClean,
			want: Result{WrongOutcome: 1, MaxDialogs: 2, Budget: 2}, wrong: []string{"a"}},
		{name: "unnotified, notified twice, wrong notification", log: clean, ring: ringClean, a: ok("a"),
			notes: map[string][]Note{"r": {{Result: "SUCCESS"}, {Result: "FAILURE", Status: "RingNoAnswer (SIP 487)"}}},
			want:  Result{Unnotified: 1, Renotified: 1, WrongOutcome: 1, MaxDialogs: 2, Budget: 2}, wrong: []string{"r"}},
		{name: "another far end's entries are ignored", log: clean + ringClean, ring: ringClean, a: ok("a"),
			want: Result{MaxDialogs: 2, Budget: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entries := func(log string) []Entry {
				es, err := parse(strings.NewReader(log))
				if err != nil {
					t.Fatal(err)
				}
				return es
			}
			answer := Far{Name: "acme", Budget: 1, Answers: true, Requests: []string{"a"}, RingTimeout: 15 * time.Second, Entries: entries(tc.log)}
			ring := Far{Name: "ring", Budget: 1, Requests: []string{"r"}, RingTimeout: 15 * time.Second, Entries: entries(tc.ring)}
			reqs := map[string]*pb.Request{"r": noAnswer}
			if tc.a != nil {
				reqs["a"] = tc.a
			}
			if tc.extra {
				answer.Requests = append(answer.Requests, "b")
				reqs["b"] = ok("b")
			}
			ns := tc.notes
			if ns == nil {
				ns = notes
			}
			res := Judge([]Far{answer, ring}, reqs, ns)
			var wrong []string
			for _, v := range res.Requests {
				if v.Wrong {
					wrong = append(wrong, v.ID)
				}
			}
			if !slices.Equal(wrong, tc.wrong) {
				t.Errorf("wrong requests %v, want %v", wrong, tc.wrong)
			}
			if want := 2 + len(answer.Requests) - 1; len(res.Requests) != want {
				t.Errorf("%d verdicts, want one per request: %+v", len(res.Requests), res.Requests)
			}
			if len(res.Dialogs) != 2 || res.Dialogs[0].Far != "acme" || res.Dialogs[1].Far != "ring" {
				t.Errorf("dialogs %+v, want acme's then ring's", res.Dialogs)
			}
			got := res
			got.Details, got.Dialogs, got.Requests = nil, nil, nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v\ndetails %q", got, tc.want, res.Details)
			}
		})
	}
}
