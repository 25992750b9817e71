package window

import (
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
	var out []*time.Location
	for _, name := range names {
		if loc := cachedZone(name); loc != nil {
			out = append(out, loc)
		}
	}
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
