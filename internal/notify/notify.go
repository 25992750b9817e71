// Package notify builds and delivers result notifications to trigger
// applications: an HTTP GET of the request's NotificationURL with the SSG's
// query-string parameters.
package notify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// URL returns the notification URL of a finished request: its
// NotificationURL with the SSG's parameters added (existing query
// parameters are kept).
//
//	Token, RequestID, TenantName, IVRProfileName, Telnum, AttemptsMade,
//	MaxAttempts, TimeToLive ("120s"), TTLRemaining (at the result, "37s"),
//	CallUUID (the last attempt's), Result (SUCCESS or FAILURE) and Status:
//	the reason of every attempt that did not succeed, in order, then the
//	final reason of a failure ("MaxAttempts Exceeded", "TTL Expired", or
//	the permanent failure's reason when it is not already the last
//	attempt's), joined by ':'.
func URL(r *fsmpb.Request) (string, error) {
	u, err := url.Parse(r.NotificationUrl)
	if err != nil {
		return "", fmt.Errorf("notify: notification_url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("notify: notification_url: scheme %q is not http or https", u.Scheme)
	}
	// The query url.Values gave (u.Query(), a Set per parameter, Encode),
	// byte for byte, built without its map, sort and per-value strings: this
	// runs once per finished request. Only RawQuery is replaced, so
	// u.String() renders the rest of the URL as it always did.
	var vals [nParams]string
	var num [24]byte // scratch: each string(...) below copies it
	vals[pAttemptsMade] = string(strconv.AppendUint(num[:0], uint64(r.AttemptsMade), 10))
	vals[pCallUUID] = r.LastCallUuid
	vals[pIVRProfileName] = r.IvrProfile
	vals[pMaxAttempts] = string(strconv.AppendUint(num[:0], uint64(r.MaxAttempts), 10))
	vals[pRequestID] = r.Id
	vals[pResult] = resultName(r.Result)
	vals[pStatus] = Status(r)
	vals[pTTLRemaining] = string(appendSeconds(num[:0], max(r.ExpiresUnixMs-r.UpdatedUnixMs, 0)))
	vals[pTelnum] = r.Telnum
	vals[pTenantName] = r.Tenant
	vals[pTimeToLive] = string(appendSeconds(num[:0], r.TtlMs))
	vals[pToken] = r.Token
	var extra url.Values // the parameters of the URL's own query that stay
	if u.RawQuery != "" {
		extra = u.Query()
		for _, k := range paramKeys() {
			delete(extra, k)
		}
	}
	u.RawQuery = encodeQuery(extra, &vals)
	return u.String(), nil
}

// paramKeys are the SSG's parameters in the order url.Values.Encode sorts
// them (byte order); the p constants index them. None needs escaping.
func paramKeys() [nParams]string {
	return [nParams]string{
		"AttemptsMade", "CallUUID", "IVRProfileName", "MaxAttempts", "RequestID", "Result",
		"Status", "TTLRemaining", "Telnum", "TenantName", "TimeToLive", "Token",
	}
}

const (
	pAttemptsMade = iota
	pCallUUID
	pIVRProfileName
	pMaxAttempts
	pRequestID
	pResult
	pStatus
	pTTLRemaining
	pTelnum
	pTenantName
	pTimeToLive
	pToken
	nParams
)

// encodeQuery is url.Values.Encode of extra with the SSG's parameters vals
// set: every key sorted, each value of a key in order, keys and values
// query-escaped. extra holds none of paramKeys.
func encodeQuery(extra url.Values, vals *[nParams]string) string {
	params := paramKeys()
	var keys []string
	if len(extra) > 0 {
		keys = make([]string, 0, len(extra))
		for k := range extra {
			keys = append(keys, k)
		}
		slices.Sort(keys)
	}
	n := 0
	for i, k := range params {
		n += len(k) + 2 + escapedLen(vals[i])
	}
	for _, k := range keys {
		for _, v := range extra[k] {
			n += escapedLen(k) + 2 + escapedLen(v)
		}
	}
	var b strings.Builder
	b.Grow(n)
	i := 0 // merge the two sorted key lists
	for j, k := range params {
		for ; i < len(keys) && keys[i] < k; i++ {
			for _, v := range extra[keys[i]] {
				writePair(&b, keys[i], v)
			}
		}
		writePair(&b, k, vals[j])
	}
	for ; i < len(keys); i++ {
		for _, v := range extra[keys[i]] {
			writePair(&b, keys[i], v)
		}
	}
	return b.String()
}

// writePair writes one escaped key=value, after a '&' unless it is the
// first.
func writePair(b *strings.Builder, k, v string) {
	if b.Len() > 0 {
		b.WriteByte('&')
	}
	writeEscaped(b, k)
	b.WriteByte('=')
	writeEscaped(b, v)
}

// queryUnreserved reports the bytes url.QueryEscape leaves as they are:
// ASCII letters and digits and "-_.~".
func queryUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// escapedLen is len(url.QueryEscape(s)).
func escapedLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != ' ' && !queryUnreserved(c) {
			n += 2
		}
	}
	return n
}

// writeEscaped writes url.QueryEscape(s) to b: a space as '+', any other
// reserved byte as %XX (upper-case hex).
func writeEscaped(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if queryUnreserved(c) {
			continue
		}
		b.WriteString(s[start:i])
		if c == ' ' {
			b.WriteByte('+')
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
		start = i + 1
	}
	b.WriteString(s[start:])
}

// Status is the colon-separated reasons of a request's attempts that did
// not succeed, then its final failure reason. An attempt whose send the
// dialer's gate refused (telephony.ReasonNotSent: fenced while leadership
// was in doubt) is left out: no call left for it, so to the trigger
// application it is no attempt at all (the request's attempt list in the
// API still shows it).
func Status(r *fsmpb.Request) string {
	var parts []string
	for _, a := range r.Attempts {
		if a.Outcome == fsmpb.OutcomeClass_OUTCOME_INTERRUPTED && a.Reason == telephony.ReasonNotSent {
			continue
		}
		if a.Outcome != fsmpb.OutcomeClass_OUTCOME_SUCCESS && a.Reason != "" {
			parts = append(parts, a.Reason)
		}
	}
	if r.Result == fsmpb.Result_FAILURE && r.ResultReason != "" &&
		(len(parts) == 0 || parts[len(parts)-1] != r.ResultReason) {
		parts = append(parts, r.ResultReason)
	}
	return strings.Join(parts, ":")
}

// appendSeconds appends ms as whole seconds with an "s" ("37s").
func appendSeconds(b []byte, ms int64) []byte {
	return append(strconv.AppendInt(b, ms/1000, 10), 's')
}

func resultName(r fsmpb.Result) string {
	if r == fsmpb.Result_SUCCESS {
		return "SUCCESS"
	}
	return "FAILURE"
}

// Sender delivers notifications over HTTP.
type Sender struct {
	Client  *http.Client
	Timeout time.Duration
}

// StatusError is a delivery the trigger application answered with a
// non-2xx status.
type StatusError struct{ Code int }

func (e *StatusError) Error() string {
	return fmt.Sprintf("notify: trigger application answered %d", e.Code)
}

// Send GETs the notification URL of r; nil means a 2xx answer.
func (s Sender) Send(ctx context.Context, r *fsmpb.Request) error {
	target, err := URL(r)
	if err != nil {
		return err
	}
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	req.Header.Set("User-Agent", "dialtone-notify/1")
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return &StatusError{Code: resp.StatusCode}
	}
	return nil
}
