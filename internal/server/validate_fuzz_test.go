package server

import (
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// FuzzValidateSpec feeds arbitrary JSON through the same decoding as REST
// and checks that validation never panics and that whatever it accepts
// respects every documented limit.
func FuzzValidateSpec(f *testing.F) {
	f.Add(`{"token":"T","ivr_profile":"P","telnum":"+4930123","notification_url":"http://h/x","max_attempts":3,"time_to_live":"123s"}`)
	f.Add(`{"token":"T","ivr_profile":"P","telnum":"1","notification_url":"https://h:8/x?a=b","max_attempts":100,"time_to_live":"720h","cpd":{"rna_timeout":"6000ms","detect":"all"},"custom_data":[{"key":"k","value":"v"}]}`)
	f.Add(`{"telnum":"abc","time_to_live":"5x"}`)
	f.Add(`{"notification_url":"javascript:alert(1)","max_attempts":0}`)
	f.Fuzz(func(t *testing.T, in string) {
		var s pb.RequestSpec
		if protojson.Unmarshal([]byte(in), &s) != nil {
			return
		}
		r, errs := ValidateSpec("requests[0]", &s)
		if (r == nil) == (len(errs) == 0) {
			t.Fatalf("record %v with errors %v", r, errs)
		}
		for _, e := range errs {
			if !strings.HasPrefix(e.Field, "requests[0]") || e.Reason == "" {
				t.Fatalf("error does not name the field: %+v", e)
			}
		}
		if r == nil {
			return
		}
		switch {
		case r.MaxAttempts < 1 || r.MaxAttempts > MaxAttemptsLimit:
			t.Fatalf("accepted max_attempts %d", r.MaxAttempts)
		case r.TtlMs < MinTTL.Milliseconds() || r.TtlMs > MaxTTL.Milliseconds():
			t.Fatalf("accepted ttl %d ms", r.TtlMs)
		case !telnumPattern.MatchString(r.Telnum):
			t.Fatalf("accepted telnum %q", r.Telnum)
		case validateNotificationURL(r.NotificationUrl) != "":
			t.Fatalf("accepted url %q", r.NotificationUrl)
		case r.Token == "" || r.IvrProfile == "":
			t.Fatalf("accepted empty token or profile")
		}
	})
}

// The patterns validTenant and validRequestID implement.
var (
	tenantPatternSpec = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	idPatternSpec     = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
)

func checkIDCheckers(t *testing.T, s string) {
	t.Helper()
	if got, want := validTenant(s), tenantPatternSpec.MatchString(s); got != want {
		t.Errorf("validTenant(%q) = %v, pattern %v", s, got, want)
	}
	if got, want := validRequestID(s), idPatternSpec.MatchString(s); got != want {
		t.Errorf("validRequestID(%q) = %v, pattern %v", s, got, want)
	}
}

// TestIDCheckersMatchPatterns: the hand-written tenant and id checks accept
// exactly what their regular expressions do.
func TestIDCheckersMatchPatterns(t *testing.T) {
	for _, s := range []string{"", "a", "-", "_", ".", "a-", "a_.-", "-a", "_a", ".a", "0190f1e2-7b1c-7cc0-8a61-2f6f0d3c4b5a",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 65), "a\n", "a b", "é", "a\xff", "a/b", "a:b", "Z9"} {
		checkIDCheckers(t, s)
	}
	for c := range 256 {
		checkIDCheckers(t, string([]byte{byte(c)}))
		checkIDCheckers(t, "a"+string([]byte{byte(c)}))
	}
}

func FuzzIDCheckers(f *testing.F) {
	f.Add("acme")
	f.Add("0190f1e2-7b1c-7cc0-8a61-2f6f0d3c4b5a")
	f.Fuzz(func(t *testing.T, s string) { checkIDCheckers(t, s) })
}
