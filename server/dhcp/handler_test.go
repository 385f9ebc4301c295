package dhcp

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func testHandler(t testing.TB, mode string, store LeaseStore) *Handler {
	t.Helper()
	h, err := NewHandler(context.Background(), Options{
		Mode: mode, ServerIP: netip.MustParseAddr("10.99.0.1"), Netmask: net.CIDRMask(24, 32),
		RangeFirst: netip.MustParseAddr("10.99.0.100"), RangeLast: netip.MustParseAddr("10.99.0.199"),
		Router: netip.MustParseAddr("10.99.0.1"), LeaseTime: time.Hour, AgentURL: agentURL,
		Reservations: []Reservation{{Serial: capturedSerial, IP: netip.MustParseAddr("10.99.0.50")}},
		Leases:       store,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.now = func() time.Time { return time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC) }
	return h
}

// TestOfferLikeDnsmasq feeds the DISCOVER of the dnsmasq capture to our handler and
// compares what the Pi bootloader reads with dnsmasq's OFFER.
func TestOfferLikeDnsmasq(t *testing.T) {
	disc, want := dnsmasqExchange(t)
	if c := Classify(disc); c.Kind != KindBootloader || c.Model != "RPi4" || c.Revision != "00a03111" || c.Serial != capturedSerial {
		t.Fatalf("Classify(capture) = %+v", c)
	}
	for _, mode := range []string{ModeFull, ModeProxy} {
		t.Run(mode, func(t *testing.T) {
			got, err := testHandler(t, mode, &memLeases{}).Reply(context.Background(), disc)
			if err != nil || got == nil {
				t.Fatalf("Reply = %v, %v", got, err)
			}
			for _, code := range []dhcpv4.OptionCode{
				dhcpv4.OptionDHCPMessageType, dhcpv4.OptionServerIdentifier,
				dhcpv4.OptionClassIdentifier, dhcpv4.OptionClientMachineIdentifier,
				dhcpv4.OptionVendorSpecificInformation,
			} {
				if !bytes.Equal(got.GetOneOption(code), want.GetOneOption(code)) {
					t.Errorf("option %v: got % x, dnsmasq % x", code, got.GetOneOption(code), want.GetOneOption(code))
				}
			}
			if !bytes.Equal(got.GetOneOption(dhcpv4.OptionVendorSpecificInformation), PXEMenu) || len(PXEMenu) != 32 {
				t.Errorf("option 43 is not PXEMenu (32 bytes)")
			}
			if !got.ServerIPAddr.Equal(want.ServerIPAddr) || !bytes.Equal(got.ClientHWAddr, want.ClientHWAddr) || got.TransactionID != want.TransactionID || got.Flags != 0 {
				t.Errorf("header: siaddr %v chaddr %v xid %v flags %x; dnsmasq %v %v %v", got.ServerIPAddr, got.ClientHWAddr, got.TransactionID, got.Flags, want.ServerIPAddr, want.ClientHWAddr, want.TransactionID)
			}
			if mode == ModeFull {
				for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionSubnetMask, dhcpv4.OptionBroadcastAddress, dhcpv4.OptionRouter} {
					if !bytes.Equal(got.GetOneOption(code), want.GetOneOption(code)) {
						t.Errorf("option %v: got % x, dnsmasq % x", code, got.GetOneOption(code), want.GetOneOption(code))
					}
				}
			} else if !got.YourIPAddr.IsUnspecified() || got.GetOneOption(dhcpv4.OptionIPAddressLeaseTime) != nil {
				t.Errorf("proxy offer has yiaddr %v / a lease time", got.YourIPAddr)
			}
			goldenReply(t, "offer-"+mode+".golden", got)
		})
	}
}

func goldenReply(t *testing.T, name string, m *dhcpv4.DHCPv4) {
	t.Helper()
	p := filepath.Join("testdata", name)
	got := []byte(hex.Dump(m.ToBytes()) + m.Summary() + "\n")
	if *update {
		os.WriteFile(p, got, 0o644)
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s (-want +got):\n%s", name, d)
	}
}

