package dhcp

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// BenchmarkOfferWithLeases is the server's work for one DISCOVER from a new client
// (what scripts/bench/40-netboot.sh's perfdhcp sends), from the bytes received to
// the bytes sent, while 5000 clients hold leases in a range of 51 000 addresses, the
// shape of that bench. Run with -cpuprofile to see where an offer's time goes, with
// -memprofile for its allocations.
func BenchmarkOfferWithLeases(b *testing.B) {
	ctx := context.Background()
	h, err := NewHandler(ctx, Options{Mode: ModeFull, ServerIP: netip.MustParseAddr("10.79.0.1"), Netmask: net.CIDRMask(16, 32),
		RangeFirst: netip.MustParseAddr("10.79.1.0"), RangeLast: netip.MustParseAddr("10.79.200.255")})
	if err != nil {
		b.Fatal(err)
	}
	sid := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 79, 0, 1)))
	mac := func(i int) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)} }
	for i := range 5000 {
		offer, _ := h.Reply(ctx, request(b, mac(i), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover)))
		ack, _ := h.Reply(ctx, request(b, mac(i), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), sid,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))))
		if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
			b.Fatalf("client %d: %v", i, ack)
		}
	}
	reqs := make([][]byte, 10000) // new clients; their offers stay held (MaxOffers is 25 600)
	for i := range reqs {
		reqs[i] = request(b, mac(100000+i), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover)).ToBytes()
	}
	in, out := new(inbox), make([]byte, 0, 1500) // as Server.Serve and Server.send
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req, err := in.parse(reqs[i%len(reqs)])
		if err != nil {
			b.Fatal(err)
		}
		r, err := h.reply(ctx, req, false)
		if r == nil {
			b.Fatal(err)
		}
		out = appendMessage(out[:0], r)
		releaseReply(r)
	}
}
