//go:build linux

package floataddr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// link resolves the interface, and the prefix length of its subnet that
// holds the address (32 when named explicitly and not on a subnet of it).
func (a Addr) link() (netlink.Link, int, error) {
	ip4 := a.IP.To4()
	if ip4 == nil {
		return nil, 0, fmt.Errorf("floataddr: %s is not IPv4", a.IP)
	}
	var links []netlink.Link
	if a.Dev == Auto || a.Dev == "" {
		all, err := netlink.LinkList()
		if err != nil {
			return nil, 0, fmt.Errorf("floataddr: list interfaces: %w", err)
		}
		links = all
	} else {
		l, err := netlink.LinkByName(a.Dev)
		if err != nil {
			return nil, 0, fmt.Errorf("floataddr: interface %s: %w", a.Dev, err)
		}
		links = []netlink.Link{l}
	}
	for _, l := range links {
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			continue
		}
		for _, ad := range addrs {
			ones, _ := ad.Mask.Size()
			if ones < 32 && ad.IPNet.Contains(ip4) {
				return l, ones, nil
			}
		}
	}
	if len(links) == 1 && a.Dev != Auto && a.Dev != "" {
		return links[0], 32, nil
	}
	return nil, 0, ErrNoInterface
}

// Add adds the address (with its subnet's prefix, so the kernel answers
// ARP for it on that segment) and sends a gratuitous ARP. Adding an
// address already held is not an error.
func (a Addr) Add() error {
	l, ones, err := a.link()
	if err != nil {
		return err
	}
	ip4 := a.IP.To4()
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip4, Mask: net.CIDRMask(ones, 32)}}
	if ones < 32 {
		// A secondary address on the subnet: no second subnet route.
		addr.Flags = unix.IFA_F_NOPREFIXROUTE
	}
	if err := netlink.AddrAdd(l, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("floataddr: add %s to %s: %w", ip4, l.Attrs().Name, err)
	}
	if err := announce(l, ip4); err != nil {
		return fmt.Errorf("floataddr: gratuitous ARP for %s: %w", ip4, err)
	}
	return nil
}

// Del removes the address; removing an address not held is not an error.
func (a Addr) Del() error {
	l, ones, err := a.link()
	if err != nil {
		return err
	}
	ip4 := a.IP.To4()
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip4, Mask: net.CIDRMask(ones, 32)}}
	if err := netlink.AddrDel(l, addr); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("floataddr: remove %s from %s: %w", ip4, l.Attrs().Name, err)
	}
	return nil
}

// announce broadcasts a gratuitous ARP request (sender and target both
// the address), which updates every neighbour's cache entry for it.
func announce(l netlink.Link, ip4 net.IP) error {
	mac := l.Attrs().HardwareAddr
	if len(mac) != 6 {
		return nil // not Ethernet (loopback): nothing to announce
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	bcast := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	frame := make([]byte, 0, 42)
	frame = append(frame, bcast...)
	frame = append(frame, mac...)
	frame = binary.BigEndian.AppendUint16(frame, unix.ETH_P_ARP)
	frame = binary.BigEndian.AppendUint16(frame, 1)      // hardware: Ethernet
	frame = binary.BigEndian.AppendUint16(frame, 0x0800) // protocol: IPv4
	frame = append(frame, 6, 4)
	frame = binary.BigEndian.AppendUint16(frame, 1) // request
	frame = append(frame, mac...)
	frame = append(frame, ip4...)
	frame = append(frame, 0, 0, 0, 0, 0, 0)
	frame = append(frame, ip4...)
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: l.Attrs().Index, Halen: 6}
	copy(to.Addr[:], bcast)
	return unix.Sendto(fd, frame, 0, to)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