func request(t testing.TB, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFullModeLeases(t *testing.T) {
	ctx := context.Background()
	store := &memLeases{}
	h := testHandler(t, ModeFull, store)
	mac := net.HardwareAddr{0x2c, 0xcf, 0x67, 0, 0, 1}
	other := net.HardwareAddr{0x2c, 0xcf, 0x67, 0, 0, 2}
	sid := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 99, 0, 1)))

	offer, _ := h.Reply(ctx, request(t, mac, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover)))
	if offer == nil || offer.YourIPAddr.String() != "10.99.0.100" {
		t.Fatalf("first offer = %v", offer)
	}
	// Another client must not get the held address.
	o2, _ := h.Reply(ctx, request(t, other, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover)))
	if o2 == nil || o2.YourIPAddr.String() != "10.99.0.101" {
		t.Fatalf("second client's offer = %v, want 10.99.0.101", o2)
	}
	// It asks for the first client's address anyway: NAK.
	nak, _ := h.Reply(ctx, request(t, other, dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), sid,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))))
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("request for a taken address = %v, want NAK", nak)
	}
	ack, _ := h.Reply(ctx, request(t, mac, dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), sid,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))))
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(offer.YourIPAddr) {
		t.Fatalf("ack = %v", ack)
	}
	if l, ok := store.get(mac.String()); !ok || l.IP.String() != "10.99.0.100" {
		t.Fatalf("stored lease = %+v %v", l, ok)
	}
	// A restarted server (new handler, same store) gives the board its address back.
	h2 := testHandler(t, ModeFull, store)
	again, _ := h2.Reply(ctx, request(t, mac, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover)))
	if again == nil || again.YourIPAddr.String() != "10.99.0.100" {
		t.Fatalf("after restart offer = %v, want 10.99.0.100", again)
	}
	// A board with a reserved serial gets its reservation (option 97 as a real Pi
	// sends it: the serial is little-endian).
	pi, _ := h2.Reply(ctx, request(t, net.HardwareAddr{0xdc, 0xa6, 0x32, 0x2e, 0xf8, 0xed},
		dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, capturedOption97(t))))
	if pi == nil || pi.YourIPAddr.String() != "10.99.0.50" {
		t.Fatalf("reserved board's offer = %v, want 10.99.0.50", pi)
	}
	if l, ok := h2.LeaseByIP(netip.MustParseAddr("10.99.0.100")); !ok || l.MAC != mac.String() {
		t.Errorf("LeaseByIP = %+v, %v", l, ok)
	}
	// A reservation written in upper case still matches.
	h3, err := NewHandler(ctx, Options{Mode: ModeFull, ServerIP: netip.MustParseAddr("10.99.0.1"), Netmask: net.CIDRMask(24, 32),
		RangeFirst: netip.MustParseAddr("10.99.0.100"), RangeLast: netip.MustParseAddr("10.99.0.199"),
		Reservations: []Reservation{{MAC: "2C:CF:67:00:00:02", IP: netip.MustParseAddr("10.99.0.60")}}})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := h3.Reply(ctx, request(t, other, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))); r == nil || r.YourIPAddr.String() != "10.99.0.60" {
		t.Errorf("MAC reservation: offer %v, want 10.99.0.60", r)
	}
	// Release frees the address.
	h2.Reply(ctx, request(t, mac, dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithClientIP(net.IPv4(10, 99, 0, 100))))
	if _, ok := store.get(mac.String()); ok {
		t.Error("lease still stored after RELEASE")
	}
	// Non-Pi PXE clients get no boot menu; other servers' REQUESTs are ignored.
	pc, _ := h2.Reply(ctx, request(t, other, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016"))))
	if pc == nil || pc.GetOneOption(dhcpv4.OptionVendorSpecificInformation) != nil {
		t.Errorf("x86 PXE client got option 43: %v", pc)
	}
	if r, _ := h2.Reply(ctx, request(t, other, dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 99, 0, 254))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 99, 0, 101))))); r != nil {
		t.Errorf("answered a REQUEST meant for another server: %v", r)
	}
}

func TestPoolExhaustion(t *testing.T) {
	h, err := NewHandler(context.Background(), Options{
		Mode: ModeFull, ServerIP: netip.MustParseAddr("10.99.0.1"), Netmask: net.CIDRMask(24, 32),
		RangeFirst: netip.MustParseAddr("10.99.0.10"), RangeLast: netip.MustParseAddr("10.99.0.11"),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Two clients take both addresses by lease (offers alone cannot fill the range:
	// at most MaxOffers are held, see TestOfferCapAndHold); the third gets nothing.
	sid := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 99, 0, 1)))
	for i := range 3 {
		mac := net.HardwareAddr{2, 0, 0, 0, 0, byte(i)}
		r, err := h.Reply(context.Background(), request(t, mac, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover)))
		if i < 2 && r == nil {
			t.Fatalf("client %d got no offer: %v", i, err)
		}
		if i == 2 {
			if r != nil || !errors.Is(err, ErrNoAddress) {
				t.Fatalf("third client: %v, %v; want no offer and ErrNoAddress", r, err)
			}
			break
		}
		ack, _ := h.Reply(context.Background(), request(t, mac, dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), sid,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(r.YourIPAddr))))
		if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
			t.Fatalf("client %d: REQUEST answered %v, want ACK", i, ack)
		}
	}
}

