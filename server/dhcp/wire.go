package dhcp

import (
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// The DHCP server's wire form of a message: inbox.parse and appendMessage read and
// write exactly what dhcpv4.FromBytes and (*dhcpv4.DHCPv4).ToBytes do (FuzzWire
// holds them to it), with fewer allocations. Per DHCP message the library's pair
// allocated 28 times and about 2 KB (BenchmarkWire), which made the collector run
// about once a second under a load of 500 exchanges a second, and its cycles showed
// in the offers' tail (docs/netboot.md).

// Offsets in a BOOTP/DHCP message (RFC 2131 §2).
const (
	wireChaddr  = 28
	wireSname   = 44
	wireFile    = 108
	wireCookie  = 236
	wireOptions = 240
	bootpMinLen = 300 // RFC 951: some relays drop shorter messages; ToBytes pads to it
)

var magicCookie = [4]byte{99, 130, 83, 99}

// errNoEnd is for options without an End option (FromBytes: io.ErrUnexpectedEOF).
var errNoEnd = errors.New("malformed DHCP packet: options have no End (255)")

// inbox holds a request message that parse fills again and again: the read loop
// parses each request into the same inbox while it answers them itself, and
// takes a new one when a request goes to a goroutine of its own. FromBytes
// allocated the message, each address and each option value separately; an inbox
// that has held a message as large allocates nothing.
type inbox struct {
	m   dhcpv4.DHCPv4
	raw []byte // a copy of the message's bytes, where its addresses and option values point
}

// parse decodes q into the inbox's message as dhcpv4.FromBytes does — the same
// fields, the same options (a repeated option concatenated, RFC 3396; a zero-length
// one present with a nil value), and an error where FromBytes gives one (shorter
// than 240 bytes, a wrong magic cookie, an option past the end, options without an
// End option; no options at all are no error) — and returns it. The message the
// inbox held before is gone, and with it everything that pointed into it; after an
// error the inbox holds no message.
func (in *inbox) parse(q []byte) (*dhcpv4.DHCPv4, error) {
	if len(q) < wireOptions {
		return nil, fmt.Errorf("malformed DHCP packet: %d bytes, want at least %d", len(q), wireOptions)
	}
	if [4]byte(q[wireCookie:wireOptions]) != magicCookie {
		return nil, fmt.Errorf("malformed DHCP packet: got magic cookie %v, want %v", q[wireCookie:wireOptions], magicCookie[:])
	}
	in.raw = append(in.raw[:0], q...)
	c := in.raw
	opts := in.m.Options
	if opts == nil {
		opts = make(dhcpv4.Options)
	}
	clear(opts)
	hlen := min(int(c[2]), 16)
	in.m = dhcpv4.DHCPv4{
		OpCode:         dhcpv4.OpcodeType(c[0]),
		HWType:         iana.HWType(c[1]),
		HopCount:       c[3],
		TransactionID:  dhcpv4.TransactionID(c[4:8]),
		NumSeconds:     uint16(c[8])<<8 | uint16(c[9]),
		Flags:          uint16(c[10])<<8 | uint16(c[11]),
		ClientIPAddr:   net.IP(c[12:16:16]),
		YourIPAddr:     net.IP(c[16:20:20]),
		ServerIPAddr:   net.IP(c[20:24:24]),
		GatewayIPAddr:  net.IP(c[24:28:28]),
		ClientHWAddr:   net.HardwareAddr(c[wireChaddr : wireChaddr+hlen : wireChaddr+hlen]),
		ServerHostName: cString(c[wireSname:wireFile]),
		BootFileName:   cString(c[wireFile:wireCookie]),
		Options:        opts,
	}
	if len(c) == wireOptions {
		return &in.m, nil
	}
	for o := c[wireOptions:]; len(o) > 0; {
		code := o[0]
		switch {
		case code == 0:
			o = o[1:]
			continue
		case code == 255:
			return &in.m, nil
		case len(o) < 2:
			return nil, errNoEnd // FromBytes reads a missing length as 0 and then finds no End
		}
		n := int(o[1])
		if 2+n > len(o) {
			return nil, fmt.Errorf("malformed DHCP packet: option %d at offset %d is %d bytes long, %d are left", code, len(c)-len(o), n, len(o)-2)
		}
		v := o[2 : 2+n : 2+n] // capped: an append to it copies, never writes over the next option
		o = o[2+n:]
		if old, seen := opts[code]; seen {
			opts[code] = append(old, v...) // RFC 3396: a new slice, as FromBytes makes
		} else if n == 0 {
			opts[code] = nil // FromBytes appends nothing to nil
		} else {
			opts[code] = v
		}
	}
	return nil, errNoEnd
}

// cString is b up to its first NUL byte, as FromBytes reads sname and file.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// appendMessage appends m in wire form to b: the bytes ToBytes returns (options in
// code order with 82 last, RFC 3046 §2.1; an option over 255 bytes split, RFC 3396;
// End; padded to 300 bytes), without its buffer growth and its sorted slice of
// codes. An address that is not IPv4 is written as 0.0.0.0 (ToBytes panics on it).
func appendMessage(b []byte, m *dhcpv4.DHCPv4) []byte {
	start := len(b)
	b = append(b, byte(m.OpCode), byte(m.HWType), byte(len(m.ClientHWAddr)), m.HopCount)
	b = append(b, m.TransactionID[:]...)
	b = append(b, byte(m.NumSeconds>>8), byte(m.NumSeconds), byte(m.Flags>>8), byte(m.Flags))
	for _, ip := range []net.IP{m.ClientIPAddr, m.YourIPAddr, m.ServerIPAddr, m.GatewayIPAddr} {
		b = append(b, ip4Bytes(ip)...)
	}
	b = appendPadded(b, m.ClientHWAddr, 16, 16)
	b = appendPadded(b, []byte(m.ServerHostName), 63, 64)
	b = appendPadded(b, []byte(m.BootFileName), 127, 128)
	b = append(b, magicCookie[:]...)
	var codes [256]uint8
	n := 0
	for c := range m.Options {
		if c != 0 && c != 255 && c != 82 {
			codes[n] = c
			n++
		}
	}
	slices.Sort(codes[:n])
	if _, ok := m.Options[82]; ok {
		codes[n] = 82
		n++
	}
	for _, c := range codes[:n] {
		v := m.Options[c]
		if len(v) == 0 {
			b = append(b, c, 0)
		}
		for len(v) > 0 {
			k := min(len(v), 255)
			b = append(b, c, byte(k))
			b = append(b, v[:k]...)
			v = v[k:]
		}
	}
	b = append(b, 255)
	for len(b)-start < bootpMinLen {
		b = append(b, 0)
	}
	return b
}

// ip4Bytes is ip's four bytes, or zeros when ip is nil or not IPv4.
func ip4Bytes(ip net.IP) []byte {
	if v := ip.To4(); v != nil {
		return v
	}
	return net.IPv4zero.To4()
}

// appendPadded appends at most max bytes of v, then zeros up to size bytes in all.
func appendPadded(b, v []byte, maxLen, size int) []byte {
	v = v[:min(len(v), maxLen)]
	b = append(b, v...)
	for range size - len(v) {
		b = append(b, 0)
	}
	return b
}
