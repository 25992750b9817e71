// Package window computes calling windows: when a request may be dialled,
// in the callee's local time. The leader's dialer uses it to decide whether
// a due request may be fetched now or must wait until the next opening; the
// state machine only stores the schedules (fsmpb.CallingWindow) and the
// times the leader computed, so nothing in Apply reads a clock or a zone
// database.
//
// A schedule is a weekly list of open spans per weekday plus dated
// exceptions (a date listed replaces its weekday's spans; a zero-length
// span closes the day). The callee's zone is the request's time_zone when
// given, else derived from its number (Zones); a number that maps to
// several zones is open only when open in all of them. The IANA database is
// embedded (time/tzdata), so a scratch image works.
package window

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // zones in a scratch image

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Policies for a callee whose zone cannot be derived.
const (
	// UnknownSkip ends the request FAILURE (ReasonUnknownZone) without an
	// attempt. The default.
	UnknownSkip = "skip"
	// UnknownDefaultZone uses the window's default zone.
	UnknownDefaultZone = "default_zone"
)

// Result reasons and wait reasons the dialer records.
const (
	ReasonUnknownZone = "Unknown Time Zone"
	ReasonNoOpening   = "Calling Window Never Opens"
	ReasonTTLInWindow = "TTL Expired Outside Calling Window"
	WaitOutside       = "outside_window"
)

// PresetUSTCPA is the US rule: 08:00-21:00 in the callee's local time,
// every day.
const PresetUSTCPA = "us-tcpa"

// Presets are the named schedules, weekly spans by weekday.
var Presets = map[string]func() []*fsmpb.DaySpan{
	PresetUSTCPA: func() []*fsmpb.DaySpan { return Daily(8*60, 21*60) },
}

// Daily is the same span on every weekday.
func Daily(open, close uint32) []*fsmpb.DaySpan {
	out := make([]*fsmpb.DaySpan, 0, 7)
	for d := range uint32(7) {
		out = append(out, &fsmpb.DaySpan{Weekday: d, OpenMinute: open, CloseMinute: close})
	}
	return out
}

// horizon bounds the search for the next opening: a window closed for
// longer than this never opens.
const horizon = 400 * 24 * time.Hour

type span struct{ open, close int } // minutes after local midnight, close exclusive

// Window is a compiled calling window.
type Window struct {
	weekly      [7][]span
	exceptions  map[string][]span // by local date "2006-01-02"
	unknownZone string
	defaultZone *time.Location
}

// Compile checks a stored window and compiles it. Errors name the field.
func Compile(w *fsmpb.CallingWindow) (*Window, error) {
	c := &Window{exceptions: map[string][]span{}, unknownZone: w.GetUnknownZone()}
	for i, d := range w.GetWeekly() {
		if d.Weekday > 6 {
			return nil, fmt.Errorf("weekly[%d].weekday: %d is not 0 (Sunday)..6", i, d.Weekday)
		}
		s, err := spanOf(d.OpenMinute, d.CloseMinute)
		if err != nil {
			return nil, fmt.Errorf("weekly[%d]: %w", i, err)
		}
		c.weekly[d.Weekday] = append(c.weekly[d.Weekday], s)
	}
	for i, d := range w.GetExceptions() {
		if _, err := time.Parse(time.DateOnly, d.Date); err != nil {
			return nil, fmt.Errorf("exceptions[%d].date: %q is not YYYY-MM-DD", i, d.Date)
		}
		s, err := spanOf(d.OpenMinute, d.CloseMinute)
		if err != nil {
			return nil, fmt.Errorf("exceptions[%d]: %w", i, err)
		}
		c.exceptions[d.Date] = append(c.exceptions[d.Date], s)
	}
	switch c.unknownZone {
	case "", UnknownSkip:
		c.unknownZone = UnknownSkip
	case UnknownDefaultZone:
		loc, err := time.LoadLocation(w.GetDefaultZone())
		if err != nil || w.GetDefaultZone() == "" {
			return nil, fmt.Errorf("default_zone: %q is not an IANA time zone", w.GetDefaultZone())
		}
		c.defaultZone = loc
	default:
		return nil, fmt.Errorf("unknown_zone: %q must be %q or %q", w.GetUnknownZone(), UnknownSkip, UnknownDefaultZone)
	}
	for d := range c.weekly {
		slices.SortFunc(c.weekly[d], func(a, b span) int { return a.open - b.open })
	}
	for k := range c.exceptions {
		slices.SortFunc(c.exceptions[k], func(a, b span) int { return a.open - b.open })
	}
	return c, nil
}

func spanOf(open, close uint32) (span, error) {
	if open > 1440 || close > 1440 || close < open {
		return span{}, fmt.Errorf("span %s-%s: open and close must be 00:00..24:00 with close not before open", FormatMinute(open), FormatMinute(close))
	}
	return span{int(open), int(close)}, nil
}