func TestOptionsRejected(t *testing.T) {
	base := Options{Mode: ModeFull, ServerIP: netip.MustParseAddr("10.99.0.1"), Netmask: net.CIDRMask(24, 32),
		RangeFirst: netip.MustParseAddr("10.99.0.10"), RangeLast: netip.MustParseAddr("10.99.0.20")}
	for name, mod := range map[string]func(*Options){
		"bad mode":            func(o *Options) { o.Mode = "fancy" },
		"range outside":       func(o *Options) { o.RangeLast = netip.MustParseAddr("10.99.1.20") },
		"range reversed":      func(o *Options) { o.RangeFirst, o.RangeLast = o.RangeLast, o.RangeFirst },
		"range holds server":  func(o *Options) { o.RangeFirst = netip.MustParseAddr("10.99.0.1") },
		"no netmask":          func(o *Options) { o.Netmask = nil },
		"reservation outside": func(o *Options) { o.Reservations = []Reservation{{MAC: "x", IP: netip.MustParseAddr("192.168.0.1")}} },
		"reservation bad mac": func(o *Options) { o.Reservations = []Reservation{{MAC: "x", IP: netip.MustParseAddr("10.99.0.5")}} },
		"reservation no key":  func(o *Options) { o.Reservations = []Reservation{{IP: netip.MustParseAddr("10.99.0.5")}} },
		"reservation serial": func(o *Options) {
			o.Reservations = []Reservation{{Serial: "xyz", IP: netip.MustParseAddr("10.99.0.5")}}
		},
	} {
		o := base
		mod(&o)
		if _, err := NewHandler(context.Background(), o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzReply: no request, however malformed, panics the handler, every reply the
// full-mode server makes carries our server identifier and an address of the range,
// and the Server's appendMessage writes it as ToBytes does.
func FuzzReply(f *testing.F) {
	disc, _ := dnsmasqExchange(f)
	for _, m := range realMessages(f) {
		f.Add(m)
	}
	for _, mt := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline, dhcpv4.MessageTypeInform} {
		m, _ := dhcpv4.New(dhcpv4.WithHwAddr(net.HardwareAddr{2, 0, 0, 0, 0, 9}), dhcpv4.WithMessageType(mt),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 99, 0, 150))),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier(AgentClassID)))
		f.Add(m.ToBytes())
	}
	bad := disc.ToBytes()
	bad[len(bad)-5] = 200 // an option length running past the end
	f.Add(bad)
	full := testHandler(f, ModeFull, &memLeases{})
	proxy := testHandler(f, ModeProxy, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := new(inbox).parse(b) // as the Server reads it
		if err != nil {
			return
		}
		for _, h := range []*Handler{full, proxy} {
			reply, _ := h.Reply(context.Background(), req)
			if reply == nil {
				continue
			}
			if !reply.ServerIdentifier().Equal(net.IPv4(10, 99, 0, 1)) {
				t.Fatalf("%s reply without our server identifier: %v", h.Mode(), reply.Summary())
			}
			y := addrOf(reply.YourIPAddr)
			switch {
			case h.Mode() == ModeProxy && !reply.YourIPAddr.IsUnspecified():
				t.Fatalf("proxy handed out %v", reply.YourIPAddr)
			case h.Mode() == ModeFull && reply.MessageType() == dhcpv4.MessageTypeOffer &&
				!(y.String() == "10.99.0.50" || (netip.MustParseAddr("10.99.0.100").Compare(y) <= 0 && y.Compare(netip.MustParseAddr("10.99.0.199")) <= 0)):
				t.Fatalf("offered %v outside the range", y)
			}
			if _, err := dhcpv4.FromBytes(reply.ToBytes()); err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
			checkAppend(t, reply) // the Server writes it as the library would
		}
	})
}

type brokenStore struct{ memLeases }

func (*brokenStore) PutLease(context.Context, Lease) error { return errors.New("disk full") }

