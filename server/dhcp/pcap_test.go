package dhcp

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// pcapPackets returns the UDP payloads of an Ethernet/IPv4 pcap file.
func pcapPackets(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 {
		t.Fatalf("%s: not a little-endian pcap file", path)
	}
	var out [][]byte
	for off := 24; off+16 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		frame := b[off+16 : off+16+n]
		off += 16 + n
		ihl := int(frame[14]&0x0f) * 4
		out = append(out, frame[14+ihl+8:])
	}
	return out
}

func dnsmasqExchange(t testing.TB) (discover, offer *dhcpv4.DHCPv4) {
	t.Helper()
	p := pcapPackets(t, "testdata/dnsmasq-pi-exchange.pcap")
	if len(p) != 2 {
		t.Fatalf("pcap: %d packets, want 2", len(p))
	}
	d, err := dhcpv4.FromBytes(p[0])
	if err != nil {
		t.Fatal(err)
	}
	o, err := dhcpv4.FromBytes(p[1])
	if err != nil {
		t.Fatal(err)
	}
	return d, o
}

func dnsmasqOffer(t testing.TB) *dhcpv4.DHCPv4 { _, o := dnsmasqExchange(t); return o }
