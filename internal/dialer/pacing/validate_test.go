package pacing

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

func TestValidate(t *testing.T) {
	full := func() *fsmpb.Pacing {
		return &fsmpb.Pacing{
			Tenant: "acme", Caps: 50, PortLoadFactor: 90, BatchSizeMode: BatchFixed, BatchSize: 100,
			QueueLowWatermark: 25, SlotCalculation: SlotsEqual, EqualPriorityNewAndOld: true,
			NextRetryIntervalMs: 10_000, CleanIntervalMs: 180_000, RetentionMs: 0,
		}
	}
	with := func(edit func(p *fsmpb.Pacing)) *fsmpb.Pacing {
		p := full()
		edit(p)
		return p
	}
	cases := []struct {
		name string
		p    *fsmpb.Pacing
		// want is the error text, "" for valid.
		want string
	}{
		{"every field set", full(), ""},
		{"empty tenant entry", &fsmpb.Pacing{Tenant: "acme"}, ""},
		{"empty global entry", &fsmpb.Pacing{}, ""},
		{"global with values", with(func(p *fsmpb.Pacing) { p.Tenant = "" }), ""},
		{"tenant with dots", &fsmpb.Pacing{Tenant: "a.b_c-1"}, ""},
		{"nil", nil, "pacing: is required"},

		{"tenant pattern", &fsmpb.Pacing{Tenant: "-acme"}, "tenant: must be 1-64"},
		{"tenant space", &fsmpb.Pacing{Tenant: "a b"}, "tenant: must be 1-64"},
		{"tenant _global", &fsmpb.Pacing{Tenant: "_global"}, "tenant: must be 1-64"},
		{"tenant too long", &fsmpb.Pacing{Tenant: strings.Repeat("a", 65)}, "tenant: must be 1-64"},

		{"caps min", &fsmpb.Pacing{Caps: 0.1}, ""},
		{"caps max", &fsmpb.Pacing{Caps: 100000}, ""},
		{"caps fraction", &fsmpb.Pacing{Caps: 12.5}, ""},
		{"caps above", &fsmpb.Pacing{Caps: 200001}, "caps: 200001 is outside 0..100000"},
		{"caps negative", &fsmpb.Pacing{Caps: -1}, "caps: -1 is outside 0..100000"},
		{"caps below min", &fsmpb.Pacing{Caps: 0.05}, "caps: 0.05 is below the minimum 0.1 (0 inherits)"},
		{"caps NaN", &fsmpb.Pacing{Caps: math.NaN()}, "caps: NaN is not a finite number"},
		{"caps Inf", &fsmpb.Pacing{Caps: math.Inf(1)}, "caps: +Inf is not a finite number"},

		{"port load factor min", &fsmpb.Pacing{PortLoadFactor: 1}, ""},
		{"port load factor max", &fsmpb.Pacing{PortLoadFactor: 1000}, ""},
		{"port load factor above", &fsmpb.Pacing{PortLoadFactor: 1001}, "port_load_factor: 1001 is outside 0..1000"},

		{"mode TotalPorts", &fsmpb.Pacing{BatchSizeMode: BatchTotalPorts}, ""},
		{"mode AvailablePorts", &fsmpb.Pacing{BatchSizeMode: BatchAvailablePorts}, ""},
		{"mode unknown", &fsmpb.Pacing{BatchSizeMode: "totalports"}, `batch_size_mode: "totalports" must be TotalPorts, AvailablePorts or Fixed`},
		{"fixed without size", &fsmpb.Pacing{BatchSizeMode: BatchFixed}, "batch_size: is required (1..1000000) with batch_size_mode Fixed"},
		{"fixed max size", &fsmpb.Pacing{BatchSizeMode: BatchFixed, BatchSize: 1_000_000}, ""},
		{"fixed size above", &fsmpb.Pacing{BatchSizeMode: BatchFixed, BatchSize: 1_000_001}, "batch_size: 1000001 is outside 1..1000000"},
		{"size without fixed", &fsmpb.Pacing{BatchSize: 10}, "batch_size: must be 0 unless batch_size_mode is Fixed"},
		{"size with TotalPorts", &fsmpb.Pacing{BatchSizeMode: BatchTotalPorts, BatchSize: 10}, "batch_size: must be 0 unless batch_size_mode is Fixed"},

		{"low watermark max", &fsmpb.Pacing{QueueLowWatermark: 100}, ""},
		{"low watermark above", &fsmpb.Pacing{QueueLowWatermark: 101}, "queue_low_watermark: 101 is outside 0..100"},

		{"slots proportionate", &fsmpb.Pacing{SlotCalculation: SlotsProportionate}, ""},
		{"slots unknown", &fsmpb.Pacing{SlotCalculation: "equal"}, `slot_calculation: "equal" must be PROPORTIONATE or EQUAL`},

		{"retry interval min", &fsmpb.Pacing{NextRetryIntervalMs: 100}, ""},
		{"retry interval max", &fsmpb.Pacing{NextRetryIntervalMs: 86_400_000}, ""},
		{"retry interval below", &fsmpb.Pacing{NextRetryIntervalMs: 99}, "next_retry_interval_ms: 99ms is below the minimum 100ms (0 inherits)"},
		{"retry interval above", &fsmpb.Pacing{NextRetryIntervalMs: 86_400_001}, "next_retry_interval_ms: 24h0m0.001s is outside 0s..24h0m0s"},
		{"retry interval negative", &fsmpb.Pacing{NextRetryIntervalMs: -1}, "next_retry_interval_ms: -1ms is outside 0s..24h0m0s"},
		{"clean interval min", &fsmpb.Pacing{CleanIntervalMs: 1000}, ""},
		{"clean interval below", &fsmpb.Pacing{CleanIntervalMs: 999}, "clean_interval_ms: 999ms is below the minimum 1s (0 inherits)"},
		{"clean interval above", &fsmpb.Pacing{CleanIntervalMs: 86_400_001}, "clean_interval_ms: 24h0m0.001s is outside 0s..24h0m0s"},
		{"retention short", &fsmpb.Pacing{RetentionMs: 1}, ""},
		{"retention max", &fsmpb.Pacing{RetentionMs: 30 * 86_400_000}, ""},
		{"retention above", &fsmpb.Pacing{RetentionMs: 30*86_400_000 + 1}, "retention_ms: 720h0m0.001s is outside 0s..720h0m0s"},
		{"retention negative", &fsmpb.Pacing{RetentionMs: -5}, "retention_ms: -5ms is outside 0s..720h0m0s"},
		{"retention huge", &fsmpb.Pacing{RetentionMs: math.MaxInt64}, "retention_ms: 2562047h47m16.854775807s is outside 0s..720h0m0s"},

		{"several fields", &fsmpb.Pacing{Caps: 200001, QueueLowWatermark: 101, BatchSize: 3},
			"caps: 200001 is outside 0..100000; batch_size: must be 0 unless batch_size_mode is Fixed; queue_low_watermark: 101 is outside 0..100"},
	}
	for _, c := range cases {
		err := Validate(c.p)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && err == nil:
			t.Errorf("%s: accepted, want %q", c.name, c.want)
		case c.want != "" && !strings.HasPrefix(err.Error(), c.want):
			t.Errorf("%s: %q, want %q", c.name, err, c.want)
		}
	}
}