// TestStoreFailureSendsNoAck: a lease that cannot be stored is not acknowledged (the
// client asks again); nothing is lost and the server keeps answering.
func TestStoreFailureSendsNoAck(t *testing.T) {
	ctx := context.Background()
	h := testHandler(t, ModeFull, &brokenStore{})
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 7}
	offer, err := h.Reply(ctx, request(t, mac, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover)))
	if err != nil || offer == nil {
		t.Fatalf("offer: %v %v", offer, err)
	}
	ack, err := h.Reply(ctx, request(t, mac, dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 99, 0, 1))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))))
	if ack != nil || err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("REQUEST with a failing store: %v, %v; want no reply and the store's error", ack, err)
	}
	if again, _ := h.Reply(ctx, request(t, mac, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))); again == nil || !again.YourIPAddr.Equal(offer.YourIPAddr) {
		t.Errorf("after the failure: offer %v, want %v again", again, offer.YourIPAddr)
	}
}

// TestPoolReusesFreedAddresses pins the pool's cursor (which spares an offer the walk
// past every lease): a new client still gets the lowest free address, one that a
// RELEASE freed below the addresses handed out last included; with none left,
// ErrNoAddress.
func TestPoolReusesFreedAddresses(t *testing.T) {
	ctx := context.Background()
	h, err := NewHandler(ctx, Options{
		Mode: ModeFull, ServerIP: netip.MustParseAddr("10.99.0.1"), Netmask: net.CIDRMask(24, 32),
		RangeFirst: netip.MustParseAddr("10.99.0.10"), RangeLast: netip.MustParseAddr("10.99.0.13"),
	})
	if err != nil {
		t.Fatal(err)
	}
	sid := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 99, 0, 1)))
	lease := func(i byte) (string, error) {
		mac := net.HardwareAddr{2, 0, 0, 0, 1, i}
		offer, err := h.Reply(ctx, request(t, mac, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover)))
		if offer == nil {
			return "", err
		}
		ack, _ := h.Reply(ctx, request(t, mac, dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), sid,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))))
		if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
			t.Fatalf("client %d: REQUEST answered %v, want ACK", i, ack)
		}
		return ack.YourIPAddr.String(), nil
	}
	var got []string
	for i := range byte(3) {
		ip, err := lease(i)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ip)
	}
	// The first client lets its address go: the next new client gets it, the one after
	// that the last free address.
	h.Reply(ctx, request(t, net.HardwareAddr{2, 0, 0, 0, 1, 0}, dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease),
		dhcpv4.WithClientIP(net.IPv4(10, 99, 0, 10))))
	for i := byte(3); i < 5; i++ {
		ip, err := lease(i)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ip)
	}
	want := []string{"10.99.0.10", "10.99.0.11", "10.99.0.12", "10.99.0.10", "10.99.0.13"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("addresses handed out (-want +got):\n%s", diff)
	}
	if ip, err := lease(5); !errors.Is(err, ErrNoAddress) {
		t.Fatalf("a sixth client in a full range got %q, %v; want ErrNoAddress", ip, err)
	}
}

// countingLeases is memLeases that counts its writes and can fail the next ones.
type countingLeases struct {
	memLeases
	puts, fail int
}

func (s *countingLeases) PutLease(ctx context.Context, l Lease) error {
	s.puts++
	if s.fail > 0 {
		s.fail--
		return errors.New("disk full")
	}
	return s.memLeases.PutLease(ctx, l)
}

