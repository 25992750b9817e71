package check

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/sim/mediasim"
	"github.com/seed-7bfc04c2/dialtone/internal/sim/notifysink"
	"github.com/seed-7bfc04c2/dialtone/test/chaos/history"
)

var t0 = time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// good is a small history that passes every checker: two requests, one
// dialled twice (busy, then success) and notified twice, one cancelled.
func good() *history.History {
	return &history.History{
		Settings: history.Settings{Tenant: "acme", CAPS: 2, PortLoadFactor: 100, TotalPorts: 1, MaxAttempts: 2, Skew: 100 * time.Millisecond,
			// Listed after its calls; closed between them; 2 calls per 10 s,
			// 3 s apart at least (the calls are 4 s apart).
			Contact: &history.ContactRules{
				Suppressed: []history.Listing{{Number: "+1", From: at(9000)}},
				Closed:     []history.Span{{From: at(2000), To: at(4000)}},
				CapMax:     2, CapPeriod: 10 * time.Second, CapMinGap: 3 * time.Second,
			}},
		Start: t0,
		End:   at(60_000),
		Ops: []history.Op{
			{Client: 0, Kind: history.Create, Token: "a", ID: "A", Telnum: "1", Invoke: at(0), Return: at(10), Outcome: history.OK},
			{Client: 1, Kind: history.Create, Token: "b", ID: "B", Telnum: "2", Invoke: at(5), Return: at(20), Outcome: history.OK},
			{Client: 0, Kind: history.Get, Token: "a", ID: "A", Invoke: at(30), Return: at(40), Outcome: history.OK, State: "PENDING"},
			{Client: 1, Kind: history.Cancel, Token: "b", ID: "B", Invoke: at(30), Return: at(50), Outcome: history.OK},
			{Client: 1, Kind: history.Get, Token: "b", ID: "B", Invoke: at(60), Return: at(70), Outcome: history.OK, State: "PROCESSED", Result: "CANCELLED"},
			{Client: 0, Kind: history.Cancel, Token: "a", ID: "A", Invoke: at(1100), Return: at(1150), Outcome: history.InProgress},
			{Client: 0, Kind: history.Get, Token: "a", ID: "A", Invoke: at(9000), Return: at(9010), Outcome: history.OK, State: "PROCESSED", Result: "SUCCESS"},
			{Client: 0, Kind: history.Cancel, Token: "a", ID: "A", Invoke: at(9020), Return: at(9030), Outcome: history.Finished},
		},
		Calls: []mediasim.CallRecord{
			{RequestID: "A", CallUUID: "A1", Attempt: 1, Telnum: "1", Start: at(1000), End: at(1500), State: mediasim.StateEnded, Outcome: "busy", Caller: "n1"},
			{RequestID: "A", CallUUID: "A2", Attempt: 2, Telnum: "1", Start: at(5000), End: at(8000), State: mediasim.StateEnded, Outcome: "success", Caller: "n2"},
		},
		Notifications: []notifysink.Notification{
			{RequestID: "A", Result: "SUCCESS", Time: at(8100), Seq: 1, Answered: 200},
			{RequestID: "A", Result: "SUCCESS", Time: at(8200), Seq: 2, Answered: 200},
		},
		Finals: []history.Final{
			{ID: "A", Token: "a", Found: true, State: "PROCESSED", Result: "SUCCESS", Telnum: "1", AttemptsMade: 2, MaxAttempts: 2, Expires: at(30_000),
				Attempts: []history.Attempt{
					{Number: 1, CallUUID: "A1", Started: at(990), Ended: at(1510), Reason: "DestinationBusy"},
					{Number: 2, CallUUID: "A2", Started: at(4990), Ended: at(8010), Reason: "TreatmentApplied"},
				}},
			{ID: "B", Token: "b", Found: true, State: "PROCESSED", Result: "CANCELLED", Telnum: "2", MaxAttempts: 2, Expires: at(30_000)},
		},
	}
}

// TestRevokedAttemptsAreNotCalls: a late dial that the platform refused
// (its call UUID revoked) counts as no call anywhere.
func TestRevokedAttemptsAreNotCalls(t *testing.T) {
	h := good()
	h.Finals[0].Attempts[0].Reason, h.Finals[0].Attempts[0].Ended = "Interrupted", at(1510)
	h.Calls = append(h.Calls, mediasim.CallRecord{RequestID: "A", CallUUID: "A1", Attempt: 1, Start: at(6000), End: at(6000), State: mediasim.StateRevoked, Caller: "n1"})
	for _, r := range all(h) {
		if !r.OK() {
			t.Errorf("%s", r)
		}
		if r.Checker == "dial-only-committed" && !strings.Contains(r.String(), "1 late attempts") {
			t.Errorf("fenced dial not noted: %s", r)
		}
	}
}

func all(h *history.History) []Report {
	return append(Invariants(h), Linearizable(h, 10*time.Second, ""))
}

