package dhcp

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/rpi-deploy/rpi-deploy/server/netnstest"
)

type floodResult struct {
	Sent    int      `json:"sent"`
	Offers  int      `json:"offers"`
	Offered []string `json:"offered"`
}

// flood runs testdata/discover_flood.py in the client namespace: n DISCOVERs from
// random MACs, never a REQUEST (pi: shaped like a Pi bootloader's).
func flood(t *testing.T, e *env, n int, pi bool) floodResult {
	t.Helper()
	need(t, "/usr/bin/python3")
	script, _ := filepath.Abs("testdata/discover_flood.py")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{script, e.link.ClientIf, fmt.Sprint(n)}
	if pi {
		args = append(args, "pi")
	}
	cmd := e.link.Client.Command(ctx, "/usr/bin/python3", args...)
	cmd.Env = append(cmd.Environ(), "OPT97_HEX="+hex.EncodeToString(capturedOption97(t)))
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("flood: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("flood: %v", err)
	}
	var r floodResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("flood output %q: %v", out, err)
	}
	return r
}

// TestDiscoverFloodCannotHoldTheRange reproduces the issue-13 attack — 150 random
// MACs send DISCOVERs and never REQUEST, which used to hold every address of the
// range for 60 s — and shows that real clients (busybox udhcpc, dhclient, the Pi
// bootloader's exchange) still get an address right after it, while the flood held at
// most MaxOffers addresses.
func TestDiscoverFloodCannotHoldTheRange(t *testing.T) {
	t.Parallel()
	netnstest.Require(t)
	for _, pi := range []bool{false, true} {
		t.Run(fmt.Sprintf("pi-shaped=%v", pi), func(t *testing.T) {
			e := startServer(t, ModeFull) // 51 addresses: MaxOffers defaults to 25
			r := flood(t, e, 150, pi)
			if r.Sent != 150 || r.Offers == 0 {
				t.Fatalf("flood: %+v, want 150 sent and offers seen", r)
			}
			if len(r.Offered) > 25 {
				t.Errorf("the flood was offered %d distinct addresses, want at most 25 (half the range)", len(r.Offered))
			}
			if got := runUdhcpc(t, e); got == nil || !inRange(got["ip"]) {
				t.Errorf("udhcpc after the flood: lease %v, want an address of the range", got)
			}
			script, _ := filepath.Abs("testdata/pi_dora.py")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := e.link.Client.Run(ctx, "/usr/bin/python3", script, e.link.ClientIf, hex.EncodeToString(capturedOption97(t)), "dora")
			if err != nil || strings.Count(out, `"step": "ack"`) != 1 || strings.Contains(out, "timeout") {
				t.Errorf("the Pi exchange after the flood: %v\n%s", err, out)
			}
		})
	}
}

// TestOnlyBoardsRealClients: with OnlyBoards, dhclient and plain udhcpc get nothing,
// the agent's DHCP (udhcpc -V rpi-deploy-agent) and the Pi bootloader's exchange get
// their leases, and a flood of plain DISCOVERs is not answered at all.
func TestOnlyBoardsRealClients(t *testing.T) {
	t.Parallel()
	netnstest.Require(t)
	e := startServerWith(t, ModeFull, func(o *Options) { o.OnlyBoards = true })
	if got := runUdhcpc(t, e); got != nil {
		t.Errorf("plain udhcpc got a lease: %v", got)
	}
	if got := runDhclient(t, e); got != nil {
		t.Errorf("dhclient got a lease: %v", got)
	}
	if r := flood(t, e, 50, false); r.Offers != 0 {
		t.Errorf("plain DISCOVER flood got %d offers, want none", r.Offers)
	}
	script, _ := filepath.Abs("testdata/pi_dora.py")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := e.link.Client.Run(ctx, "/usr/bin/python3", script, e.link.ClientIf, hex.EncodeToString(capturedOption97(t)), "dora")
	if err != nil || strings.Count(out, `"step": "ack"`) != 1 || strings.Contains(out, "timeout") {
		t.Fatalf("the Pi exchange: %v\n%s", err, out)
	}
	got := runUdhcpc(t, e, "-V", AgentClassID, "-O", "224")
	if got == nil || !inRange(got["ip"]) {
		t.Fatalf("the agent got no lease: %v", got)
	}
	if l, _ := e.leases.get(clientMAC(t, e)); l.IP.String() != got["ip"] || l.Kind != KindAgent || l.Serial != capturedSerial {
		t.Errorf("agent lease %+v, want %s, kind agent, the bootloader's serial", l, got["ip"])
	}
}

