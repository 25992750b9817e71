package server

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/dialer/window"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Limits on a request's fields. They keep one record small and bounded so
// that the replicated state and every node's memory stay predictable.
const (
	MaxAttemptsLimit   = 100
	MinTTL             = time.Second
	MaxTTL             = 30 * 24 * time.Hour
	maxTokenLen        = 256
	maxProfileLen      = 128
	maxTelnumDigits    = 32
	maxURLLen          = 2048
	maxCustomData      = 64
	maxCustomKeyLen    = 128
	maxCustomValueLen  = 1024
	maxIdempotencyLen  = 128
	maxCPDTimeout      = 10 * time.Minute
	maxDetectLen       = 64
	maxRequestIDLength = 64
)

var (
	telnumPattern = regexp.MustCompile(`^\+?[0-9]{1,32}$`)
	detectPattern = regexp.MustCompile(`^[A-Za-z0-9_,-]*$`)
)

// FieldError is one invalid field. Field is a path such as
// "requests[2].telnum".
type FieldError struct {
	Field  string
	Reason string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Reason }

// fieldErrors collects violations for one call.
type fieldErrors []FieldError

func (fe *fieldErrors) add(field, format string, args ...any) {
	*fe = append(*fe, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// status turns the violations into InvalidArgument with BadRequest details;
// the message names the first field so a human sees it at once.
func (fe fieldErrors) status() error {
	if len(fe) == 0 {
		return nil
	}
	msg := fe[0].Error()
	if len(fe) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(fe)-1)
	}
	st := status.New(codes.InvalidArgument, msg)
	br := &errdetails.BadRequest{}
	for _, f := range fe {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: f.Field, Description: f.Reason})
	}
	if d, err := st.WithDetails(br); err == nil {
		return d.Err()
	}
	return st.Err()
}