func TestGoodHistoryPasses(t *testing.T) {
	// n1 placed the first call and n2, leading the next term, the second.
	h := good()
	h.Leaders = []history.LeaderObs{
		{Time: at(0), Node: "n1", State: "Leader", Term: 2},
		{Time: at(2000), Node: "n2", State: "Leader", Term: 3},
		{Time: at(2000), Node: "n1", State: "Follower", Term: 3},
	}
	if r := DeposedLeaderSilent(h); !r.OK() || !strings.Contains(r.Checked, "2 calls") {
		t.Errorf("%s", r)
	}
	for _, r := range all(good()) {
		if !r.OK() {
			t.Errorf("%s", r)
		}
	}
}

// TestViolationsFail feeds each checker a history with one known violation:
// that checker fails, naming it.
func TestViolationsFail(t *testing.T) {
	for _, tc := range []struct {
		name, checker, want string
		edit                func(h *history.History)
	}{
		{"lost create", "no-lost-creates", "is lost", func(h *history.History) {
			h.Finals[1] = history.Final{ID: "B", Token: "b"}
		}},
		{"changed telnum", "no-lost-creates", "changed", func(h *history.History) { h.Finals[0].Telnum = "9" }},
		{"overlapping calls", "no-concurrent-attempts", "in progress", func(h *history.History) {
			h.Calls[1].Start = at(1400)
		}},
		{"platform flagged concurrency", "no-concurrent-attempts", "in progress", func(h *history.History) { h.Calls[1].Concurrent = true }},
		{"too many attempts", "attempts-within-max", "made 3 attempts", func(h *history.History) { h.Finals[0].AttemptsMade = 3 }},
		{"attempt beyond max", "attempts-within-max", "as attempt 3", func(h *history.History) { h.Calls[1].Attempt = 3 }},
		{"one attempt dialled twice", "attempts-within-max", "dialled twice", func(h *history.History) {
			h.Calls = append(h.Calls, mediasim.CallRecord{RequestID: "A", CallUUID: "A2", Attempt: 2, Start: at(8500), End: at(8600), State: mediasim.StateEnded})
		}},
		{"deposed leader dials", "dial-only-committed", "a deposed leader dialled", func(h *history.History) {
			h.Finals[0].Attempts[0].Reason, h.Finals[0].Attempts[0].Ended = "Interrupted", at(800)
		}},
		{"call after a newer leader", "deposed-leader-silent", "after n2 was seen leading term 3", func(h *history.History) {
			h.Leaders = []history.LeaderObs{
				{Time: at(0), Node: "n1", State: "Leader", Term: 2},
				{Time: at(2000), Node: "n2", State: "Leader", Term: 3},
			}
			h.Calls[1].Caller = "n1"
		}},
		{"dial without commit", "dial-only-committed", "no committed attempt", func(h *history.History) { h.Calls[0].CallUUID = "X" }},
		{"dial after cancel", "nothing-after-cancel-or-ttl", "after the cancel", func(h *history.History) {
			h.Calls = append(h.Calls, mediasim.CallRecord{RequestID: "B", CallUUID: "B1", Attempt: 1, Start: at(100), End: at(200), State: mediasim.StateEnded})
			h.Finals[1].Attempts = []history.Attempt{{Number: 1, CallUUID: "B1", Started: at(90)}}
		}},
		{"in progress at cancel", "nothing-after-cancel-or-ttl", "in progress when the cancel", func(h *history.History) {
			h.Calls = append(h.Calls, mediasim.CallRecord{RequestID: "B", CallUUID: "B1", Attempt: 1, Start: at(25), End: at(900), State: mediasim.StateEnded})
		}},
		{"dial after ttl", "nothing-after-cancel-or-ttl", "after its TTL", func(h *history.History) { h.Finals[0].Expires = at(4000) }},
		{"over budget", "within-port-budget", "budget 1", func(h *history.History) {
			h.Calls = append(h.Calls, mediasim.CallRecord{RequestID: "C", CallUUID: "C1", Attempt: 1, Start: at(6000), End: at(7000), State: mediasim.StateEnded})
		}},
		{"refused", "within-port-budget", "refused", func(h *history.History) {
			h.Calls = append(h.Calls, mediasim.CallRecord{RequestID: "C", CallUUID: "C1", Attempt: 1, Start: at(9000), End: at(9000), State: mediasim.StateRefused})
		}},
		{"over caps", "within-caps", "attempts within", func(h *history.History) {
			for i := range 4 {
				h.Calls = append(h.Calls, mediasim.CallRecord{RequestID: "C", CallUUID: "C" + string(rune('0'+i)), Start: at(20_000 + 100*i), End: at(20_050 + 100*i), State: mediasim.StateEnded})
			}
		}},
		{"call to a suppressed number", "contact-rules", "after the number was listed", func(h *history.History) {
			h.Settings.Contact.Suppressed[0].From = at(3000)
		}},
		{"call in a closed window", "contact-rules", "in the closed span", func(h *history.History) {
			h.Settings.Contact.Closed = append(h.Settings.Contact.Closed, history.Span{From: at(4500), To: at(6000)})
		}},
		{"call within the window's grace", "contact-rules", "in the closed span", func(h *history.History) {
			// A grace that covers the call passes; one that does not fails.
			h.Settings.Contact.Closed = []history.Span{{From: at(4000), To: at(6000)}, {From: at(-500), To: at(2000)}}
			h.Settings.Contact.WindowGrace = 1000 * time.Millisecond
		}},
		{"cap exceeded", "contact-rules", "the cap is 1 per 10s", func(h *history.History) {
			h.Settings.Contact.CapMax = 1
		}},
		{"gap too short", "contact-rules", "the minimum gap is 5s", func(h *history.History) {
			h.Settings.Contact.CapMinGap = 5 * time.Second
		}},
		{"not terminal", "terminal-and-notified", "after the drain", func(h *history.History) { h.Finals[0].State = "PENDING" }},
		{"never notified", "terminal-and-notified", "never notified", func(h *history.History) { h.Notifications = nil }},
		{"notification rejected", "terminal-and-notified", "never notified", func(h *history.History) {
			h.Notifications = h.Notifications[:1]
			h.Notifications[0].Answered = 500
		}},
		{"two results", "terminal-and-notified", "notified FAILURE", func(h *history.History) { h.Notifications[1].Result = "FAILURE" }},
		{"cancelled without cancel", "terminal-and-notified", "without a cancel", func(h *history.History) {
			h.Ops = h.Ops[:3]
		}},
		{"stale read misses create", "linearizable", "token a", func(h *history.History) {
			h.Ops = append(h.Ops, history.Op{Client: 2, Kind: history.Get, Token: "a", ID: "A", Invoke: at(50), Return: at(60), Outcome: history.NotFound})
		}},
		{"read misses acknowledged cancel", "linearizable", "token b", func(h *history.History) {
			h.Ops[4].State, h.Ops[4].Result = "PENDING", ""
		}},
		{"done goes back to active", "linearizable", "token a", func(h *history.History) {
			h.Ops = append(h.Ops, history.Op{Client: 2, Kind: history.Get, Token: "a", ID: "A", Invoke: at(9100), Return: at(9110), Outcome: history.OK, State: "IN_PROGRESS"})
		}},
		{"cancel acknowledged after done", "linearizable", "token a", func(h *history.History) {
			h.Ops[7].Outcome = history.OK
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := good()
			tc.edit(h)
			var got *Report
			for _, r := range all(h) {
				if r.Checker == tc.checker {
					got = &r
				} else if !r.OK() && tc.checker != "terminal-and-notified" && tc.checker != "no-lost-creates" {
					t.Logf("also failed: %s", r)
				}
			}
			if got == nil {
				t.Fatalf("no checker %s", tc.checker)
			}
			if got.OK() {
				t.Fatalf("%s passed a history with a violation:\n%s", tc.checker, got)
			}
			if s := got.String(); !strings.Contains(s, tc.want) {
				t.Fatalf("report does not say %q:\n%s", tc.want, s)
			}
		})
	}
}

