package window

import (
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

func zoneNames(locs []*time.Location) []string {
	var out []string
	for _, l := range locs {
		out = append(out, l.String())
	}
	return out
}

func TestZones(t *testing.T) {
	cases := []struct {
		telnum string
		want   []string
	}{
		{"+12125550100", []string{"America/New_York"}},    // NYC, Eastern
		{"13125550100", []string{"America/Chicago"}},      // Chicago, Central (no '+')
		{"+13035550100", []string{"America/Denver"}},      // Denver, Mountain
		{"+14155550100", []string{"America/Los_Angeles"}}, // San Francisco, Pacific
		{"+16025550100", []string{"America/Phoenix"}},     // Arizona: no DST
		{"+18085550100", []string{"Pacific/Honolulu"}},
		{"+12085550100", []string{"America/Boise", "America/Los_Angeles"}},          // Idaho: split
		{"+18505550100", []string{"America/Chicago", "America/New_York"}},           // Florida panhandle: libphonenumber says Central only
		{"+19285550100", []string{"America/Denver", "America/Phoenix"}},             // Arizona's Navajo Nation keeps DST
		{"+19075550100", []string{"America/Adak", "America/Anchorage"}},             // Alaska: split
		{"+17015550100", []string{"America/Denver", "America/North_Dakota/Center"}}, // North Dakota: split
		{"+33123456789", []string{"Europe/Paris"}},
		{"+61212345678", []string{"Australia/Sydney"}},
		{"+15550100", nil}, // not a valid NANP number
		{"+1555", nil},
		{"", nil},
		{"+", nil},
		{"+999123", nil},
	}
	for _, c := range cases {
		got := zoneNames(Zones(c.telnum))
		if len(got) != len(c.want) {
			t.Errorf("%q: zones %v, want %v", c.telnum, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%q: zones %v, want %v", c.telnum, got, c.want)
				break
			}
		}
	}
	if got := zoneNames(CalleeZones("+12125550100", "Europe/Berlin")); len(got) != 1 || got[0] != "Europe/Berlin" {
		t.Errorf("explicit zone: %v", got)
	}
	if got := CalleeZones("+12125550100", "Mars/Olympus"); got != nil {
		t.Errorf("bad explicit zone: %v", got)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := ParseZone(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustCompile(t *testing.T, w *fsmpb.CallingWindow) *Window {
	t.Helper()
	c, err := Compile(w)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func at(t *testing.T, loc *time.Location, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestNextOpen(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	phx := mustZone(t, "America/Phoenix")
	la := mustZone(t, "America/Los_Angeles")
	tcpa := mustCompile(t, &fsmpb.CallingWindow{Weekly: Presets[PresetUSTCPA]()})
	night := mustCompile(t, &fsmpb.CallingWindow{Weekly: Daily(22*60, 24*60), Exceptions: nil})
	overnight := mustCompile(t, &fsmpb.CallingWindow{Weekly: append(Daily(0, 6*60), Daily(22*60, 24*60)...)})
	dst := mustCompile(t, &fsmpb.CallingWindow{Weekly: Daily(2*60+30, 4*60)})
	holidays := mustCompile(t, &fsmpb.CallingWindow{
		Weekly: []*fsmpb.DaySpan{{Weekday: 1, OpenMinute: 9 * 60, CloseMinute: 17 * 60}, {Weekday: 2, OpenMinute: 9 * 60, CloseMinute: 17 * 60}},
		Exceptions: []*fsmpb.DateSpan{
			{Date: "2026-12-21"}, // a Monday: closed
			{Date: "2026-12-22", OpenMinute: 12 * 60, CloseMinute: 13 * 60},
			{Date: "2026-12-26", OpenMinute: 10 * 60, CloseMinute: 11 * 60}, // a Saturday: open
		},
	})
	cases := []struct {
		name  string
		w     *Window
		zones []*time.Location
		now   time.Time
		want  time.Time
	}{
		{"open now", tcpa, []*time.Location{ny}, at(t, ny, "2026-07-01 12:00"), at(t, ny, "2026-07-01 12:00")},
		{"at opening", tcpa, []*time.Location{ny}, at(t, ny, "2026-07-01 08:00"), at(t, ny, "2026-07-01 08:00")},
		{"before opening", tcpa, []*time.Location{ny}, at(t, ny, "2026-07-01 03:00"), at(t, ny, "2026-07-01 08:00")},
		{"at close", tcpa, []*time.Location{ny}, at(t, ny, "2026-07-01 21:00"), at(t, ny, "2026-07-02 08:00")},
		{"after close, across midnight", tcpa, []*time.Location{ny}, at(t, ny, "2026-07-01 23:59"), at(t, ny, "2026-07-02 08:00")},
		{"Arizona keeps MST in summer", tcpa, []*time.Location{phx}, at(t, ny, "2026-07-01 10:30"), at(t, phx, "2026-07-01 08:00")},
		{"two zones: open when both are", tcpa, []*time.Location{ny, la}, at(t, ny, "2026-07-01 09:00"), at(t, la, "2026-07-01 08:00")},
		{"two zones: closes with the first", tcpa, []*time.Location{ny, la}, at(t, ny, "2026-07-01 21:30"), at(t, la, "2026-07-02 08:00")},
		{"span to midnight", night, []*time.Location{ny}, at(t, ny, "2026-07-01 23:30"), at(t, ny, "2026-07-01 23:30")},
		{"overnight spans", overnight, []*time.Location{ny}, at(t, ny, "2026-07-01 06:00"), at(t, ny, "2026-07-01 22:00")},
		{"overnight after midnight", overnight, []*time.Location{ny}, at(t, ny, "2026-07-01 23:59").Add(2 * time.Minute), at(t, ny, "2026-07-02 00:01")},
		// 2026-03-08: US clocks go 02:00 → 03:00; 02:30 does not exist.
		{"spring forward: skipped opening moves to 03:30", dst, []*time.Location{ny}, at(t, ny, "2026-03-08 01:00"), time.Date(2026, 3, 8, 7, 30, 0, 0, time.UTC)},
		{"spring forward: 8am opening is EDT", tcpa, []*time.Location{ny}, at(t, ny, "2026-03-08 05:00"), time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)},
		// 2026-11-01: US clocks go 02:00 → 01:00.
		{"fall back: 8am opening is EST", tcpa, []*time.Location{ny}, at(t, ny, "2026-11-01 05:00"), time.Date(2026, 11, 1, 13, 0, 0, 0, time.UTC)},
		{"fall back: after close", tcpa, []*time.Location{ny}, time.Date(2026, 11, 2, 2, 30, 0, 0, time.UTC), time.Date(2026, 11, 2, 13, 0, 0, 0, time.UTC)},
		{"holiday closed", holidays, []*time.Location{ny}, at(t, ny, "2026-12-21 10:00"), at(t, ny, "2026-12-22 12:00")},
		{"holiday short day, after it", holidays, []*time.Location{ny}, at(t, ny, "2026-12-22 13:00"), at(t, ny, "2026-12-26 10:00")},
		{"extra open day", holidays, []*time.Location{ny}, at(t, ny, "2026-12-26 10:15"), at(t, ny, "2026-12-26 10:15")},
	}
	for _, c := range cases {
		got, ok := c.w.NextOpen(c.now, c.zones)
		if !ok || !got.Equal(c.want) {
			t.Errorf("%s: NextOpen(%v) = %v %v, want %v", c.name, c.now, got, ok, c.want)
		}
	}
	never := mustCompile(t, &fsmpb.CallingWindow{})
	if got, ok := never.NextOpen(at(t, ny, "2026-07-01 12:00"), []*time.Location{ny}); ok {
		t.Errorf("empty schedule opens at %v", got)
	}
	if _, ok := tcpa.NextOpen(at(t, ny, "2026-07-01 12:00"), nil); ok {
		t.Error("no zone: open")
	}
}

func TestCompileErrors(t *testing.T) {
	bad := map[string]*fsmpb.CallingWindow{
		"weekday":      {Weekly: []*fsmpb.DaySpan{{Weekday: 7, OpenMinute: 1, CloseMinute: 2}}},
		"close<open":   {Weekly: []*fsmpb.DaySpan{{Weekday: 1, OpenMinute: 600, CloseMinute: 500}}},
		"past 24:00":   {Weekly: []*fsmpb.DaySpan{{Weekday: 1, OpenMinute: 600, CloseMinute: 1441}}},
		"date":         {Exceptions: []*fsmpb.DateSpan{{Date: "2026-13-01"}}},
		"policy":       {UnknownZone: "guess"},
		"default zone": {UnknownZone: UnknownDefaultZone, DefaultZone: "Nowhere/City"},
		"no default":   {UnknownZone: UnknownDefaultZone},
	}
	for name, w := range bad {
		if _, err := Compile(w); err == nil {
			t.Errorf("%s: compiled", name)
		}
	}
	w := mustCompile(t, &fsmpb.CallingWindow{UnknownZone: UnknownDefaultZone, DefaultZone: "America/Chicago"})
	if z := w.ZoneFor(nil); len(z) != 1 || z[0].String() != "America/Chicago" {
		t.Errorf("default zone: %v", z)
	}
	if z := mustCompile(t, &fsmpb.CallingWindow{}).ZoneFor(nil); z != nil {
		t.Errorf("skip policy gave zones %v", z)
	}
}

func TestParse(t *testing.T) {
	for s, want := range map[string]uint32{"00:00": 0, "08:00": 480, "21:30": 1290, "24:00": 1440} {
		if got, err := ParseMinute(s); err != nil || got != want {
			t.Errorf("ParseMinute(%q) = %d, %v", s, got, err)
		}
		if got, _ := ParseMinute(FormatMinute(want)); got != want {
			t.Errorf("round trip %d", want)
		}
	}
	for _, s := range []string{"", "8:00", "24:01", "12:60", "ab:cd", "-1:00", "12:5", "00:+0", "+1:00", "-0:00", " 1:00"} {
		if _, err := ParseMinute(s); err == nil {
			t.Errorf("ParseMinute(%q) accepted", s)
		}
	}
	for s, n := range map[string]int{"daily": 7, "weekdays": 5, "weekends": 2, "Mon": 1, "sun": 1} {
		if d, err := ParseDays(s); err != nil || len(d) != n {
			t.Errorf("ParseDays(%q) = %v, %v", s, d, err)
		}
	}
	if _, err := ParseDays("funday"); err == nil {
		t.Error("funday accepted")
	}
}

func FuzzParseMinute(f *testing.F) {
	for _, s := range []string{"08:00", "24:00", "", "9:5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMinute(s)
		if err == nil && (m > 1440 || FormatMinute(m) != s) {
			t.Fatalf("%q parsed as %d", s, m)
		}
	})
}
