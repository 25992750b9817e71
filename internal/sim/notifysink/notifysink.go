// Package notifysink is a simulated trigger application: the HTTP receiver
// of the dialer's result notifications.
//
// The dialer reports each request's result with
//
//	GET <NotificationURL>?Token=..&RequestID=..&TenantName=..&IVRProfileName=..&Telnum=..
//	    &AttemptsMade=..&MaxAttempts=..&TimeToLive=..&TTLRemaining=..&CallUUID=..
//	    &Result=SUCCESS|FAILURE&Status=reason1:reason2
//
// A Sink records every notification it receives on any path (all query
// parameters, the time, the how-many-th for its RequestID), logs it and
// answers 200, or 500 for the first deliveries it was told to fail (to test
// the dialer's retries). It serves what it received as JSON:
//
//	GET /notifications          {"notifications": [...]} (?request_id= for one request)
//	GET /notifications/stats    {"total": .., "request_ids": .., "by_result": {..}, ...}
package notifysink

import (
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DefaultMaxKept bounds the notifications a Sink keeps.
const DefaultMaxKept = 1_000_000

// Options configure a Sink.
type Options struct {
	// FailFirst answers 500 to the first FailFirst deliveries received.
	FailFirst int
	// FailFirstPerRequest answers 500 to the first FailFirstPerRequest
	// deliveries of every RequestID.
	FailFirstPerRequest int
	// MaxKept bounds the notifications kept (default DefaultMaxKept); the
	// oldest are dropped. Counters are not bounded.
	MaxKept int
	// Logger receives a line per notification (default slog.Default()).
	Logger *slog.Logger
	// OnNotification, when set, is called with every notification after it
	// was recorded (from the HTTP handler's goroutine).
	OnNotification func(Notification)
}

// Notification is one delivery as received.
type Notification struct {
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	// Params are the query parameters (several values of one name joined
	// by ",").
	Params map[string]string `json:"params"`
	// The parameters tests look at most, copied from Params.
	RequestID string `json:"request_id"`
	Token     string `json:"token,omitempty"`
	Tenant    string `json:"tenant,omitempty"`
	CallUUID  string `json:"call_uuid,omitempty"`
	Result    string `json:"result"`
	Status    string `json:"status,omitempty"`
	// Seq numbers the deliveries of this RequestID, from 1 (retries and
	// duplicates count).
	Seq int `json:"seq"`
	// Answered is the HTTP status the sink answered (200 or 500).
	Answered int `json:"answered"`
}

// Stats are the sink's counters.
type Stats struct {
	Total      int            `json:"total"`       // deliveries received
	Failed     int            `json:"failed"`      // of them answered 500
	RequestIDs int            `json:"request_ids"` // distinct RequestIDs
	Duplicates int            `json:"duplicates"`  // RequestIDs accepted (200) more than once
	ByResult   map[string]int `json:"by_result"`   // deliveries by Result
}

// Sink receives notifications. It is an http.Handler; safe for concurrent
// use.
type Sink struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	kept     []Notification // ring buffer of at most opts.MaxKept
	head     int
	total    int
	failed   int
	perReq   map[string]int // deliveries per RequestID
	accepted map[string]int // deliveries answered 200 per RequestID
	byResult map[string]int
}

// New returns a sink.
func New(o Options) *Sink {
	if o.MaxKept <= 0 {
		o.MaxKept = DefaultMaxKept
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Sink{opts: o, log: o.Logger, perReq: map[string]int{}, accepted: map[string]int{}, byResult: map[string]int{}}
}

// ServeHTTP serves GET /notifications and GET /notifications/stats, and
// records a notification for any other request.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/notifications", "/notifications/stats":
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == "/notifications" {
			writeJSON(w, struct {
				Notifications []Notification `json:"notifications"`
			}{s.Notifications(r.URL.Query().Get("request_id"))})
		} else {
			writeJSON(w, s.Stats())
		}
		return
	}
	s.receive(w, r)
}

func (s *Sink) receive(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n := Notification{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Params: make(map[string]string, len(q))}
	for k, v := range q {
		n.Params[k] = strings.Join(v, ",")
	}
	n.RequestID, n.Token, n.Tenant = q.Get("RequestID"), q.Get("Token"), q.Get("TenantName")
	n.CallUUID, n.Result, n.Status = q.Get("CallUUID"), q.Get("Result"), q.Get("Status")

	s.mu.Lock()
	s.total++
	s.perReq[n.RequestID]++
	n.Seq = s.perReq[n.RequestID]
	n.Answered = http.StatusOK
	if s.total <= s.opts.FailFirst || n.Seq <= s.opts.FailFirstPerRequest {
		n.Answered = http.StatusInternalServerError
		s.failed++
	} else {
		s.accepted[n.RequestID]++
	}
	s.byResult[n.Result]++
	if len(s.kept) < s.opts.MaxKept {
		s.kept = append(s.kept, n)
	} else {
		s.kept[s.head] = n
		s.head = (s.head + 1) % len(s.kept)
	}
	s.mu.Unlock()

	s.log.Info("notification received", "request_id", n.RequestID, "result", n.Result, "status", n.Status,
		"attempts_made", q.Get("AttemptsMade"), "call_uuid", n.CallUUID, "seq", n.Seq, "answered", n.Answered)
	if s.opts.OnNotification != nil {
		c := n
		c.Params = maps.Clone(n.Params)
		s.opts.OnNotification(c)
	}
	if n.Answered != http.StatusOK {
		http.Error(w, "simulated failure", n.Answered)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// Notifications returns the kept notifications of requestID ("" for all),
// oldest first.
func (s *Sink) Notifications(requestID string) []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Notification{}
	for i := range s.kept {
		n := s.kept[(s.head+i)%len(s.kept)]
		if requestID == "" || n.RequestID == requestID {
			n.Params = maps.Clone(n.Params)
			out = append(out, n)
		}
	}
	return out
}

// Count is the number of deliveries received for requestID.
func (s *Sink) Count(requestID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perReq[requestID]
}

// Stats returns the counters.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Total: s.total, Failed: s.failed, RequestIDs: len(s.perReq), ByResult: maps.Clone(s.byResult)}
	for _, n := range s.accepted {
		if n > 1 {
			st.Duplicates++
		}
	}
	return st
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
