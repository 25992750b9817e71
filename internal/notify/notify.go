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
	q := u.Query()
	q.Set("Token", r.Token)
	q.Set("RequestID", r.Id)
	q.Set("TenantName", r.Tenant)
	q.Set("IVRProfileName", r.IvrProfile)
	q.Set("Telnum", r.Telnum)
	q.Set("AttemptsMade", strconv.FormatUint(uint64(r.AttemptsMade), 10))
	q.Set("MaxAttempts", strconv.FormatUint(uint64(r.MaxAttempts), 10))
	q.Set("TimeToLive", seconds(r.TtlMs))
	q.Set("TTLRemaining", seconds(max(r.ExpiresUnixMs-r.UpdatedUnixMs, 0)))
	q.Set("CallUUID", r.LastCallUuid)
	q.Set("Result", resultName(r.Result))
	q.Set("Status", Status(r))
	u.RawQuery = q.Encode()
	return u.String(), nil
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

func seconds(ms int64) string { return strconv.FormatInt(ms/1000, 10) + "s" }

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
