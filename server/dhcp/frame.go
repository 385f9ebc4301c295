package dhcp

import (
	"encoding/binary"
	"net"
)

// frameHeaders is the length of the Ethernet II, IPv4 and UDP headers of a frame.
const frameHeaders = 14 + 20 + 8

// udpFrame makes f an Ethernet II + IPv4 + UDP frame: it writes the headers into
// f[:frameHeaders], around the payload in the rest of f, with both checksums, the
// way a kernel would send it. TOS is CS6 (0xc0) like dnsmasq's replies.
func udpFrame(f []byte, dstMAC, srcMAC net.HardwareAddr, src, dst net.IP, sport, dport uint16, id uint16) {
	const ethLen, ipLen, udpLen = 14, 20, 8
	payload := len(f) - frameHeaders
	clear(f[:frameHeaders])
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:14], 0x0800)

	ip := f[ethLen : ethLen+ipLen]
	ip[0] = 0x45
	ip[1] = 0xc0
	binary.BigEndian.PutUint16(ip[2:4], uint16(ipLen+udpLen+payload))
	binary.BigEndian.PutUint16(ip[4:6], id)
	ip[8] = 64 // TTL
	ip[9] = 17 // UDP
	copy(ip[12:16], src.To4())
	copy(ip[16:20], dst.To4())
	binary.BigEndian.PutUint16(ip[10:12], checksum(ip, 0))

	udp := f[ethLen+ipLen:]
	binary.BigEndian.PutUint16(udp[0:2], sport)
	binary.BigEndian.PutUint16(udp[2:4], dport)
	binary.BigEndian.PutUint16(udp[4:6], uint16(udpLen+payload))
	// Pseudo-header: src, dst, zero, protocol, UDP length.
	var sum uint32
	for i := 12; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i : i+2]))
	}
	sum += 17 + uint32(udpLen+payload)
	c := checksum(udp, sum)
	if c == 0 {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(udp[6:8], c)
}

// checksum is the Internet checksum (RFC 1071) of b, starting from the partial sum.
func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i : i+2]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