// TestUnknownOutcomes: an unanswered cancel may or may not have happened;
// an unanswered create leaves nothing to check.
func TestUnknownOutcomes(t *testing.T) {
	h := good()
	h.Ops[3].Outcome, h.Ops[3].Return = history.Unknown, time.Time{}
	if r := Linearizable(h, 10*time.Second, ""); !r.OK() {
		t.Fatalf("cancel of unknown outcome then cancelled: %s", r)
	}
	h.Ops[4].State, h.Ops[4].Result = "PENDING", ""
	h.Finals[1].State, h.Finals[1].Result = "PENDING", ""
	if r := Linearizable(h, 10*time.Second, ""); !r.OK() {
		t.Fatalf("cancel of unknown outcome, not cancelled: %s", r)
	}
}

// TestVisualisationWritten: a failed linearizability check leaves
// porcupine's HTML in the output directory.
func TestVisualisationWritten(t *testing.T) {
	h := good()
	h.Ops[4].State, h.Ops[4].Result = "PENDING", ""
	dir := t.TempDir()
	if r := Linearizable(h, 10*time.Second, dir); r.OK() {
		t.Fatal("passed")
	}
	b, err := os.ReadFile(filepath.Join(dir, "linearizability.html"))
	if err != nil || !strings.Contains(string(b), "<html") {
		t.Fatalf("visualisation: %v", err)
	}
}

// TestHistoryRoundTrip: what the runner saves, the checkers load.
func TestHistoryRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.json")
	if err := good().Save(path); err != nil {
		t.Fatal(err)
	}
	h, err := history.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all(h) {
		if !r.OK() {
			t.Errorf("%s", r)
		}
	}
	if len(h.Calls) != 2 || h.Calls[0].Caller != "n1" || !h.Ops[0].Invoke.Equal(at(0)) {
		t.Fatalf("round trip lost data: %+v", h.Calls)
	}
}