// ZoneFor returns the zones of a callee under w's policy: zones (from
// Zones) when known, else the default zone, else nil (policy skip).
func (w *Window) ZoneFor(zones []*time.Location) []*time.Location {
	if len(zones) > 0 {
		return zones
	}
	if w.defaultZone != nil {
		return []*time.Location{w.defaultZone}
	}
	return nil
}

// spans returns the open spans of the local date of t.
func (w *Window) spans(y int, m time.Month, d int, wd time.Weekday) []span {
	if s, ok := w.exceptions[fmt.Sprintf("%04d-%02d-%02d", y, m, d)]; ok {
		return s
	}
	return w.weekly[wd]
}

// nextOpenIn is the earliest instant at or after t that is open in loc,
// and the end of that open stretch (one span; an adjacent span continues
// it only through the next call).
func (w *Window) nextOpenIn(t time.Time, loc *time.Location) (time.Time, bool) {
	lt := t.In(loc)
	y, m, d := lt.Date()
	for i := 0; i < int(horizon/(24*time.Hour)); i++ {
		day := time.Date(y, m, d+i, 0, 0, 0, 0, loc)
		dy, dm, dd := day.Date()
		for _, s := range w.spans(dy, dm, dd, day.Weekday()) {
			if s.open == s.close {
				continue
			}
			start := wallTime(dy, dm, dd, s.open, loc)
			end := wallTime(dy, dm, dd, s.close, loc)
			if !t.Before(end) {
				continue
			}
			if t.Before(start) {
				return start, true
			}
			return t, true
		}
	}
	return time.Time{}, false
}

// wallTime is the instant of minute m after local midnight of a date. A
// wall time that a DST change skips is moved forward by the gap (02:30 on
// a spring-forward day is 03:30), as java.time does; time.Date alone
// would move it back. A repeated wall time (fall back) is its first
// occurrence.
func wallTime(y int, mo time.Month, d, m int, loc *time.Location) time.Time {
	t := time.Date(y, mo, d, 0, m, 0, 0, loc)
	lt := t.In(loc)
	got := lt.Hour()*60 + lt.Minute()
	if ly, lm, ld := lt.Date(); ly != y || lm != mo || ld != d {
		if lt.Before(time.Date(y, mo, d, 12, 0, 0, 0, loc)) {
			got -= 1440 // normalised back into the day before
		} else {
			got += 1440
		}
	}
	if got < m {
		t = t.Add(time.Duration(m-got) * time.Minute)
	}
	return t
}

// NextOpen returns the earliest instant at or after t at which w is open
// in every zone (t itself when open now), or false when it does not open
// within 400 days.
func (w *Window) NextOpen(t time.Time, zones []*time.Location) (time.Time, bool) {
	if len(zones) == 0 {
		return time.Time{}, false
	}
	c := t
	for range 10_000 {
		moved := false
		for _, loc := range zones {
			n, ok := w.nextOpenIn(c, loc)
			if !ok || n.Sub(t) > horizon {
				return time.Time{}, false
			}
			if n.After(c) {
				c, moved = n, true
			}
		}
		if !moved {
			return c, true
		}
	}
	return time.Time{}, false
}

// ErrUnknownZone is returned by ParseZone for a name the IANA database
// does not have.
var ErrUnknownZone = errors.New("not an IANA time zone")

// ParseZone loads an IANA zone name ("America/Chicago"); "" is an error.
func ParseZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("%q: %w", name, ErrUnknownZone)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", name, ErrUnknownZone)
	}
	return loc, nil
}

// ParseMinute parses "HH:MM" (00:00..24:00) into minutes after midnight.
func ParseMinute(s string) (uint32, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	// Digits only: strconv.Atoi also takes a sign ("00:+0").
	if !digits(h) || !digits(m) {
		return 0, fmt.Errorf("%q is not a time 00:00..24:00", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("%q is not a time 00:00..24:00", s)
	}
	return uint32(hh*60 + mm), nil
}

// digits reports whether s is ASCII digits only.
func digits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FormatMinute formats minutes after midnight as "HH:MM".
func FormatMinute(m uint32) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseDays parses "mon".."sun", "weekdays", "weekends" or "daily" into
// weekdays.
func ParseDays(s string) ([]uint32, error) {
	switch strings.ToLower(s) {
	case "daily":
		return []uint32{0, 1, 2, 3, 4, 5, 6}, nil
	case "weekdays":
		return []uint32{1, 2, 3, 4, 5}, nil
	case "weekends":
		return []uint32{0, 6}, nil
	}
	if i := slices.Index(dayNames, strings.ToLower(s)); i >= 0 {
		return []uint32{uint32(i)}, nil
	}
	return nil, fmt.Errorf("%q must be mon..sun, weekdays, weekends or daily", s)
}

// DayName is the short name of a weekday ("sun".."sat").
func DayName(d uint32) string {
	if int(d) < len(dayNames) {
		return dayNames[d]
	}
	return strconv.Itoa(int(d))
}