// ValidateTenant checks a tenant name.
func ValidateTenant(tenant string) error {
	if !validTenant(tenant) {
		return FieldError{"tenant", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"}
	}
	return nil
}

// ValidateRequestID checks the shape of a request id.
func ValidateRequestID(field, id string) error {
	if !validRequestID(id) {
		return FieldError{field, fmt.Sprintf("invalid request id %q: must be 1-%d letters, digits or '-'", truncate(id, 80), maxRequestIDLength)}
	}
	return nil
}

// validTenant is ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ without the regexp
// engine (it runs on every read and create; TestIDCheckersMatchPatterns).
func validTenant(s string) bool {
	if len(s) == 0 || len(s) > 64 || !alnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// validRequestID is ^[A-Za-z0-9-]{1,64}$ (see validTenant).
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > maxRequestIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// ValidateSpec checks one request and, when valid, returns its replicated
// form (without id). prefix names the request in errors, e.g. "requests[3]".
func ValidateSpec(prefix string, s *pb.RequestSpec) (*fsmpb.Request, []FieldError) {
	var fe fieldErrors
	f := func(name string) string {
		if prefix == "" {
			return name
		}
		return prefix + "." + name
	}
	if s == nil {
		fe.add(prefix, "is required")
		return nil, fe
	}
	switch {
	case s.Token == "":
		fe.add(f("token"), "is required")
	case len(s.Token) > maxTokenLen || !printable(s.Token):
		fe.add(f("token"), "must be at most %d printable characters", maxTokenLen)
	}
	switch {
	case s.IvrProfile == "":
		fe.add(f("ivr_profile"), "is required")
	case len(s.IvrProfile) > maxProfileLen || !printable(s.IvrProfile):
		fe.add(f("ivr_profile"), "must be at most %d printable characters", maxProfileLen)
	}
	switch {
	case s.Telnum == "":
		fe.add(f("telnum"), "is required")
	case !telnumPattern.MatchString(s.Telnum):
		fe.add(f("telnum"), "%q must be 1-%d digits with an optional leading '+'", truncate(s.Telnum, 40), maxTelnumDigits)
	}
	if s.Ani != "" && !telnumPattern.MatchString(s.Ani) {
		fe.add(f("ani"), "%q must be 1-%d digits with an optional leading '+'", truncate(s.Ani, 40), maxTelnumDigits)
	}
	if err := validateNotificationURL(s.NotificationUrl); err != "" {
		fe.add(f("notification_url"), "%s", err)
	}
	switch {
	case s.MaxAttempts == 0:
		fe.add(f("max_attempts"), "is required and must be 1-%d", MaxAttemptsLimit)
	case s.MaxAttempts > MaxAttemptsLimit:
		fe.add(f("max_attempts"), "%d is above the maximum %d", s.MaxAttempts, MaxAttemptsLimit)
	}
	var ttl time.Duration
	if s.TimeToLive == "" {
		fe.add(f("time_to_live"), "is required (e.g. \"3600s\")")
	} else if d, err := ParseDuration(s.TimeToLive); err != nil {
		fe.add(f("time_to_live"), "%v", err)
	} else if d < MinTTL || d > MaxTTL {
		fe.add(f("time_to_live"), "%s is outside %s..%s", s.TimeToLive, MinTTL, MaxTTL)
	} else {
		ttl = d
	}
	if len(s.CustomData) > maxCustomData {
		fe.add(f("custom_data"), "has %d entries, at most %d allowed", len(s.CustomData), maxCustomData)
	}
	var custom []*fsmpb.KeyValue
	for i, kv := range s.CustomData {
		p := f(fmt.Sprintf("custom_data[%d]", i))
		if kv.GetKey() == "" || len(kv.GetKey()) > maxCustomKeyLen || !printable(kv.GetKey()) {
			fe.add(p+".key", "must be 1-%d printable characters", maxCustomKeyLen)
		}
		if len(kv.GetValue()) > maxCustomValueLen || !printable(kv.GetValue()) {
			fe.add(p+".value", "must be at most %d printable characters", maxCustomValueLen)
		}
		custom = append(custom, &fsmpb.KeyValue{Key: kv.GetKey(), Value: kv.GetValue()})
	}
	if len(s.IdempotencyKey) > maxIdempotencyLen || !printable(s.IdempotencyKey) {
		fe.add(f("idempotency_key"), "must be at most %d printable characters", maxIdempotencyLen)
	}
	if s.TimeZone != "" {
		if len(s.TimeZone) > 64 {
			fe.add(f("time_zone"), "is longer than 64 characters")
		} else if _, err := window.ParseZone(s.TimeZone); err != nil {
			fe.add(f("time_zone"), "%q is not an IANA time zone (e.g. \"America/Chicago\")", truncate(s.TimeZone, 64))
		}
	}
	cpd := validateCPD(f("cpd"), s.Cpd, &fe)
	if len(fe) > 0 {
		return nil, fe
	}
	return &fsmpb.Request{
		Token:           s.Token,
		IvrProfile:      s.IvrProfile,
		Telnum:          s.Telnum,
		Ani:             s.Ani,
		NotificationUrl: s.NotificationUrl,
		CustomData:      custom,
		Cpd:             cpd,
		MaxAttempts:     s.MaxAttempts,
		TtlMs:           ttl.Milliseconds(),
		IdempotencyKey:  s.IdempotencyKey,
		TimeZone:        s.TimeZone,
	}, nil
}

func validateNotificationURL(raw string) string {
	if raw == "" {
		return "is required"
	}
	if len(raw) > maxURLLen {
		return fmt.Sprintf("is longer than %d characters", maxURLLen)
	}
	if !printable(raw) || strings.ContainsAny(raw, " \t") {
		return "must not contain spaces or control characters"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "is not a valid URL"
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return "has no host"
	}
	if u.User != nil {
		return "must not carry credentials"
	}
	return ""
}

func validateCPD(field string, c *pb.Cpd, fe *fieldErrors) *fsmpb.Cpd {
	if c == nil {
		return nil
	}
	out := &fsmpb.Cpd{Record: c.Record, Preconnect: c.Preconnect, Detect: c.Detect}
	dur := func(name, v string) *int64 {
		if v == "" {
			return nil
		}
		d, err := ParseDuration(v)
		if err != nil {
			fe.add(field+"."+name, "%v", err)
			return nil
		}
		if d < 0 || d > maxCPDTimeout {
			fe.add(field+"."+name, "%s is outside 0s..%s", v, maxCPDTimeout)
			return nil
		}
		ms := d.Milliseconds()
		return &ms
	}
	out.PostConnectTimeoutMs = dur("post_connect_timeout", c.PostConnectTimeout)
	out.RnaTimeoutMs = dur("rna_timeout", c.RnaTimeout)
	if len(c.Detect) > maxDetectLen || !detectPattern.MatchString(c.Detect) {
		fe.add(field+".detect", "must be at most %d letters, digits, '_', '-' or ','", maxDetectLen)
	}
	return out
}

// ParseDuration parses a duration with a unit, as the SSG writes them:
// "123s", "6000ms", "90m", "1h30m".
func ParseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration with a unit, such as \"123s\" or \"6000ms\"", truncate(v, 40))
	}
	return d, nil
}

// FormatDuration writes milliseconds back in the form clients send:
// whole seconds as "123s", anything else as "6500ms".
func FormatDuration(ms int64) string {
	if ms%1000 == 0 {
		return fmt.Sprintf("%ds", ms/1000)
	}
	return fmt.Sprintf("%dms", ms)
}