// TestOnlyBoardsHandler pins the rules without the network: who is answered, and a Pi
// REQUEST without option 60 (seen from a Pi 4) after its own OFFER.
func TestOnlyBoardsHandler(t *testing.T) {
	ctx := context.Background()
	h, err := NewHandler(ctx, Options{Mode: ModeFull, ServerIP: netip.MustParseAddr("10.99.0.1"), Netmask: net.CIDRMask(24, 32),
		RangeFirst: netip.MustParseAddr("10.99.0.100"), RangeLast: netip.MustParseAddr("10.99.0.199"), OnlyBoards: true})
	if err != nil {
		t.Fatal(err)
	}
	pi := net.HardwareAddr{0xdc, 0xa6, 0x32, 0x2e, 0xf8, 0xed}
	laptop := net.HardwareAddr{0x02, 0, 0, 0, 0, 9}
	sid := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 99, 0, 1)))
	piOpts := []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier(PiClassID)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, capturedOption97(t))}
	discover := dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover)

	for _, tc := range []struct {
		name string
		mac  net.HardwareAddr
		mods []dhcpv4.Modifier
	}{
		{"plain", laptop, []dhcpv4.Modifier{discover}},
		{"other PXE client", laptop, []dhcpv4.Modifier{discover, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016"))}},
		{"Pi class without option 97", laptop, []dhcpv4.Modifier{discover, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(PiClassID))}},
		{"request from a stranger", laptop, []dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), sid,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 99, 0, 100)))}},
	} {
		if r, _ := h.Reply(ctx, request(t, tc.mac, tc.mods...)); r != nil {
			t.Errorf("%s: answered %v, want silence", tc.name, r.MessageType())
		}
	}
	offer, _ := h.Reply(ctx, request(t, pi, append([]dhcpv4.Modifier{discover}, piOpts...)...))
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("Pi DISCOVER: %v", offer)
	}
	ack, _ := h.Reply(ctx, request(t, pi, dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), sid,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))))
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("the Pi's REQUEST without option 60 after its OFFER: %v, want an ACK", ack)
	}
	agent, _ := h.Reply(ctx, request(t, laptop, discover, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(AgentClassID))))
	if agent == nil || agent.MessageType() != dhcpv4.MessageTypeOffer {
		t.Errorf("agent DISCOVER: %v", agent)
	}
}

// TestOfferCapAndHold: at MaxOffers the oldest offer of a non-board makes room, a
// board's offer survives a flood of non-boards, and offers end after OfferHold.
func TestOfferCapAndHold(t *testing.T) {
	ctx := context.Background()
	h, err := NewHandler(ctx, Options{Mode: ModeFull, ServerIP: netip.MustParseAddr("10.99.0.1"), Netmask: net.CIDRMask(24, 32),
		RangeFirst: netip.MustParseAddr("10.99.0.100"), RangeLast: netip.MustParseAddr("10.99.0.109")})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return now }
	if h.opt.MaxOffers != 5 || h.opt.OfferHold != DefaultOfferHold {
		t.Fatalf("defaults: MaxOffers %d, OfferHold %v; want 5 (half of 10) and %v", h.opt.MaxOffers, h.opt.OfferHold, DefaultOfferHold)
	}
	discover := dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover)
	pi := net.HardwareAddr{0xdc, 0xa6, 0x32, 0x2e, 0xf8, 0xed}
	piOffer, _ := h.Reply(ctx, request(t, pi, discover, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(PiClassID)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, capturedOption97(t))))
	if piOffer == nil {
		t.Fatal("no offer for the Pi")
	}
	seen := map[string]bool{}
	for i := range 200 {
		now = now.Add(time.Millisecond)
		o, _ := h.Reply(ctx, request(t, net.HardwareAddr{0x02, 0, 0, 0, byte(i >> 8), byte(i)}, discover))
		if o == nil {
			t.Fatalf("flood DISCOVER %d got no offer: the range is held", i)
		}
		seen[o.YourIPAddr.String()] = true
	}
	if len(h.pool.offers) > 5 {
		t.Errorf("%d offers held, want at most 5", len(h.pool.offers))
	}
	if seen[piOffer.YourIPAddr.String()] {
		t.Errorf("the Pi's offered address %v was offered to the flood", piOffer.YourIPAddr)
	}
	if len(seen) > 4 {
		t.Errorf("the flood got %d distinct addresses, want at most 4 (the cap minus the Pi's)", len(seen))
	}
	// After OfferHold every held offer is gone: the next client gets the first address.
	now = now.Add(DefaultOfferHold)
	o, _ := h.Reply(ctx, request(t, net.HardwareAddr{0x02, 1, 1, 1, 1, 1}, discover))
	if o == nil || o.YourIPAddr.String() != "10.99.0.100" {
		t.Errorf("after the hold: offer %v, want 10.99.0.100", o)
	}
}
