package window

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// Zones derives the callee's zones from its number (digits with an
// optional leading '+', taken as an international number either way) with
// libphonenumber's prefix data. It returns nil when the number is not a
// valid number of its country or maps to no zone: the caller applies the
// window's unknown-zone policy. Where a prefix spans zones (Idaho's 208,
// Alaska's 907, the Dakotas) every zone is returned.
func Zones(telnum string) []*time.Location {
	n := strings.TrimPrefix(telnum, "+")
	if n == "" {
		return nil
	}
	p, err := phonenumbers.Parse("+"+n, "")
	if err != nil || !phonenumbers.IsValidNumber(p) {
		return nil
	}
	names, err := phonenumbers.GetTimezonesForNumber(p)
	if err != nil {
		return nil
	}
	if p.GetCountryCode() == 1 {
		names = withSplitAreaCode(names, n)
	}
	var out []*time.Location
	for _, name := range names {
		if loc := cachedZone(name); loc != nil {
			out = append(out, loc)
		}
	}
	return out
}

// splitAreaCodes are NANP area codes whose territory spans two zones while
// libphonenumber's prefix data maps some (or all) of their numbers to one
// of them: Florida's 850 to Central only, though Tallahassee keeps Eastern
// time. A number in one of them gets every zone of its area code, so its
// window is open only when it is open in all of them (conservative: a
// request with an explicit time_zone is dialled through its whole window).
var splitAreaCodes = map[string][]string{
	"208": {"America/Boise", "America/Los_Angeles"},            // Idaho
	"219": {"America/Chicago", "America/Indiana/Indianapolis"}, // Indiana
	"270": {"America/Chicago", "America/New_York"},             // Kentucky
	"308": {"America/Chicago", "America/Denver"},               // Nebraska
	"423": {"America/Chicago", "America/New_York"},             // Tennessee
	"541": {"America/Boise", "America/Los_Angeles"},            // Oregon
	"574": {"America/Chicago", "America/Indiana/Indianapolis"}, // Indiana
	"605": {"America/Chicago", "America/Denver"},               // South Dakota
	"606": {"America/Chicago", "America/New_York"},             // Kentucky
	"620": {"America/Chicago", "America/Denver"},               // Kansas
	"701": {"America/Denver", "America/North_Dakota/Center"},   // North Dakota
	"785": {"America/Chicago", "America/Denver"},               // Kansas
	"812": {"America/Chicago", "America/Indiana/Indianapolis"}, // Indiana
	"850": {"America/Chicago", "America/New_York"},             // Florida
	"906": {"America/Detroit", "America/Menominee"},            // Michigan
	"928": {"America/Denver", "America/Phoenix"},               // Arizona (Navajo Nation keeps DST)
}

// withSplitAreaCode adds the zones of a split area code to names (NANP
// digits with the leading 1).
func withSplitAreaCode(names []string, digits string) []string {
	if len(digits) < 4 {
		return names
	}
	extra, ok := splitAreaCodes[digits[1:4]]
	if !ok {
		return names
	}
	out := slices.Clone(names)
	for _, z := range extra {
		if !slices.Contains(out, z) {
			out = append(out, z)
		}
	}
	slices.Sort(out)
	return out
}

// zoneCache holds loaded zones: time.LoadLocation parses the embedded
// database on every call.
var zoneCache sync.Map // name → *time.Location (nil: not a zone)

func cachedZone(name string) *time.Location {
	if v, ok := zoneCache.Load(name); ok {
		loc, _ := v.(*time.Location)
		return loc
	}
	loc, err := ParseZone(name)
	if err != nil {
		loc = nil
	}
	zoneCache.Store(name, loc)
	return loc
}

// CalleeZones is the zones of a request: its explicit time zone when set
// (the API validated it), else those derived from its number.
func CalleeZones(telnum, timeZone string) []*time.Location {
	if timeZone != "" {
		if loc := cachedZone(timeZone); loc != nil {
			return []*time.Location{loc}
		}
		return nil
	}
	return Zones(telnum)
}
