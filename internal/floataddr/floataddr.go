// Package floataddr moves a floating IPv4 address between hosts: the
// holder adds it to one of its interfaces and announces it with a
// gratuitous ARP, so that neighbours on the segment (a Docker bridge, a
// LAN) send it to the new holder at once instead of to the MAC they
// cached for the old one. Linux only (netlink and a packet socket); it
// needs CAP_NET_ADMIN and CAP_NET_RAW.
package floataddr

import (
	"errors"
	"net"
)

// ErrNoInterface: no interface has an address on the floating address's
// subnet (with Auto).
var ErrNoInterface = errors.New("floataddr: no interface on the address's subnet")

// Auto as the interface name picks the interface that already has an
// address on the floating address's subnet.
const Auto = "auto"

// Addr is one floating address on one interface.
type Addr struct {
	IP  net.IP
	Dev string // interface name, or Auto
}
