package chaos

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/sim/notifysink"
	"github.com/seed-7bfc04c2/dialtone/test/sipjudge"
)

// TestSIPJudge: the SIP round hands the far ends' logs, budgets, ring
// timeout and notifications to sipjudge (whose own tests hold the judge's
// cases) and passes a clean round.
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
		want      sipjudge.Result // the counts but MaxDialogs and Budget
	}{
		{name: "clean", log: clean, ring: ringClean, a: ok("a"), notes: notes},
		{name: "dropped (our BYE)", log: "INVITE rid=a cid=1 t=10\nACKED rid=a cid=1 t=11\nEND rid=a cid=1 t=20 how=caller_bye\n", ring: ringClean, a: ok("a"), notes: notes,
			want: sipjudge.Result{Dropped: 1, WrongOutcome: 1}},
		{name: "an uncounted attempt before a ring-out", log: clean, ring: ringClean, a: ok("a"),
			notes: []notifysink.Notification{{RequestID: "a", Result: "SUCCESS"}, {RequestID: "r", Result: "FAILURE", Status: "NotSent:RingNoAnswer (SIP 487):MaxAttempts Exceeded"}}},
		{name: "over budget", log: clean + "INVITE rid=b cid=3 t=20\nACKED rid=b cid=3 t=21\nEND rid=b cid=3 t=30 how=callee_bye\nBYEOK rid=b cid=3 t=31\n", ring: ringClean, a: ok("a"),
			notes: append(notes, notifysink.Notification{RequestID: "b", Result: "SUCCESS"}), want: sipjudge.Result{OverBudget: 1}},
		{name: "early CANCEL", log: clean, ring: "INVITE rid=r cid=9 t=10\nEND rid=r cid=9 t=1000 how=cancel\n", a: ok("a"), notes: notes,
			want: sipjudge.Result{EarlyCancels: 1}},
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
			r := SIPRound{Up: 1, Ringing: 1}
			r.judge([]*sipFar{far, ring}, want, reqs, tc.notes)
			got := r.Result
			got.MaxDialogs, got.Budget, got.Details, got.Dialogs, got.Requests = 0, 0, nil, nil, nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if ok := reflect.DeepEqual(tc.want, sipjudge.Result{}); r.OK(1, 1) != ok {
				t.Errorf("OK %v, want %v: %s", r.OK(1, 1), ok, r)
			}
		})
	}
}