// TestRenewalReusesStoredLease: a REQUEST that renews a lease unchanged within a
// quarter of the lease time of its last write is answered with what is left of the
// stored lease (options 51, 58, 59) and writes nothing; a change, an older write, a
// write that failed, or LeaseReuse negative writes (and the ACK has the full time).
func TestRenewalReusesStoredLease(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	store := &countingLeases{}
	h := testHandler(t, ModeFull, store)
	now := t0
	h.now = func() time.Time { return now }
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	renew := func(host string) *dhcpv4.DHCPv4 { // a REQUEST for 10.99.0.100 from mac
		mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 99, 0, 1))),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 99, 0, 100)))}
		if host != "" {
			mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(host)))
		}
		return request(t, mac, mods...)
	}
	ask := func(h *Handler, host string) (leaseSecs, t1, t2 uint32) {
		t.Helper()
		ack, err := h.Reply(ctx, renew(host))
		if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
			t.Fatalf("REQUEST at %v: %v, %v; want ACK", now.Sub(t0), ack, err)
		}
		secs := func(o dhcpv4.OptionCode) uint32 { return binary.BigEndian.Uint32(ack.GetOneOption(o)) }
		return secs(dhcpv4.OptionIPAddressLeaseTime), secs(dhcpv4.OptionRenewTimeValue), secs(dhcpv4.OptionRebindingTimeValue)
	}
	type step struct {
		at        time.Duration
		host      string
		lease, t1 uint32
		puts      int
	}
	for _, s := range []step{
		{at: 0, lease: 3600, t1: 1800, puts: 1},
		{at: 10 * time.Minute, lease: 3000, t1: 1500, puts: 1},              // reused: 50 min left
		{at: 10 * time.Minute, host: "kxp2-coro-001", lease: 3600, puts: 2}, // hostname changed
		{at: 24 * time.Minute, host: "kxp2-coro-001", lease: 2760, puts: 2}, // 14 min after the write: 46 min left
		{at: 26 * time.Minute, host: "kxp2-coro-001", lease: 3600, puts: 3}, // 16 min after: written again
	} {
		now = t0.Add(s.at)
		lease, t1, t2 := ask(h, s.host)
		if lease != s.lease || store.puts != s.puts || t2 != lease*7/8 || (s.t1 != 0 && t1 != s.t1) {
			t.Errorf("at %v (host %q): lease %d s, T1 %d, T2 %d, %d writes; want %d s, T1 %d, T2 7/8, %d writes",
				s.at, s.host, lease, t1, t2, store.puts, s.lease, s.t1, s.puts)
		}
	}

	// The read loop's try (wait false) at a REQUEST that must write: errWouldWait,
	// and neither the store nor the table changed.
	now = t0.Add(28 * time.Minute)
	before, _ := h.pool.lease(mac.String())
	r, err := h.reply(ctx, renew("other"), false)
	if after, _ := h.pool.lease(mac.String()); r != nil || !errors.Is(err, errWouldWait) || store.puts != 3 || after != before {
		t.Errorf("reply without waiting, hostname changed: %v, %v, %d writes, lease %+v (was %+v); want errWouldWait and no change", r, err, store.puts, after, before)
	}

	// A restarted server reuses the lease it loaded from the store.
	h2 := testHandler(t, ModeFull, store)
	h2.now = func() time.Time { return now }
	now = t0.Add(30 * time.Minute)
	if lease, _, _ := ask(h2, "kxp2-coro-001"); lease != 3360 || store.puts != 3 {
		t.Errorf("after a restart: lease %d s, %d writes; want 3360 s (the stored lease, 4 min old), 3 writes", lease, store.puts)
	}

	// A write that failed is never reused: the client's retry writes again.
	now = t0.Add(60 * time.Minute)
	store.fail = 1
	r, err = h2.Reply(ctx, renew("kxp2-coro-001"))
	if r != nil || err == nil {
		t.Fatalf("REQUEST with a failing store: %v, %v; want no reply", r, err)
	}
	if lease, _, _ := ask(h2, "kxp2-coro-001"); lease != 3600 || store.puts != 5 {
		t.Errorf("retry after a failed write: lease %d s, %d writes; want 3600 s, 5 writes", lease, store.puts)
	}
	if l, _ := store.get(mac.String()); !l.Expires.Equal(now.Add(time.Hour)) {
		t.Errorf("stored lease expires %v, want %v", l.Expires, now.Add(time.Hour))
	}

	// LeaseReuse negative: every REQUEST writes.
	off, err := NewHandler(ctx, Options{Mode: ModeFull, ServerIP: netip.MustParseAddr("10.99.0.1"), Netmask: net.CIDRMask(24, 32),
		RangeFirst: netip.MustParseAddr("10.99.0.100"), RangeLast: netip.MustParseAddr("10.99.0.199"), Leases: store, LeaseReuse: -1})
	if err != nil {
		t.Fatal(err)
	}
	off.now = func() time.Time { return now }
	if lease, _, _ := ask(off, "kxp2-coro-001"); lease != 3600 || store.puts != 6 {
		t.Errorf("LeaseReuse -1: lease %d s, %d writes; want 3600 s, 6 writes", lease, store.puts)
	}
	if _, err := NewHandler(ctx, Options{Mode: ModeFull, ServerIP: netip.MustParseAddr("10.99.0.1"), Netmask: net.CIDRMask(24, 32),
		RangeFirst: netip.MustParseAddr("10.99.0.100"), RangeLast: netip.MustParseAddr("10.99.0.199"), LeaseReuse: time.Hour}); err == nil {
		t.Error("LeaseReuse of the whole lease time was accepted")
	}
}
