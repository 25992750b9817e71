package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Notification is the JSON body POSTed to a threshold's webhook_url.
type Notification struct {
	// "raised" or "cleared".
	Event       string `json:"event"`
	ThresholdID string `json:"threshold_id"`
	// Empty for a deployment-wide threshold.
	Tenant    string `json:"tenant"`
	Metric    string `json:"metric"`
	Direction string `json:"direction"`
	// The threshold's value and clear_value.
	Threshold  float64 `json:"threshold"`
	ClearValue float64 `json:"clear_value"`
	// The measured metric (the last one, for a clear caused by deleting or
	// changing the threshold).
	Value float64 `json:"value"`
	// Set when the alert was cleared by a configuration change:
	// "threshold deleted" or "threshold changed".
	Reason     string    `json:"reason,omitempty"`
	Time       time.Time `json:"time"`
	TimeUnixMs int64     `json:"time_unix_ms"`
	// The node (the leader) that sent it.
	NodeID string `json:"node_id"`
}

// WebhookOptions bound webhook delivery.
type WebhookOptions struct {
	Client      HTTPClient    // default: http.Client without redirects
	Attempts    int           // per notification, default 5
	Timeout     time.Duration // per attempt, default 5s
	Backoff     time.Duration // before the 2nd attempt, doubling; default 500ms
	MaxBackoff  time.Duration // default 8s
	QueueLength int           // pending notifications, default 256; beyond, new ones are dropped
}

type outgoing struct {
	url string
	n   Notification
}

// webhook delivers notifications one at a time, in order, from a bounded
// queue, retrying each with backoff.
type webhook struct {
	opts     WebhookOptions
	log      *slog.Logger
	queue    chan outgoing
	failures prometheus.Counter
}

func newWebhook(opts WebhookOptions, log *slog.Logger) *webhook {
	if opts.Client == nil {
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 8 * time.Second
	}
	if opts.QueueLength <= 0 {
		opts.QueueLength = 256
	}
	return &webhook{
		opts:  opts,
		log:   log,
		queue: make(chan outgoing, opts.QueueLength),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dialtone_port_alert_webhook_failures_total",
			Help: "Port-usage alert notifications given up (retries exhausted, or queue full).",
		}),
	}
}

// enqueue never blocks the evaluator: a full queue drops the notification.
func (w *webhook) enqueue(url string, n Notification) {
	select {
	case w.queue <- outgoing{url, n}:
	default:
		w.failures.Inc()
		w.log.Error("port alert webhook queue full; notification dropped", "threshold_id", n.ThresholdID, "event", n.Event, "queue", cap(w.queue))
	}
}

func (w *webhook) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-w.queue:
			w.deliver(ctx, o)
		}
	}
}

// deliver POSTs one notification, retrying network errors, 408, 429 and
// 5xx with exponential backoff up to Attempts; other answers are final.
func (w *webhook) deliver(ctx context.Context, o outgoing) {
	body, err := json.Marshal(o.n)
	if err != nil {
		w.log.Error("port alert webhook: encoding", "err", err)
		return
	}
	backoff := w.opts.Backoff
	for attempt := 1; ; attempt++ {
		retry, err := w.post(ctx, o.url, body)
		if err == nil {
			w.log.Debug("port alert webhook delivered", "threshold_id", o.n.ThresholdID, "event", o.n.Event, "attempt", attempt)
			return
		}
		if !retry || attempt >= w.opts.Attempts || ctx.Err() != nil {
			w.failures.Inc()
			w.log.Error("port alert webhook failed; giving up", "threshold_id", o.n.ThresholdID, "event", o.n.Event, "url", o.url, "attempts", attempt, "err", err)
			return
		}
		w.log.Warn("port alert webhook failed; retrying", "threshold_id", o.n.ThresholdID, "event", o.n.Event, "attempt", attempt, "in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			w.failures.Inc()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, w.opts.MaxBackoff)
	}
}

func (w *webhook) post(ctx context.Context, url string, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "dialtone-alerting")
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return true, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return true, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return false, fmt.Errorf("HTTP %d (not retried)", resp.StatusCode)
}
