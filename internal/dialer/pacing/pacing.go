// Package pacing resolves the dialer's runtime settings: the replicated
// per-tenant and global fsmpb.Pacing entries over the built-in defaults.
//
// A tenant's effective value of each field is its own entry's value when
// set (non-zero), else the global entry's (tenant ""), else the default
// below. The global entry's CAPS is also the global limit on attempts per
// second across all tenants (0: no global limit).
package pacing

import (
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Batch-size modes (the SSG's Request Batch Size).
const (
	BatchTotalPorts     = "TotalPorts"
	BatchAvailablePorts = "AvailablePorts"
	BatchFixed          = "Fixed"
)

// Application slot calculations.
const (
	SlotsProportionate = "PROPORTIONATE"
	SlotsEqual         = "EQUAL"
)

// Built-in defaults.
const (
	DefaultCAPS              = 50.0
	DefaultPortLoadFactor    = 100
	DefaultBatchMode         = BatchTotalPorts
	DefaultLowWatermark      = 25
	DefaultSlots             = SlotsProportionate
	DefaultNextRetryInterval = 10 * time.Second
	DefaultCleanInterval     = 180 * time.Second
	DefaultRetention         = 0 // purge at the first cleanup after notification
)

// Settings are one tenant's effective dialer settings.
type Settings struct {
	CAPS              float64 // attempts per second for the tenant
	PortLoadFactor    uint32  // percent of the ports the dialer may fill
	BatchMode         string  // BatchTotalPorts, BatchAvailablePorts or BatchFixed
	BatchSize         uint32  // for BatchFixed
	LowWatermark      uint32  // percent of the batch size
	Slots             string  // SlotsProportionate or SlotsEqual
	EqualNewAndOld    bool
	NextRetryInterval time.Duration
	CleanInterval     time.Duration
	Retention         time.Duration
}

// Defaults are the built-in settings.
func Defaults() Settings {
	return Settings{
		CAPS:              DefaultCAPS,
		PortLoadFactor:    DefaultPortLoadFactor,
		BatchMode:         DefaultBatchMode,
		LowWatermark:      DefaultLowWatermark,
		Slots:             DefaultSlots,
		NextRetryInterval: DefaultNextRetryInterval,
		CleanInterval:     DefaultCleanInterval,
		Retention:         DefaultRetention,
	}
}

// Resolve returns the effective settings of a tenant from its entry and the
// global entry (either may be nil).
func Resolve(global, tenant *fsmpb.Pacing) Settings {
	s := Defaults()
	for _, p := range []*fsmpb.Pacing{global, tenant} { // later wins
		if p == nil {
			continue
		}
		if p.Caps > 0 {
			s.CAPS = p.Caps
		}
		if p.PortLoadFactor > 0 {
			s.PortLoadFactor = p.PortLoadFactor
		}
		if p.BatchSizeMode != "" {
			s.BatchMode = p.BatchSizeMode
			if p.BatchSizeMode == BatchFixed {
				s.BatchSize = p.BatchSize
			}
		}
		if p.QueueLowWatermark > 0 {
			s.LowWatermark = p.QueueLowWatermark
		}
		if p.SlotCalculation != "" {
			s.Slots = p.SlotCalculation
		}
		if p.EqualPriorityNewAndOld {
			s.EqualNewAndOld = true
		}
		if p.NextRetryIntervalMs > 0 {
			s.NextRetryInterval = time.Duration(p.NextRetryIntervalMs) * time.Millisecond
		}
		if p.CleanIntervalMs > 0 {
			s.CleanInterval = time.Duration(p.CleanIntervalMs) * time.Millisecond
		}
		if p.RetentionMs > 0 {
			s.Retention = time.Duration(p.RetentionMs) * time.Millisecond
		}
	}
	return s
}

// GlobalCAPS is the deployment-wide limit on attempts per second from the
// global entry; 0 means no global limit.
func GlobalCAPS(global *fsmpb.Pacing) float64 {
	if global == nil {
		return 0
	}
	return global.Caps
}
