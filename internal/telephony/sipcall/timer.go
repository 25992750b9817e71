package sipcall

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Session timers (RFC 4028). Dialtone asks for telephony.sip.session_expires
// with itself as refresher (refresher=uac) and refreshes by an offerless
// UPDATE at half the interval; when the far end chose to refresh
// (refresher=uas), Dialtone ends the dialog with BYE if no refresh came
// within the interval. The point is the far end's side of it: a dialog
// whose leader died and that no new leader adopted stops being refreshed
// and the far end ends it within one interval.

// sessionTimer is the session interval a 2xx to our INVITE accepted and
// whether we refresh; 0 when the far end uses no session timer.
func sessionTimer(res *sip.Response) (time.Duration, bool) {
	h := res.GetHeader("Session-Expires")
	if h == nil {
		return 0, false
	}
	d, refresher := parseSessionExpires(h.Value())
	return d, refresher != "uas"
}

// parseSessionExpires splits "1800;refresher=uac".
func parseSessionExpires(v string) (time.Duration, string) {
	parts := strings.Split(v, ";")
	n, err := strconv.Atoi(strings.TrimSpace(parts[0]))
	if err != nil || n <= 0 {
		return 0, ""
	}
	refresher := ""
	for _, p := range parts[1:] {
		if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "refresher") {
			refresher = strings.ToLower(strings.TrimSpace(val))
		}
	}
	return time.Duration(n) * time.Second, refresher
}

// minSE is the Min-SE of a 422 response (0: none).
func minSE(res *sip.Response) time.Duration {
	h := res.GetHeader("Min-SE")
	if h == nil {
		return 0
	}
	d, _ := parseSessionExpires(h.Value())
	return d
}

// onRefresh notes a re-INVITE or UPDATE from the far end as a session
// refresh and returns the Session-Expires of our 2xx ("" when the request
// asked for no session timer). The far end that sent it is the refresher
// unless it named us (refresher=uas).
func (l *leg) onRefresh(req *sip.Request) string {
	h := req.GetHeader("Session-Expires")
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refreshed = time.Now()
	if h == nil {
		return ""
	}
	d, refresher := parseSessionExpires(h.Value())
	if d <= 0 {
		return ""
	}
	if refresher == "" {
		refresher = "uac" // the far end, the sender of this request
	}
	l.sessionExpires, l.weRefresh = d, refresher == "uas"
	return strconv.Itoa(int(d/time.Second)) + ";refresher=" + refresher
}

// refresh sends an offerless UPDATE as session refresh; false when the
// far end answered that the dialog is gone (481, 408) or not at all.
func (l *leg) refresh(ctx context.Context) bool {
	l.mu.Lock()
	d := l.sessionExpires
	l.mu.Unlock()
	cseq := l.nextCSeq()
	req := l.inDialog(sip.UPDATE, cseq)
	req.AppendHeader(sip.NewHeader("Allow", allowed))
	req.AppendHeader(sip.NewHeader("Supported", "timer"))
	req.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(int(d/time.Second))+";refresher=uac"))
	req.SetBody(nil)
	ctx, cancel := context.WithTimeout(ctx, 32*time.Second)
	defer cancel()
	tx, err := l.cli.TransactionRequest(ctx, req, sipgo.ClientRequestBuild)
	if err != nil {
		return false
	}
	defer tx.Terminate()
	for {
		select {
		case r := <-tx.Responses():
			if r.IsProvisional() {
				continue
			}
			if r.StatusCode == sip.StatusCallTransactionDoesNotExists || r.StatusCode == sip.StatusRequestTimeout {
				return false
			}
			l.mu.Lock()
			l.refreshed = time.Now()
			if r.IsSuccess() {
				if nd, who := parseSessionExpires(headerValue(r, "Session-Expires")); nd > 0 {
					l.sessionExpires, l.weRefresh = nd, who != "uas"
				}
			}
			l.mu.Unlock()
			l.commit()
			return true
		case <-tx.Done():
			return false
		case <-ctx.Done():
			return ctx.Err() != nil && l.isEnded()
		}
	}
}

func headerValue(m interface{ GetHeader(string) sip.Header }, name string) string {
	if h := m.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// sessionWatch runs the leg's session timer until ctx ends or the leg
// ended: it refreshes at half the interval when we refresh, and ends
// the dialog (returns) when a refresh failed or, the far end refreshing,
// none came within the interval less min(32 s, interval/3) (§10).
func (l *leg) sessionWatch(ctx context.Context) (expired bool) {
	for {
		l.mu.Lock()
		d, we, last := l.sessionExpires, l.weRefresh, l.refreshed
		l.mu.Unlock()
		if d <= 0 {
			return false
		}
		at := last.Add(d / 2)
		if !we {
			at = last.Add(d - min(32*time.Second, d/3))
		}
		t := time.NewTimer(time.Until(at))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-l.ended:
			t.Stop()
			return false
		case <-t.C:
		}
		l.mu.Lock()
		moved := l.refreshed.After(last)
		l.mu.Unlock()
		if moved {
			continue // refreshed meanwhile (either side)
		}
		if !we || !l.refresh(ctx) {
			return ctx.Err() == nil
		}
	}
}

// statusSessionIntervalTooSmall is RFC 4028's 422 (sipgo names only
// RFC 3261's 423 Interval Too Brief).
const statusSessionIntervalTooSmall = 422
