package dhcp

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// realMessages are the DHCP messages of real programs: a DISCOVER with a real Pi 4's
// option 97 and dnsmasq's OFFER (dnsmasq-pi-exchange.pcap), dhclient's, udhcpc's and
// perfdhcp's exchanges with dnsmasq (clients-dnsmasq.pcap).
func realMessages(t testing.TB) [][]byte {
	t.Helper()
	return append(pcapPackets(t, "testdata/dnsmasq-pi-exchange.pcap"), pcapPackets(t, "testdata/clients-dnsmasq.pcap")...)
}

// FuzzWire: an inbox reads every input as dhcpv4.FromBytes does (an error for the
// same inputs, the same message otherwise), a new one and one that held other
// messages before, and appendMessage writes what ToBytes writes.
func FuzzWire(f *testing.F) {
	for _, m := range realMessages(f) {
		f.Add(m)
		for _, cut := range []int{0, 1, 235, 239, 240, len(m) - 1} {
			f.Add(m[:min(cut, len(m))])
		}
		bad := bytes.Clone(m)
		bad[wireCookie] ^= 1
		f.Add(bad)
		// Options the real messages lack: a repeated option (RFC 3396), a
		// zero-length one, option 82 before others, an option running past the end.
		o := bytes.Clone(m[:wireOptions])
		o = append(o, 12, 3, 'k', 'x', 'p', 82, 4, 1, 2, 'a', 'b', 0, 12, 2, '-', '1', 77, 0, 53, 1, 1)
		f.Add(append(bytes.Clone(o), 255))
		f.Add(append(bytes.Clone(o), 60, 40, 'x'))
		f.Add(append(bytes.Clone(o), 60))
	}
	used := new(inbox) // as the read loop's: it held the inputs before this one
	f.Fuzz(func(t *testing.T, b []byte) {
		want, werr := dhcpv4.FromBytes(b)
		for _, in := range []*inbox{new(inbox), used} {
			got, gerr := in.parse(b)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("FromBytes error %v, parse error %v", werr, gerr)
			}
			if werr == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("parse:\n%v\nFromBytes:\n%v", got.Summary(), want.Summary())
			}
		}
		if werr == nil {
			checkAppend(t, want)
		}
	})
}

// checkAppend fails t unless appendMessage writes m as ToBytes does, also after
// bytes already in the buffer.
func checkAppend(t *testing.T, m *dhcpv4.DHCPv4) {
	t.Helper()
	want := m.ToBytes()
	if got := appendMessage(nil, m); !bytes.Equal(got, want) {
		t.Fatalf("appendMessage:\n% x\nToBytes:\n% x", got, want)
	}
	if got := appendMessage([]byte("prefix"), m); string(got[:6]) != "prefix" || !bytes.Equal(got[6:], want) {
		t.Fatalf("appendMessage after a prefix:\n% x", got)
	}
}

// TestWireRealMessages: each real message read, written and read again is the same
// message (the options in code order, padded to 300 bytes: not always the bytes sent).
func TestWireRealMessages(t *testing.T) {
	for i, b := range realMessages(t) {
		m, err := new(inbox).parse(b)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		out := appendMessage(nil, m)
		again, err := new(inbox).parse(out)
		if err != nil || !reflect.DeepEqual(again, m) || len(out) < max(len(b), bootpMinLen) {
			t.Fatalf("message %d (%v from %v): %d bytes written back, read as %v (%v)", i, m.MessageType(), m.ClientHWAddr, len(out), again, err)
		}
	}
}

// BenchmarkWire: a real Pi DISCOVER read and dnsmasq's OFFER written, by the
// library and by ours.
func BenchmarkWire(b *testing.B) {
	p := pcapPackets(b, "testdata/dnsmasq-pi-exchange.pcap")
	offer, _ := dhcpv4.FromBytes(p[1])
	b.Run("dhcpv4", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := dhcpv4.FromBytes(p[0]); err != nil {
				b.Fatal(err)
			}
			_ = offer.ToBytes()
		}
	})
	buf := make([]byte, 0, 1500)
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := new(inbox).parse(p[0]); err != nil {
				b.Fatal(err)
			}
			buf = appendMessage(buf[:0], offer)
		}
	})
}
