package notify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

func finished() *fsmpb.Request {
	return &fsmpb.Request{
		Id: "0190-abc", Tenant: "Environment", Token: "T3001", IvrProfile: "Application", Telnum: "4086552367",
		NotificationUrl: "http://ta.example/trigger/result.asp?campaign=7",
		MaxAttempts:     3, TtlMs: 12_000_000, AttemptsMade: 3,
		ExpiresUnixMs: 20_000_000, UpdatedUnixMs: 15_633_000,
		LastCallUuid: "8GQE8C05B56SV2HRTTJ8M9RFR8000001",
		State:        fsmpb.State_PROCESSED, Result: fsmpb.Result_SUCCESS,
		Attempts: []*fsmpb.Attempt{
			{Number: 1, Outcome: fsmpb.OutcomeClass_OUTCOME_BUSY, Reason: "DestinationBusy"},
			{Number: 2, Outcome: fsmpb.OutcomeClass_OUTCOME_TEMPORARY, Reason: "RingNoAnswer"},
			{Number: 3, Outcome: fsmpb.OutcomeClass_OUTCOME_SUCCESS, Reason: "TreatmentApplied"},
		},
	}
}

func TestURL(t *testing.T) {
	got, err := URL(finished())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(got)
	want := map[string]string{
		"campaign": "7", "Token": "T3001", "RequestID": "0190-abc", "TenantName": "Environment",
		"IVRProfileName": "Application", "Telnum": "4086552367", "AttemptsMade": "3", "MaxAttempts": "3",
		"TimeToLive": "12000s", "TTLRemaining": "4367s", "CallUUID": "8GQE8C05B56SV2HRTTJ8M9RFR8000001",
		"Result": "SUCCESS", "Status": "DestinationBusy:RingNoAnswer",
	}
	for k, v := range want {
		if g := u.Query().Get(k); g != v {
			t.Errorf("%s = %q, want %q", k, g, v)
		}
	}
	if u.Host != "ta.example" || u.Path != "/trigger/result.asp" {
		t.Errorf("target %s%s, want ta.example/trigger/result.asp", u.Host, u.Path)
	}
}

func TestStatus(t *testing.T) {
	att := func(c fsmpb.OutcomeClass, reason string) *fsmpb.Attempt {
		return &fsmpb.Attempt{Outcome: c, Reason: reason}
	}
	for _, tc := range []struct {
		name string
		r    *fsmpb.Request
		want string
	}{
		{"max attempts", &fsmpb.Request{Result: fsmpb.Result_FAILURE, ResultReason: "MaxAttempts Exceeded", Attempts: []*fsmpb.Attempt{
			att(fsmpb.OutcomeClass_OUTCOME_INTERNAL, "ExternalError"), att(fsmpb.OutcomeClass_OUTCOME_TEMPORARY, "RingNoAnswer"), att(fsmpb.OutcomeClass_OUTCOME_BUSY, "DestinationBusy"),
		}}, "ExternalError:RingNoAnswer:DestinationBusy:MaxAttempts Exceeded"},
		{"permanent failure is not repeated", &fsmpb.Request{Result: fsmpb.Result_FAILURE, ResultReason: "SITInvalidNumber", Attempts: []*fsmpb.Attempt{
			att(fsmpb.OutcomeClass_OUTCOME_PERMANENT, "SITInvalidNumber"),
		}}, "SITInvalidNumber"},
		{"a send fenced at the gate is no attempt", &fsmpb.Request{Result: fsmpb.Result_FAILURE, ResultReason: "MaxAttempts Exceeded", Attempts: []*fsmpb.Attempt{
			att(fsmpb.OutcomeClass_OUTCOME_INTERRUPTED, "NotSent"), att(fsmpb.OutcomeClass_OUTCOME_TEMPORARY, "RingNoAnswer"),
			att(fsmpb.OutcomeClass_OUTCOME_INTERRUPTED, "Interrupted"), att(fsmpb.OutcomeClass_OUTCOME_BUSY, "DestinationBusy"),
		}}, "RingNoAnswer:Interrupted:DestinationBusy:MaxAttempts Exceeded"},
		{"success after a fenced send", &fsmpb.Request{Result: fsmpb.Result_SUCCESS, Attempts: []*fsmpb.Attempt{
			att(fsmpb.OutcomeClass_OUTCOME_INTERRUPTED, "NotSent"), att(fsmpb.OutcomeClass_OUTCOME_SUCCESS, "TreatmentApplied"),
		}}, ""},
		{"expired before any attempt", &fsmpb.Request{Result: fsmpb.Result_FAILURE, ResultReason: "TTL Expired"}, "TTL Expired"},
		{"first-time success", &fsmpb.Request{Result: fsmpb.Result_SUCCESS, Attempts: []*fsmpb.Attempt{att(fsmpb.OutcomeClass_OUTCOME_SUCCESS, "TreatmentApplied")}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Status(tc.r); got != tc.want {
				t.Fatalf("Status = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSend(t *testing.T) {
	var code = http.StatusOK
	var got url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Query()
		w.WriteHeader(code)
	}))
	defer srv.Close()
	r := finished()
	r.NotificationUrl = srv.URL + "/result"
	if err := (Sender{}).Send(context.Background(), r); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got.Get("RequestID") != r.Id {
		t.Fatalf("receiver got RequestID %q", got.Get("RequestID"))
	}
	code = http.StatusServiceUnavailable
	err := (Sender{}).Send(context.Background(), r)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 503 {
		t.Fatalf("Send to a failing receiver: %v, want StatusError 503", err)
	}
	r.NotificationUrl = "ftp://x/y"
	if err := (Sender{}).Send(context.Background(), r); err == nil {
		t.Fatal("Send to an ftp URL succeeded")
	}
}
