package main

import (
	"time"

	"github.com/seed-7bfc04c2/dialtone/bench/report"
)

// Report is the whole run, written as results.json.
type Report struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Command  string    `json:"command"`
	Machine  Machine   `json:"machine"`
	Quick    bool      `json:"quick"`
	Config   Config    `json:"config"`

	Caps     []CapsResult    `json:"caps,omitempty"`
	Ports    []PortsResult   `json:"ports,omitempty"`
	Ingest   []IngestResult  `json:"ingest,omitempty"`
	Failover *FailoverResult `json:"failover,omitempty"`
	Reads    []ReadResult    `json:"reads,omitempty"`
	// OpenReads: the reads at a fixed offered rate (open loop).
	OpenReads []OpenReadResult `json:"open_reads,omitempty"`
	RawRaft   *RawRaftResult   `json:"raw_raft,omitempty"`
	// RecordsPerEntry: records stored per Raft entry during the gRPC bulk
	// ingest (Δ records ÷ Δ last log index on the leader).
	RecordsPerEntry float64 `json:"records_per_entry,omitempty"`

	Checks []Check  `json:"checks"`
	Errors []string `json:"errors,omitempty"` // scenarios that could not run
	Charts []string `json:"charts"`
}

// Machine describes where the run happened.
type Machine struct {
	NumCPU    int     `json:"num_cpu"`
	MemGiB    float64 `json:"mem_total_gib"`
	GoVersion string  `json:"go_version"`
	OS        string  `json:"os"`
	Arch      string  `json:"arch"`
	Load1     string  `json:"load_avg_at_start"`
}

// Check is an invariant (a failure fails the run) or a performance
// target from the issue (reported only), and whether it held.
type Check struct {
	Scenario string `json:"scenario"`
	Name     string `json:"name"`
	Target   bool   `json:"target,omitempty"`
	OK       bool   `json:"ok"`
	Detail   string `json:"detail"`
}

// CapsResult is one caps target.
type CapsResult struct {
	Label   string `json:"label"`
	Tenant  string `json:"tenant"`
	PLF     int    `json:"port_load_factor"`
	Backlog int    `json:"backlog"`
	Ports   int    `json:"ports_total"`
	// Rate is what the checks use: counted on the wire (Measured "wire":
	// the packets to mediasim's gRPC port, tcpdump on lo) or, when no
	// capture could be used (WireNote says why), from mediasim's stamps
	// (Measured "mediasim").
	Rate     report.Rate `json:"rate"`
	Measured string      `json:"measured_at"`
	WireNote string      `json:"wire_note,omitempty"`
	// AtMediasim: the same figures from mediasim's own stamps (its
	// receive loop, in user space).
	AtMediasim report.Rate `json:"rate_at_mediasim"`
	// Wire: the capture checked against mediasim (nil without one).
	Wire *WireCheck `json:"wire,omitempty"`
	// Send pairs the leader's send log with the wire (sendlog.go).
	Send *SendCheck `json:"send_log,omitempty"`
	// CappedByPortsPct: share of samples in the measured window where the
	// engine's calls in progress were at its port budget (the rate limited by
	// ports, not CAPS).
	CappedByPortsPct float64 `json:"capped_by_ports_pct"`
	PeakInUse        int64   `json:"peak_platform_in_use"`
	Refused          uint64  `json:"refused"`
	Concurrent       uint64  `json:"concurrent_violations"`
	// LeaderChanges: how often the leader the sampler saw changed during
	// the run (a change between two samples counts once).
	LeaderChanges int      `json:"leader_changes"`
	Samples       []Sample `json:"samples"`
	// RateSeries: attempts per second in 1 s bins from the CAPS change,
	// where Rate was counted; RateSeriesAtMediasim at mediasim when that
	// was the wire.
	RateSeries           []report.Point `json:"rate_series"`
	RateSeriesAtMediasim []report.Point `json:"rate_series_at_mediasim,omitempty"`
}

// PortsResult is one port view of the ports scenario.
type PortsResult struct {
	View    string  `json:"view"`
	Tenant  string  `json:"tenant"`
	Ports   int     `json:"ports_total"`
	PLF     int     `json:"port_load_factor"`
	Budget  int     `json:"budget"` // ports × PLF / 100
	CAPS    float64 `json:"caps"`
	Seconds float64 `json:"measured_seconds"`
	// Utilisation: mean platform ports in use over the measured samples
	// while a backlog existed, as a percentage of Budget.
	UtilisationPct float64  `json:"utilisation_pct"`
	MeanInUse      float64  `json:"mean_in_use"`
	MinInUse       int64    `json:"min_in_use"`
	PeakInUse      int64    `json:"peak_in_use"`
	Refused        uint64   `json:"refused"` // oversubscription
	Placed         uint64   `json:"placed"`
	Samples        []Sample `json:"samples"`
}

