package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// Link types (pcap LINKTYPE_*) the reader takes. tcpdump on Linux's lo
// writes Ethernet (a zeroed 14-byte header); the others are what `-i any`,
// a BSD loopback or a raw-IP capture would write.
const (
	linkNull      = 0
	linkEthernet  = 1
	linkRaw       = 101
	linkLoop      = 108
	linkLinuxSLL  = 113
	linkLinuxSLL2 = 276
)

// maxRecord bounds one record: tcpdump's -s 0 is 262,144 bytes, so a larger
// one is a corrupt file, not a packet.
const maxRecord = 1 << 20

// errPartial: the file ends inside a record (tcpdump is still writing it).
var errPartial = errors.New("pcap: the file ends inside a record")

// pcapReader reads a pcap file (not pcapng), either byte order, micro- or
// nanosecond stamps.
type pcapReader struct {
	r     *bufio.Reader
	order binary.ByteOrder
	nano  bool
	link  uint32
	hdr   [16]byte
	buf   []byte
}

func newPcapReader(r io.Reader) (*pcapReader, error) {
	p := &pcapReader{r: bufio.NewReaderSize(r, 1<<16)}
	var h [24]byte
	if _, err := io.ReadFull(p.r, h[:]); err != nil {
		return nil, fmt.Errorf("pcap file header: %w", err)
	}
	switch m := binary.LittleEndian.Uint32(h[:4]); m {
	case 0xa1b2c3d4:
		p.order = binary.LittleEndian
	case 0xa1b23c4d:
		p.order, p.nano = binary.LittleEndian, true
	case 0xd4c3b2a1:
		p.order = binary.BigEndian
	case 0x4d3cb2a1:
		p.order, p.nano = binary.BigEndian, true
	case 0x0a0d0d0a:
		return nil, errors.New("pcap: pcapng is not supported (tcpdump -w writes pcap)")
	default:
		return nil, fmt.Errorf("pcap: not a pcap file (magic %#08x)", m)
	}
	// The top bits of the link type field carry the FCS length.
	p.link = p.order.Uint32(h[20:24]) & 0x0fffffff
	switch p.link {
	case linkNull, linkEthernet, linkRaw, linkLoop, linkLinuxSLL, linkLinuxSLL2:
	default:
		return nil, fmt.Errorf("pcap: link type %d is not supported", p.link)
	}
	return p, nil
}

// next reads one record: its capture time (Unix ns), its bytes (valid
// until the next call) and whether the snap length cut the packet. It
// answers io.EOF at a clean end, errPartial inside a record.
func (p *pcapReader) next() (at int64, data []byte, cut bool, err error) {
	if _, err := io.ReadFull(p.r, p.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, false, errPartial
		}
		return 0, nil, false, err
	}
	sec, frac := p.order.Uint32(p.hdr[0:4]), p.order.Uint32(p.hdr[4:8])
	incl, orig := p.order.Uint32(p.hdr[8:12]), p.order.Uint32(p.hdr[12:16])
	if incl > maxRecord {
		return 0, nil, false, fmt.Errorf("pcap: a record of %d bytes: corrupt file", incl)
	}
	if cap(p.buf) < int(incl) {
		p.buf = make([]byte, incl)
	}
	p.buf = p.buf[:incl]
	if _, err := io.ReadFull(p.r, p.buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return 0, nil, false, errPartial
		}
		return 0, nil, false, err
	}
	return stamp(sec, frac, p.nano), p.buf, orig > incl, nil
}

// stamp is a record's time in Unix ns.
func stamp(sec, frac uint32, nano bool) int64 {
	if !nano {
		return int64(sec)*1e9 + int64(frac)*1e3
	}
	return int64(sec)*1e9 + int64(frac)
}

// segment is one TCP segment of a captured packet.
type segment struct {
	src, dst      netip.AddrPort
	seq           uint32
	syn, fin, rst bool
	payload       []byte
}