func TestValidateErrorsNameEachField(t *testing.T) {
	err := Validate(&fsmpb.Pacing{Tenant: "a b", PortLoadFactor: 2000, SlotCalculation: "x", CleanIntervalMs: 1})
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("%T is not Errors", err)
	}
	var fields []string
	for _, e := range es {
		fields = append(fields, e.Field)
		if e.Reason == "" {
			t.Errorf("%s: no reason", e.Field)
		}
	}
	if got := strings.Join(fields, ","); got != "tenant,port_load_factor,slot_calculation,clean_interval_ms" {
		t.Fatalf("fields %s", got)
	}
}

// Valid entries resolve tenant → global → default.
func TestValidEntryResolvesWithinRanges(t *testing.T) {
	global := &fsmpb.Pacing{Caps: 300, BatchSizeMode: BatchFixed, BatchSize: 50, CleanIntervalMs: 60_000}
	tenant := &fsmpb.Pacing{Tenant: "acme", Caps: 20, BatchSizeMode: BatchAvailablePorts}
	for _, p := range []*fsmpb.Pacing{global, tenant} {
		if err := Validate(p); err != nil {
			t.Fatal(err)
		}
	}
	s := Resolve(global, tenant)
	if s.CAPS != 20 || s.BatchMode != BatchAvailablePorts || s.CleanInterval != MinCleanInterval*60 || s.PortLoadFactor != DefaultPortLoadFactor {
		t.Fatalf("resolved %+v", s)
	}
	if GlobalCAPS(global) != 300 || GlobalCAPS(nil) != 0 {
		t.Fatal("GlobalCAPS")
	}
}
