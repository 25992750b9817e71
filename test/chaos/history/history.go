// Package history is the record of one chaos run: every client operation
// with its invocation and response times, every call the media platform saw,
// every notification the trigger application received, the final state of
// every request, the faults applied and the leaders observed. The runner
// (package chaos) writes it as JSON; the checkers (package chaos/check) read
// it. All times come from one host clock (the containers share it).
package history

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/sim/mediasim"
	"github.com/seed-7bfc04c2/dialtone/internal/sim/notifysink"
)

// Kind is a client operation's kind.
type Kind string

// The operations the load generator issues.
const (
	Create Kind = "create"
	Get    Kind = "get" // consistency=linearizable
	Cancel Kind = "cancel"
)

// Outcomes of an operation, as the client saw them.
const (
	// OK: a create stored (or found its idempotency key), a get found the
	// request, a cancel cancelled it (or found it cancelled).
	OK = "ok"
	// NotFound: get or cancel of an id the cluster does not know.
	NotFound = "not_found"
	// InProgress: a cancel refused because an attempt is in progress.
	InProgress = "in_progress"
	// Finished: a cancel refused because the request is already processed.
	Finished = "finished"
	// Unknown: no definite answer (timeout, 503, connection lost). The
	// operation may or may not have taken effect.
	Unknown = "unknown"
)

// Op is one client operation.
type Op struct {
	Client int  `json:"client"`
	Kind   Kind `json:"kind"`
	// Token is unique per created request: the partition key of the
	// linearizability check (ids are assigned by the cluster).
	Token string `json:"token"`
	ID    string `json:"id,omitempty"`
	Node  string `json:"node"` // the node the client asked
	// Invoke is when the operation was sent; Return when its definite
	// answer arrived (zero for Unknown: it may take effect any time after
	// Invoke).
	Invoke  time.Time `json:"invoke"`
	Return  time.Time `json:"return,omitzero"`
	Outcome string    `json:"outcome"`
	Error   string    `json:"error,omitempty"`
	// A get's answer.
	State    string `json:"state,omitempty"`
	Result   string `json:"result,omitempty"`
	Telnum   string `json:"telnum,omitempty"`
	Attempts uint32 `json:"attempts,omitempty"`
}

// String is a one-line rendering for checker reports.
func (o Op) String() string {
	ret := "never"
	if !o.Return.IsZero() {
		ret = o.Return.Format("15:04:05.000")
	}
	s := fmt.Sprintf("client %d %s token=%s id=%s node=%s [%s..%s] -> %s", o.Client, o.Kind, o.Token, o.ID, o.Node,
		o.Invoke.Format("15:04:05.000"), ret, o.Outcome)
	if o.Kind == Get && o.Outcome == OK {
		s += fmt.Sprintf(" state=%s result=%s attempts=%d", o.State, o.Result, o.Attempts)
	}
	if o.Error != "" {
		s += " (" + o.Error + ")"
	}
	return s
}

// Attempt is one attempt of a request as the replicated state records it.
type Attempt struct {
	Number   uint32    `json:"number"`
	CallUUID string    `json:"call_uuid"`
	Started  time.Time `json:"started,omitzero"`
	Ended    time.Time `json:"ended,omitzero"`
	Outcome  string    `json:"outcome,omitempty"`
	Reason   string    `json:"reason,omitempty"`
}

// Final is a request as a linearizable read found it after the drain.
type Final struct {
	ID           string    `json:"id"`
	Token        string    `json:"token"`
	Found        bool      `json:"found"`
	State        string    `json:"state,omitempty"`
	Result       string    `json:"result,omitempty"`
	ResultReason string    `json:"result_reason,omitempty"`
	Telnum       string    `json:"telnum,omitempty"`
	AttemptsMade uint32    `json:"attempts_made"`
	MaxAttempts  uint32    `json:"max_attempts"`
	Created      time.Time `json:"created,omitzero"`
	Expires      time.Time `json:"expires,omitzero"`
	Notification string    `json:"notification,omitempty"`
	Attempts     []Attempt `json:"attempts,omitempty"`
}

// Fault is one fault the runner applied.
type Fault struct {
	Name   string    `json:"name"`
	Target string    `json:"target,omitempty"` // node(s) affected
	Start  time.Time `json:"start"`
	Healed time.Time `json:"healed,omitzero"` // when the runner undid it
	// Settled is when the runner saw a leader again after healing.
	Settled time.Time `json:"settled,omitzero"`
	Note    string    `json:"note,omitempty"`
}

// LeaderObs is one poll of a node's view of the cluster.
type LeaderObs struct {
	Time   time.Time `json:"time"`
	Node   string    `json:"node"`
	State  string    `json:"state"`
	Leader string    `json:"leader"`
	Term   uint64    `json:"term"`
}

// Settings are the run's parameters the checkers need.
type Settings struct {
	Tenant         string  `json:"tenant"`
	CAPS           float64 `json:"caps"`
	PortLoadFactor int     `json:"port_load_factor"`
	TotalPorts     int     `json:"total_ports"`
	MaxAttempts    uint32  `json:"max_attempts"`
	// Tolerance for comparing a time the dialer checked with the time the
	// media platform recorded (one network hop between two processes).
	Skew time.Duration `json:"skew"`
	// Contact is the contact rules the run configured for Tenant
	// (invariant 8); nil: none.
	Contact *ContactRules `json:"contact,omitempty"`
}

// ContactRules are a run's contact rules, as the checkers need them.
type ContactRules struct {
	// Suppressed are numbers put on the tenant's suppression list, each
	// with the time its listing was acknowledged.
	Suppressed []Listing `json:"suppressed,omitempty"`
	// Closed are the spans when the calling window was closed for every
	// callee (absolute times: the run's callees share one zone).
	Closed []Span `json:"closed,omitempty"`
	// WindowGrace is how long after a close a claimed request may still
	// be dialled (docs/compliance.md: up to the queue's drain time).
	WindowGrace time.Duration `json:"window_grace,omitempty"`
	// The frequency cap: at most CapMax calls to one number in any
	// CapPeriod (0: none), at least CapMinGap between two.
	CapMax    int           `json:"cap_max,omitempty"`
	CapPeriod time.Duration `json:"cap_period,omitempty"`
	CapMinGap time.Duration `json:"cap_min_gap,omitempty"`
}

// Listing is one number put on a suppression list at From.
type Listing struct {
	Number string    `json:"number"`
	From   time.Time `json:"from"`
}

// Span is a time interval [From, To).
type Span struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// History is everything one run recorded.
type History struct {
	Settings      Settings                  `json:"settings"`
	Start         time.Time                 `json:"start"`
	End           time.Time                 `json:"end"`
	Ops           []Op                      `json:"ops"`
	Calls         []mediasim.CallRecord     `json:"calls"`
	Notifications []notifysink.Notification `json:"notifications"`
	Finals        []Final                   `json:"finals"`
	Faults        []Fault                   `json:"faults"`
	Leaders       []LeaderObs               `json:"leaders"`
}

// Save writes h as JSON to path.
func (h *History) Save(path string) error {
	b, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// Load reads a history Save wrote.
func Load(path string) (*History, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	var h History
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("history: %s: %w", path, err)
	}
	return &h, nil
}