// parseSegment finds the TCP segment in a captured frame of link type
// link. ok is false for anything else (not IP, not TCP); err for a TCP
// packet that cannot be read whole (cut by the snap length, fragmented,
// malformed), since its bytes are then missing from the stream.
func parseSegment(link uint32, b []byte, cut bool) (s segment, ok bool, err error) {
	var proto uint16 // an EtherType
	switch link {
	case linkEthernet:
		if len(b) < 14 {
			return s, false, nil
		}
		proto, b = binary.BigEndian.Uint16(b[12:]), b[14:]
		for proto == 0x8100 || proto == 0x88a8 { // VLAN tags
			if len(b) < 4 {
				return s, false, nil
			}
			proto, b = binary.BigEndian.Uint16(b[2:]), b[4:]
		}
	case linkNull, linkLoop:
		// The address family: host byte order for NULL, network for LOOP.
		if len(b) < 4 {
			return s, false, nil
		}
		fam := binary.BigEndian.Uint32(b)
		if link == linkNull && fam > 0xffff {
			fam = binary.LittleEndian.Uint32(b)
		}
		switch fam {
		case 2:
			proto = 0x0800
		case 10, 24, 28, 30: // AF_INET6 on Linux and the BSDs
			proto = 0x86dd
		}
		b = b[4:]
	case linkRaw:
		if len(b) > 0 {
			switch b[0] >> 4 {
			case 4:
				proto = 0x0800
			case 6:
				proto = 0x86dd
			}
		}
	case linkLinuxSLL:
		if len(b) < 16 {
			return s, false, nil
		}
		proto, b = binary.BigEndian.Uint16(b[14:]), b[16:]
	case linkLinuxSLL2:
		if len(b) < 20 {
			return s, false, nil
		}
		proto, b = binary.BigEndian.Uint16(b[0:]), b[20:]
	}
	var src, dst netip.Addr
	switch proto {
	case 0x0800:
		if len(b) < 20 || b[0]>>4 != 4 {
			return s, false, nil
		}
		ihl := int(b[0]&0x0f) * 4
		if b[9] != 6 {
			return s, false, nil
		}
		total := int(binary.BigEndian.Uint16(b[2:]))
		if total == 0 && !cut { // a GSO/BIG TCP packet: the kernel leaves it 0
			total = len(b)
		}
		switch {
		case ihl < 20 || total < ihl:
			return s, false, errors.New("malformed IPv4 header")
		case total > len(b) || cut:
			return s, false, errors.New("IPv4 packet cut by the snap length")
		case binary.BigEndian.Uint16(b[6:])&0x3fff != 0:
			return s, false, errors.New("IPv4 fragment")
		}
		src, dst = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
		b = b[ihl:total]
	case 0x86dd:
		if len(b) < 40 || b[0]>>4 != 6 {
			return s, false, nil
		}
		n, next := int(binary.BigEndian.Uint16(b[4:])), b[6]
		src, dst = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
		b = b[40:]
		if n == 0 && !cut { // a jumbogram (BIG TCP)
			n = len(b)
		}
		truncated := cut || n > len(b)
		b = b[:min(n, len(b))]
		for next != 6 {
			switch next {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if len(b) < 8 || len(b) < (int(b[1])+1)*8 {
					return s, false, errors.New("malformed IPv6 extension header")
				}
				next, b = b[0], b[(int(b[1])+1)*8:]
			case 44:
				return s, false, errors.New("IPv6 fragment")
			default:
				return s, false, nil
			}
		}
		if truncated {
			return s, false, errors.New("IPv6 packet cut by the snap length")
		}
	default:
		return s, false, nil
	}
	if len(b) < 20 {
		return s, false, errors.New("malformed TCP header")
	}
	off := int(b[12]>>4) * 4
	if off < 20 || off > len(b) {
		return s, false, errors.New("malformed TCP header")
	}
	flags := b[13]
	s = segment{
		src: netip.AddrPortFrom(src, binary.BigEndian.Uint16(b[0:])), dst: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(b[2:])),
		seq: binary.BigEndian.Uint32(b[4:]), fin: flags&0x01 != 0, syn: flags&0x02 != 0, rst: flags&0x04 != 0,
		payload: b[off:],
	}
	return s, true, nil
}
