package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
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

// urlValuesOracle is URL as it was built with url.Values: the reference
// the hand-built query must equal byte for byte (trigger applications may
// compare the GET).
func urlValuesOracle(r *fsmpb.Request) (string, error) {
	u, err := url.Parse(r.NotificationUrl)
	if err != nil {
		return "", fmt.Errorf("notify: notification_url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("notify: notification_url: scheme %q is not http or https", u.Scheme)
	}
	q := u.Query()
	q.Set("Token", r.Token)
	q.Set("RequestID", r.Id)
	q.Set("TenantName", r.Tenant)
	q.Set("IVRProfileName", r.IvrProfile)
	q.Set("Telnum", r.Telnum)
	q.Set("AttemptsMade", strconv.FormatUint(uint64(r.AttemptsMade), 10))
	q.Set("MaxAttempts", strconv.FormatUint(uint64(r.MaxAttempts), 10))
	q.Set("TimeToLive", strconv.FormatInt(r.TtlMs/1000, 10)+"s")
	q.Set("TTLRemaining", strconv.FormatInt(max(r.ExpiresUnixMs-r.UpdatedUnixMs, 0)/1000, 10)+"s")
	q.Set("CallUUID", r.LastCallUuid)
	q.Set("Result", resultName(r.Result))
	q.Set("Status", Status(r))
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// sameAsOracle fails t unless URL(r) and urlValuesOracle(r) agree: the
// same string, or the same error.
func sameAsOracle(t *testing.T, r *fsmpb.Request) {
	t.Helper()
	got, err := URL(r)
	want, werr := urlValuesOracle(r)
	if (err == nil) != (werr == nil) || err != nil && err.Error() != werr.Error() {
		t.Fatalf("URL(%q) error %v, oracle %v", r.NotificationUrl, err, werr)
	}
	if got != want {
		t.Fatalf("URL(%q)\n got %s\nwant %s", r.NotificationUrl, got, want)
	}
}

func TestParamKeysSorted(t *testing.T) {
	keys := paramKeys()
	if !slices.IsSorted(keys[:]) {
		t.Fatalf("paramKeys not in byte order: %q", keys)
	}
	for _, k := range keys {
		if url.QueryEscape(k) != k {
			t.Fatalf("paramKeys: %q needs escaping", k)
		}
	}
}

func TestURLMatchesOracle(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(r *fsmpb.Request)
	}{
		{"no query", func(r *fsmpb.Request) { r.NotificationUrl = "http://ta.example/trigger/result.asp" }},
		{"existing query", func(r *fsmpb.Request) {}},
		{"existing query with keys on both sides", func(r *fsmpb.Request) {
			r.NotificationUrl = "https://ta.example/r?zeta=1&A=2&Tz=3&Ta=4&%C3%A9t%C3%A9=5&a+b=c+d&zeta=0"
		}},
		{"keys that collide with the SSG's", func(r *fsmpb.Request) {
			r.NotificationUrl = "http://ta.example/r?Token=old&Status=x&Status=y&RequestID=&campaign=7&Result"
		}},
		{"malformed pairs dropped", func(r *fsmpb.Request) {
			r.NotificationUrl = "http://ta.example/r?a=%zz&b=1;c=2&&=v&d=%41&e=1=2&Token%=3"
		}},
		{"over the query parameter limit: Query drops them all", func(r *fsmpb.Request) {
			r.NotificationUrl = "http://ta.example/r?" + strings.Repeat("a=1&", 10_001)
		}},
		{"empty query", func(r *fsmpb.Request) { r.NotificationUrl = "http://ta.example/r?" }},
		{"fragment", func(r *fsmpb.Request) { r.NotificationUrl = "http://ta.example/r#frag%20ment" }},
		{"query and fragment", func(r *fsmpb.Request) { r.NotificationUrl = "http://ta.example/r?x=1#f" }},
		{"user info", func(r *fsmpb.Request) { r.NotificationUrl = "https://us%40er:p%3Ass@ta.example:8443/r" }},
		{"IPv6 host", func(r *fsmpb.Request) { r.NotificationUrl = "http://[fe80::1%25eth0]:8080/r" }},
		{"path to normalise", func(r *fsmpb.Request) { r.NotificationUrl = "HTTP://Ta.Example/a b/%7Ec/é?" }},
		{"no path", func(r *fsmpb.Request) { r.NotificationUrl = "http://ta.example" }},
		{"opaque", func(r *fsmpb.Request) { r.NotificationUrl = "http:ta.example/r" }},
		{"odd characters in fields", func(r *fsmpb.Request) {
			r.Token = "a b&c=d+e%f/g?h#i;j:k@l~m_n.o-p\x00\xff"
			r.Telnum = "+1 (408) 655-2367"
			r.IvrProfile = "Profil é/ü"
			r.Tenant = "Tenant&Token=forged"
			r.LastCallUuid = "\t\n"
		}},
		{"empty fields", func(r *fsmpb.Request) {
			r.Token, r.Id, r.Tenant, r.IvrProfile, r.Telnum, r.LastCallUuid = "", "", "", "", "", ""
			r.Attempts, r.AttemptsMade, r.MaxAttempts, r.TtlMs = nil, 0, 0, 0
		}},
		{"large and negative numbers", func(r *fsmpb.Request) {
			r.AttemptsMade, r.MaxAttempts = 1<<32-1, 1000
			r.TtlMs, r.ExpiresUnixMs, r.UpdatedUnixMs = -1500, 1, 1<<62
		}},
		{"failure status", func(r *fsmpb.Request) {
			r.Result, r.ResultReason = fsmpb.Result_FAILURE, "MaxAttempts Exceeded"
		}},
		{"not http", func(r *fsmpb.Request) { r.NotificationUrl = "ftp://x/y" }},
		{"unparsable", func(r *fsmpb.Request) { r.NotificationUrl = "http://[::1/r" }},
		{"relative", func(r *fsmpb.Request) { r.NotificationUrl = "/trigger?a=1" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := finished()
			tc.edit(r)
			sameAsOracle(t, r)
		})
	}
}

func FuzzURL(f *testing.F) {
	f.Add("http://ta.example/trigger/result.asp?campaign=7", "T3001", "4086552367", "Environment", "RingNoAnswer", uint32(3), int64(12_000_000), int64(4_367_000), true)
	f.Add("https://u:p@[::1]:80/a%2Fb?Token=x&z=%zz;#f", "a b+c~", "+1 408", "é", "", uint32(1000), int64(-5), int64(0), false)
	f.Add("HTTP://h/?&&=&Status=1&Status=2", "", "", "", "MaxAttempts Exceeded", uint32(0), int64(999), int64(-1), false)
	f.Fuzz(func(t *testing.T, rawURL, token, telnum, tenant, reason string, attempts uint32, ttlMs, remainingMs int64, success bool) {
		r := &fsmpb.Request{
			Id: token + "-" + tenant, Tenant: tenant, Token: token, IvrProfile: reason + tenant, Telnum: telnum,
			NotificationUrl: rawURL, MaxAttempts: attempts + 1, AttemptsMade: attempts, TtlMs: ttlMs,
			ExpiresUnixMs: remainingMs, LastCallUuid: strings.ToUpper(token),
			Result: fsmpb.Result_FAILURE, ResultReason: reason,
			Attempts: []*fsmpb.Attempt{{Outcome: fsmpb.OutcomeClass_OUTCOME_TEMPORARY, Reason: telnum}},
		}
		if success {
			r.Result = fsmpb.Result_SUCCESS
		}
		sameAsOracle(t, r)
	})
}

func BenchmarkURL(b *testing.B) {
	for _, bc := range []struct{ name, url string }{
		{"plain", "http://ta.example/trigger/result.asp"},
		{"query", "http://ta.example/trigger/result.asp?campaign=7"},
	} {
		r := finished()
		r.NotificationUrl = bc.url
		r.Result, r.ResultReason = fsmpb.Result_FAILURE, "MaxAttempts Exceeded"
		for _, impl := range []struct {
			name string
			f    func(*fsmpb.Request) (string, error)
		}{{"new", URL}, {"oracle", urlValuesOracle}} {
			b.Run(bc.name+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := impl.f(r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
