package pacing

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Ranges of the settings. Zero is always allowed and means "inherit" (the
// global entry's value, then the built-in default), except for Retention,
// whose range starts at 0.
const (
	MinCAPS              = 0.1
	MaxCAPS              = 100_000.0
	MinPortLoadFactor    = 1
	MaxPortLoadFactor    = 1000
	MinBatchSize         = 1
	MaxBatchSize         = 1_000_000
	MinLowWatermark      = 1
	MaxLowWatermark      = 100
	MinNextRetryInterval = 100 * time.Millisecond
	MaxNextRetryInterval = 24 * time.Hour
	MinCleanInterval     = time.Second
	MaxCleanInterval     = 24 * time.Hour
	MaxRetention         = 30 * 24 * time.Hour
)

// tenantPattern is the tenant name rule of the API (api/validate.go).
var tenantPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// FieldError is one invalid field of a pacing entry; Field is the
// fsmpb.Pacing field name ("caps", "next_retry_interval_ms", ...).
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Errors are every invalid field of an entry, in field order. Validate
// returns them as its error; use errors.As to get at them.
type Errors []*FieldError

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Validate checks a pacing entry as the API stores it: tenant empty (the
// global entry) or a valid tenant name, and every value zero (inherit) or
// within its range (see the Min and Max constants); batch_size is required
// with batch_size_mode Fixed and must be 0 otherwise. It returns nil or
// Errors naming each invalid field, e.g. "caps: 200001 is outside
// 0..100000".
func Validate(p *fsmpb.Pacing) error {
	if p == nil {
		return Errors{{Field: "pacing", Reason: "is required"}}
	}
	var es Errors
	add := func(field, format string, args ...any) {
		es = append(es, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if p.Tenant != "" && !tenantPattern.MatchString(p.Tenant) {
		add("tenant", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (or empty for the global entry)")
	}
	switch c := p.Caps; {
	case math.IsNaN(c) || math.IsInf(c, 0):
		add("caps", "%v is not a finite number", c)
	case c < 0 || c > MaxCAPS:
		add("caps", "%v is outside 0..%v", c, MaxCAPS)
	case c > 0 && c < MinCAPS:
		add("caps", "%v is below the minimum %v (0 inherits)", c, MinCAPS)
	}
	if p.PortLoadFactor > MaxPortLoadFactor {
		add("port_load_factor", "%d is outside 0..%d", p.PortLoadFactor, MaxPortLoadFactor)
	}
	switch p.BatchSizeMode {
	case "", BatchTotalPorts, BatchAvailablePorts, BatchFixed:
	default:
		add("batch_size_mode", "%q must be %s, %s or %s (or empty to inherit)", truncate(p.BatchSizeMode, 40), BatchTotalPorts, BatchAvailablePorts, BatchFixed)
	}
	switch {
	case p.BatchSizeMode == BatchFixed && p.BatchSize == 0:
		add("batch_size", "is required (%d..%d) with batch_size_mode %s", MinBatchSize, MaxBatchSize, BatchFixed)
	case p.BatchSizeMode == BatchFixed && p.BatchSize > MaxBatchSize:
		add("batch_size", "%d is outside %d..%d", p.BatchSize, MinBatchSize, MaxBatchSize)
	case p.BatchSizeMode != BatchFixed && p.BatchSize != 0:
		add("batch_size", "must be 0 unless batch_size_mode is %s", BatchFixed)
	}
	if p.QueueLowWatermark > MaxLowWatermark {
		add("queue_low_watermark", "%d is outside 0..%d", p.QueueLowWatermark, MaxLowWatermark)
	}
	switch p.SlotCalculation {
	case "", SlotsProportionate, SlotsEqual:
	default:
		add("slot_calculation", "%q must be %s or %s (or empty to inherit)", truncate(p.SlotCalculation, 40), SlotsProportionate, SlotsEqual)
	}
	interval := func(field string, ms int64, lo, hi time.Duration) {
		d := msDuration(ms)
		switch {
		case ms < 0 || d > hi:
			add(field, "%v is outside 0s..%v", d, hi)
		case ms > 0 && d < lo:
			add(field, "%v is below the minimum %v (0 inherits)", d, lo)
		}
	}
	interval("next_retry_interval_ms", p.NextRetryIntervalMs, MinNextRetryInterval, MaxNextRetryInterval)
	interval("clean_interval_ms", p.CleanIntervalMs, MinCleanInterval, MaxCleanInterval)
	interval("retention_ms", p.RetentionMs, 0, MaxRetention)
	if len(es) > 0 {
		return es
	}
	return nil
}

// msDuration converts milliseconds without overflowing.
func msDuration(ms int64) time.Duration {
	const maxMs = math.MaxInt64 / int64(time.Millisecond)
	switch {
	case ms > maxMs:
		return time.Duration(math.MaxInt64)
	case ms < -maxMs:
		return time.Duration(math.MinInt64)
	}
	return time.Duration(ms) * time.Millisecond
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
