package floataddr

import (
	"net"
	"testing"
)

// TestRefuses: what is not an IPv4 address, or names no interface, is
// refused before anything changes. Only cases that cannot touch the
// host's interfaces belong here (the tests may run as root): the add and
// remove themselves are exercised by the chaos suite's SIP variant,
// inside containers.
func TestRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    Addr
	}{
		{"IPv6", Addr{IP: net.ParseIP("2001:db8::1"), Dev: Auto}},
		{"no such interface", Addr{IP: net.ParseIP("192.0.2.77"), Dev: "nosuchdev0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.a.Add()
			if err == nil {
				t.Fatal("added")
			}
		})
	}
}
