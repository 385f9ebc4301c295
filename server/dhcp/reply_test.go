package dhcp

import (
	"bytes"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestNewReplyIsTheLibrarys: newReply builds, byte for byte, what
// dhcpv4.NewReplyFromRequest builds (it only skips the random xid that the library
// overwrites), for the captured DISCOVER of a dnsmasq exchange and for variants of it
// through a relay (giaddr, option 82), with a client identifier (61) and with the
// broadcast flag, for every message type the server sends.
func TestNewReplyIsTheLibrarys(t *testing.T) {
	base, _ := dnsmasqExchange(t)
	variants := map[string]func(*dhcpv4.DHCPv4){
		"captured": func(*dhcpv4.DHCPv4) {},
		"relayed": func(d *dhcpv4.DHCPv4) {
			d.GatewayIPAddr = net.IPv4(10, 1, 2, 3)
			d.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 4, 'e', 't', 'h', '0'}))
		},
		"client-id": func(d *dhcpv4.DHCPv4) {
			d.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientIdentifier, []byte{1, 0x2c, 0xcf, 0x67, 0, 0, 1}))
		},
		"broadcast": func(d *dhcpv4.DHCPv4) { d.SetBroadcast() },
	}
	types := []dhcpv4.MessageType{dhcpv4.MessageTypeOffer, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak}
	for name, change := range variants {
		req, err := dhcpv4.FromBytes(base.ToBytes())
		if err != nil {
			t.Fatal(err)
		}
		change(req)
		for _, mt := range types {
			want, err := dhcpv4.NewReplyFromRequest(req, dhcpv4.WithMessageType(mt))
			if err != nil {
				t.Fatal(err)
			}
			if got := newReply(req, mt); !bytes.Equal(got.ToBytes(), want.ToBytes()) {
				t.Errorf("%s %s:\n got %s\nwant %s", name, mt, got.Summary(), want.Summary())
			}
		}
	}
}