// IngestResult is one protocol and shape of the ingest scenario.
type IngestResult struct {
	Protocol      string           `json:"protocol"`
	Shape         string           `json:"shape"`
	Writers       int              `json:"writers"`
	Batch         int              `json:"batch"`
	Seconds       float64          `json:"seconds"`
	CallsPerSec   float64          `json:"calls_per_sec"`
	RecordsPerSec float64          `json:"records_per_sec"`
	P50ms         float64          `json:"p50_ms"`
	P99ms         float64          `json:"p99_ms"`
	Acked         int64            `json:"acked"`
	Errors        map[string]int64 `json:"errors"`
	ItemFailures  map[string]int64 `json:"item_failures"`
}

// FailoverResult is the failover scenario.
type FailoverResult struct {
	CAPS     float64        `json:"caps"`
	Requests int            `json:"requests"`
	Kills    []Kill         `json:"kills"`
	MaxGap   float64        `json:"max_resumed_after_s"`
	Rate     report.Rate    `json:"rate"`
	Samples  []Sample       `json:"samples"`
	Series   []report.Point `json:"rate_series"`
	// Invariants.
	Lost             int     `json:"lost"`
	NotTerminal      int     `json:"not_terminal"`
	OverMaxAttempts  int     `json:"over_max_attempts"`
	Concurrent       int     `json:"concurrent_attempts"`
	Refused          uint64  `json:"refused"`
	Notified         int     `json:"notified_request_ids"`
	InterruptedCalls int     `json:"interrupted_calls"`
	SettleSeconds    float64 `json:"settle_seconds"`
}

// Kill is one leader SIGKILL.
type Kill struct {
	Node string     `json:"node"`
	At   float64    `json:"at_s"`
	Gap  report.Gap `json:"gap"`
	// NewLeader and how long until the cluster agreed on it.
	NewLeader    string  `json:"new_leader"`
	ElectedAfter float64 `json:"elected_after_s"`
}

// ReadResult is one read of the reads scenario.
type ReadResult struct {
	Read    string           `json:"read"`
	Node    string           `json:"node"`
	Workers int              `json:"workers"`
	Seconds float64          `json:"seconds"`
	PerSec  float64          `json:"per_sec"`
	P50ms   float64          `json:"p50_ms"`
	P99ms   float64          `json:"p99_ms"`
	Errors  map[string]int64 `json:"errors"`
	// NodeCPUus and ClientCPUus: the node's and this process's (the load
	// generator's) CPU time, user + system, per answered read over the
	// whole run (warm-up included); 0 when not measured. Unlike the rate,
	// they hardly depend on what else the machine runs.
	NodeCPUus   float64 `json:"node_cpu_us_per_read,omitempty"`
	ClientCPUus float64 `json:"client_cpu_us_per_read,omitempty"`
}

// OpenReadResult is one read at a fixed offered rate; latencies count from
// each call's intended send time.
type OpenReadResult struct {
	Read        string  `json:"read"`
	Node        string  `json:"node"`
	OfferedRate float64 `json:"offered_per_sec"`
	Seconds     float64 `json:"seconds"`
	Scheduled   int64   `json:"scheduled"`
	Completed   int64   `json:"completed"`
	Unfinished  int64   `json:"unfinished"`
	PerSec      float64 `json:"achieved_per_sec"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	Maxms       float64 `json:"max_ms"`
	// GenLateP99ms: the 99th percentile of how late the load generator
	// itself handed a call to its workers (its own stalls, included in
	// the latencies).
	GenLateP99ms float64          `json:"generator_late_p99_ms"`
	Errors       map[string]int64 `json:"errors"`
}

// RawRaftResult is the raw Raft baseline.
type RawRaftResult struct {
	Writers         int              `json:"writers"`
	RecordsPerEntry int              `json:"records_per_entry"`
	EntryBytes      int              `json:"entry_bytes"`
	Seconds         float64          `json:"seconds"`
	EntriesPerSec   float64          `json:"entries_per_sec"`
	RecordsPerSec   float64          `json:"records_per_sec"`
	P50ms           float64          `json:"p50_ms"`
	P99ms           float64          `json:"p99_ms"`
	Entries         uint64           `json:"entries"`
	Errors          map[string]int64 `json:"errors"`
}
