package server

import (
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
