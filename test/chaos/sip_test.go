package chaos

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/sim/notifysink"
)

// TestSIPJudge: the SIP variant's checker counts what it promises to and
// passes a clean round.
func TestSIPJudge(t *testing.T) {
	const clean = "INVITE rid=a cid=1 t=10\nACKED rid=a cid=1 t=11\nEND rid=a cid=1 t=50 how=callee_bye\nBYEOK rid=a cid=1 t=51\n"
	const ringClean = "INVITE rid=r cid=9 t=10\nEND rid=r cid=9 t=15010 how=cancel\n"
	ok := func(id string) *pb.Request {
		return &pb.Request{Id: id, State: "PROCESSED", Result: "SUCCESS", Attempts: []*pb.Attempt{{}}}
	}
	noAnswer := &pb.Request{Id: "r", State: "PROCESSED", Result: "FAILURE", Attempts: []*pb.Attempt{{}}}
	notes := []notifysink.Notification{{RequestID: "a", Result: "SUCCESS"}, {RequestID: "r", Result: "FAILURE", Status: "RingNoAnswer (SIP 487)"}}
	for _, tc := range []struct {
		name      string
		log, ring string
		a         *pb.Request
		notes     []notifysink.Notification
		want      SIPRound
	}{
		{name: "clean", log: clean, ring: ringClean, a: ok("a"), notes: notes},
		{name: "dropped (our BYE)", log: "INVITE rid=a cid=1 t=10\nACKED rid=a cid=1 t=11\nEND rid=a cid=1 t=20 how=caller_bye\n", ring: ringClean, a: ok("a"), notes: notes,
			want: SIPRound{Dropped: 1, WrongOutcome: 1}},
		{name: "second INVITE", log: clean + "INVITE rid=a cid=2 t=60\nACKED rid=a cid=2 t=61\nEND rid=a cid=2 t=70 how=callee_bye\nBYEOK rid=a cid=2 t=71\n", ring: ringClean,
			a: &pb.Request{Id: "a", Result: "SUCCESS", Attempts: []*pb.Attempt{{}, {}}}, notes: notes, want: SIPRound{Duplicates: 1, ExtraAttempts: 1}},
		{name: "an uncounted attempt before the call", log: clean, ring: ringClean, notes: notes,
			a:    &pb.Request{Id: "a", Result: "SUCCESS", Attempts: []*pb.Attempt{{Outcome: "INTERRUPTED", Reason: "NotSent"}, {Outcome: "SUCCESS"}}},
			want: SIPRound{Uncounted: 1}},
		{name: "an uncounted attempt before a ring-out", log: clean, ring: ringClean, a: ok("a"),
			notes: []notifysink.Notification{{RequestID: "a", Result: "SUCCESS"}, {RequestID: "r", Result: "FAILURE", Status: "NotSent:RingNoAnswer (SIP 487):MaxAttempts Exceeded"}}},
		{name: "two counted attempts", log: clean, ring: ringClean, notes: notes,
			a:    &pb.Request{Id: "a", Result: "SUCCESS", Attempts: []*pb.Attempt{{Outcome: "TEMPORARY"}, {Outcome: "SUCCESS"}}},
			want: SIPRound{ExtraAttempts: 1}},
		{name: "over budget", log: clean + "INVITE rid=b cid=3 t=20\nACKED rid=b cid=3 t=21\nEND rid=b cid=3 t=30 how=callee_bye\nBYEOK rid=b cid=3 t=31\n", ring: ringClean, a: ok("a"),
			notes: append(notes, notifysink.Notification{RequestID: "b", Result: "SUCCESS"}), want: SIPRound{OverBudget: 1}},
		{name: "early CANCEL", log: clean, ring: "INVITE rid=r cid=9 t=10\nEND rid=r cid=9 t=1000 how=cancel\n", a: ok("a"), notes: notes,
			want: SIPRound{EarlyCancels: 1}},
		{name: "unnotified, notified twice, wrong notification", log: clean, ring: ringClean, a: ok("a"),
			notes: []notifysink.Notification{{RequestID: "r", Result: "SUCCESS"}, {RequestID: "r", Result: "FAILURE", Status: "RingNoAnswer (SIP 487)"}},
			want:  SIPRound{Unnotified: 1, Renotified: 1, WrongOutcome: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			far := &sipFar{tenant: "acme", n: 1, answers: true, log: filepath.Join(dir, "acme")}
			ring := &sipFar{tenant: "ring", n: 1, log: filepath.Join(dir, "ring")}
			if err := os.WriteFile(far.log, []byte(tc.log), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(ring.log, []byte(tc.ring), 0o600); err != nil {
				t.Fatal(err)
			}
			want := map[string]*sipFar{"a": far, "r": ring}
			reqs := map[string]*pb.Request{"a": tc.a, "r": noAnswer}
			if tc.name == "over budget" {
				want["b"], reqs["b"] = far, ok("b")
			}
			var r SIPRound
			r.judge([]*sipFar{far, ring}, want, reqs, tc.notes)
			got := r
			got.MaxDialogs, got.Budget, got.Details = 0, 0, nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
