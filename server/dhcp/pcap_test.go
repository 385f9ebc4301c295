package dhcp

import (
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/rpi-deploy/rpi-deploy/server/dhcp/dhcptest"
)

// pcapPackets returns the UDP payloads of an Ethernet/IPv4 pcap file.
func pcapPackets(t testing.TB, path string) [][]byte {
	t.Helper()
	pkts, err := dhcptest.ReadPcap(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(pkts))
	for i, p := range pkts {
		out[i] = p.Payload
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
