package dhcp

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/rpi-deploy/rpi-deploy/server/netnstest"
)

// memLeases is a LeaseStore kept in memory (the SQLite one lives in server/store and
// has its own tests); it lets these tests look at what the server stored.
type memLeases struct {
	mu sync.Mutex
	m  map[string]Lease
}

func (s *memLeases) LoadLeases(context.Context) ([]Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Lease
	for _, l := range s.m {
		out = append(out, l)
	}
	return out, nil
}

func (s *memLeases) PutLease(_ context.Context, l Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]Lease{}
	}
	for k, o := range s.m {
		if o.IP == l.IP {
			delete(s.m, k)
		}
	}
	s.m[l.MAC] = l
	return nil
}

func (s *memLeases) DeleteLease(_ context.Context, mac string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, mac)
	return nil
}

func (s *memLeases) get(mac string) (Lease, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.m[mac]
	return l, ok
}

type events struct {
	mu sync.Mutex
	ev []Event
}

func (e *events) RecordDHCP(_ context.Context, ev Event) {
	e.mu.Lock()
	e.ev = append(e.ev, ev)
	e.mu.Unlock()
}

func (e *events) types() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.ev {
		out = append(out, ev.Type+" "+ev.Client.Kind+" "+ev.Client.Serial)
	}
	return out
}

const agentURL = "http://10.77.0.1:8080"

type env struct {
	link   *netnstest.Link
	leases *memLeases
	events *events
}

// startServer runs a DHCP server in its own namespace, on the veth end 10.77.0.1/24.
func startServer(t *testing.T, mode string) *env { t.Helper(); return startServerWith(t, mode, nil) }

// startServerWith is startServer with the Options changed by set (when not nil).
func startServerWith(t *testing.T, mode string, set func(*Options)) *env {
	t.Helper()
	e, cancel, done := startServerCtx(t, mode, set)
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return e
}

// startServerCtx is startServerWith that leaves stopping the server to the caller:
// cancel ends it, done has Serve's result.
func startServerCtx(t *testing.T, mode string, set func(*Options)) (e *env, cancel context.CancelFunc, done chan error) {
	t.Helper()
	l := netnstest.NewLink(t, "10.77.0.1/24", "")
	e = &env{link: l, leases: &memLeases{}, events: &events{}}
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan error, 1)
	l.Server.MustDo(t, func() error {
		ifc, err := LookupInterface(l.ServerIf)
		if err != nil {
			return err
		}
		o := Options{
			Mode: mode, ServerIP: ifc.IP, Netmask: ifc.Netmask,
			RangeFirst: netip.MustParseAddr("10.77.0.100"), RangeLast: netip.MustParseAddr("10.77.0.150"),
			LeaseTime: 10 * time.Minute, AgentURL: agentURL,
			Leases: e.leases, Recorder: e.events,
		}
		if set != nil {
			set(&o)
		}
		h, err := NewHandler(ctx, o)
		if err != nil {
			return err
		}
		s, err := Listen(h, l.ServerIf, 0, nil)
		if err != nil {
			return err
		}
		go func() { done <- s.Serve(ctx) }()
		return nil
	})
	return e, cancel, done
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := os.Stat(tool); err != nil {
			t.Fatalf("%s missing (scripts/deps/netboot.apt installs it): %v", tool, err)
		}
	}
}

func runDhclient(t *testing.T, e *env) map[string]string {
	t.Helper()
	need(t, "/usr/sbin/dhclient")
	dir := t.TempDir()
	script := filepath.Join(dir, "script.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nenv > \""+dir+"/env.$reason\"\n"), 0o755)
	conf := filepath.Join(dir, "dhclient.conf")
	os.WriteFile(conf, []byte("timeout 6;\nretry 1;\ninitial-interval 1;\nrequest subnet-mask, broadcast-address, routers;\n"), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := e.link.Client.Run(ctx, "dhclient", "-4", "-1", "-v", "-cf", conf, "-sf", script,
		"-lf", filepath.Join(dir, "leases"), "-pf", filepath.Join(dir, "pid"), e.link.ClientIf)
	if pid, perr := os.ReadFile(filepath.Join(dir, "pid")); perr == nil {
		e.link.Client.Run(context.Background(), "kill", strings.TrimSpace(string(pid)))
	}
	b, rerr := os.ReadFile(filepath.Join(dir, "env.BOUND"))
	if rerr != nil {
		t.Logf("dhclient: %v", err)
		return nil
	}
	return parseEnv(string(b))
}

func runUdhcpc(t *testing.T, e *env, extra ...string) map[string]string {
	t.Helper()
	need(t, "/usr/bin/busybox")
	dir := t.TempDir()
	script := filepath.Join(dir, "script.sh")
	os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && env > \""+dir+"/env.bound\"\nexit 0\n"), 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := append([]string{"udhcpc", "-i", e.link.ClientIf, "-f", "-q", "-n", "-t", "3", "-T", "1", "-s", script}, extra...)
	_, err := e.link.Client.Run(ctx, "busybox", args...)
	b, rerr := os.ReadFile(filepath.Join(dir, "env.bound"))
	if rerr != nil {
		t.Logf("udhcpc: %v", err)
		return nil
	}
	return parseEnv(string(b))
}

func parseEnv(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = strings.Trim(v, "'")
		}
	}
	return m
}

func inRange(ip string) bool {
	a, err := netip.ParseAddr(ip)
	return err == nil && netip.MustParseAddr("10.77.0.100").Compare(a) <= 0 && a.Compare(netip.MustParseAddr("10.77.0.150")) <= 0
}

func clientMAC(t *testing.T, e *env) string {
	var mac string
	e.link.Client.MustDo(t, func() error {
		ifc, err := net.InterfaceByName(e.link.ClientIf)
		if err != nil {
			return err
		}
		mac = ifc.HardwareAddr.String()
		return nil
	})
	return mac
}

func TestFullModeRealClients(t *testing.T) {
	t.Parallel()
	netnstest.Require(t)
	e := startServer(t, ModeFull)
	mac := clientMAC(t, e)

	t.Run("dhclient", func(t *testing.T) {
		got := runDhclient(t, e)
		if got == nil || !inRange(got["new_ip_address"]) || got["new_dhcp_server_identifier"] != "10.77.0.1" {
			t.Fatalf("dhclient lease = %v, want an address of 10.77.0.100-150 from 10.77.0.1", got)
		}
		if got["new_subnet_mask"] != "255.255.255.0" {
			t.Errorf("subnet mask = %q", got["new_subnet_mask"])
		}
		l, ok := e.leases.get(mac)
		if !ok || l.IP.String() != got["new_ip_address"] {
			t.Errorf("stored lease for %s = %+v, %v; want %s", mac, l, ok, got["new_ip_address"])
		}
	})
	t.Run("udhcpc", func(t *testing.T) {
		got := runUdhcpc(t, e)
		if got == nil || !inRange(got["ip"]) || got["serverid"] != "10.77.0.1" {
			t.Fatalf("udhcpc lease = %v", got)
		}
		if l, _ := e.leases.get(mac); l.IP.String() != got["ip"] {
			t.Errorf("same MAC got %s, stored lease %v: want the same address again", got["ip"], l.IP)
		}
	})
	t.Run("udhcpc again: the stored lease, not rewritten", func(t *testing.T) {
		before, _ := e.leases.get(mac)
		got := runUdhcpc(t, e)
		if got == nil || got["ip"] != before.IP.String() {
			t.Fatalf("udhcpc lease = %v, want %v again", got, before.IP)
		}
		// What is left of the stored lease, not a lease time of its own.
		left := int(time.Until(before.Expires).Seconds())
		if secs, err := strconv.Atoi(got["lease"]); err != nil || secs < left-2 || secs > left+1 {
			t.Errorf("lease time %q s, want what is left of the stored lease, %d s", got["lease"], left)
		}
		if after, _ := e.leases.get(mac); after != before {
			t.Errorf("stored lease rewritten: %+v, was %+v", after, before)
		}
	})
	t.Run("agent gets option 224", func(t *testing.T) {
		got := runUdhcpc(t, e, "-V", AgentClassID, "-O", "224")
		if got == nil {
			t.Fatal("agent got no lease")
		}
		url, err := hex.DecodeString(got["opt224"])
		if err != nil || string(url) != agentURL {
			t.Errorf("option 224 = %q (%q), want %q", got["opt224"], url, agentURL)
		}
		if l, _ := e.leases.get(mac); l.Kind != KindAgent {
			t.Errorf("lease kind = %q, want %q", l.Kind, KindAgent)
		}
	})
}

func TestProxyModeGivesNoLeases(t *testing.T) {
	t.Parallel()
	netnstest.Require(t)
	e := startServer(t, ModeProxy)
	if got := runUdhcpc(t, e); got != nil {
		t.Errorf("udhcpc got a lease from a proxy: %v", got)
	}
	if got := runDhclient(t, e); got != nil {
		t.Errorf("dhclient got a lease from a proxy: %v", got)
	}
	if ev := e.events.types(); len(ev) != 0 {
		t.Errorf("events = %v, want none", ev)
	}
}

type scapyReply struct {
	Step    string            `json:"step"`
	Timeout bool              `json:"timeout"`
	EthDst  string            `json:"eth_dst"`
	IPSrc   string            `json:"ip_src"`
	IPDst   string            `json:"ip_dst"`
	YIAddr  string            `json:"yiaddr"`
	SIAddr  string            `json:"siaddr"`
	Options map[string]string `json:"options"`
	UDPOK   bool              `json:"udp_ok"`
}

func TestPiBootloaderExchange(t *testing.T) {
	t.Parallel()
	netnstest.Require(t)
	need(t, "/usr/bin/python3")
	script, _ := filepath.Abs("testdata/pi_dora.py")
	dnsmasq43 := hex.EncodeToString(dnsmasqOffer(t).GetOneOption(dhcpv4.OptionVendorSpecificInformation))
	for _, mode := range []string{ModeFull, ModeProxy} {
		t.Run(mode, func(t *testing.T) {
			e := startServer(t, mode)
			mac := clientMAC(t, e)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := e.link.Client.Run(ctx, "/usr/bin/python3", script, e.link.ClientIf, hex.EncodeToString(capturedOption97(t)), "dora")
			if err != nil {
				t.Fatal(err)
			}
			var replies []scapyReply
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var r scapyReply
				if json.Unmarshal([]byte(line), &r) == nil && r.Step != "" {
					replies = append(replies, r)
				}
			}
			if len(replies) != 2 {
				t.Fatalf("want an offer and an ack, got:\n%s", out)
			}
			for i, want := range []string{"02", "05"} {
				r := replies[i]
				if r.Timeout {
					t.Fatalf("%s: no reply", r.Step)
				}
				if r.Options["53"] != want {
					t.Errorf("%s: message type %s, want %s", r.Step, r.Options["53"], want)
				}
				if r.EthDst != mac {
					t.Errorf("%s: Ethernet destination %s, want the client's MAC %s (unicast)", r.Step, r.EthDst, mac)
				}
				if r.Options["43"] != dnsmasq43 {
					t.Errorf("%s: option 43 = %s, want dnsmasq's %s", r.Step, r.Options["43"], dnsmasq43)
				}
				if r.Options["60"] != hex.EncodeToString([]byte("PXEClient")) {
					t.Errorf("%s: option 60 = %s", r.Step, r.Options["60"])
				}
				if r.Options["97"] != hex.EncodeToString(capturedOption97(t)) {
					t.Errorf("%s: option 97 = %s, want the client's echoed", r.Step, r.Options["97"])
				}
				if r.SIAddr != "10.77.0.1" || r.Options["54"] != "0a4d0001" {
					t.Errorf("%s: siaddr %s, option 54 %s; want 10.77.0.1", r.Step, r.SIAddr, r.Options["54"])
				}
				if !r.UDPOK {
					t.Errorf("%s: bad UDP checksum", r.Step)
				}
				switch mode {
				case ModeFull:
					if !inRange(r.YIAddr) || r.IPDst != r.YIAddr || r.Options["51"] == "" {
						t.Errorf("%s: yiaddr %s to %s, lease time %q: want an address of the range, sent to it", r.Step, r.YIAddr, r.IPDst, r.Options["51"])
					}
				case ModeProxy:
					if r.YIAddr != "0.0.0.0" || r.Options["51"] != "" {
						t.Errorf("%s: proxy gave yiaddr %s, lease time %q", r.Step, r.YIAddr, r.Options["51"])
					}
				}
			}
			wantEv := []string{"dhcp offer bootloader " + capturedSerial, "dhcp ack bootloader " + capturedSerial}
			if got := e.events.types(); strings.Join(got, ",") != strings.Join(wantEv, ",") {
				t.Errorf("events = %q, want %q", got, wantEv)
			}
			if mode == ModeFull {
				if l, ok := e.leases.get(mac); !ok || l.Serial != capturedSerial || l.Kind != KindBootloader {
					t.Errorf("lease = %+v, want the board's serial and kind bootloader", l)
				}
			}
		})
	}
}

// TestBroadcastWhenAsked: a client that sets the broadcast flag gets its OFFER
// broadcast, as RFC 2131 and dnsmasq do.
func TestBroadcastWhenAsked(t *testing.T) {
	t.Parallel()
	netnstest.Require(t)
	need(t, "/usr/bin/python3")
	script, _ := filepath.Abs("testdata/pi_dora.py")
	e := startServer(t, ModeFull)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := e.link.Client.Run(ctx, "/usr/bin/python3", script, e.link.ClientIf, hex.EncodeToString(capturedOption97(t)), "discover", "bcast")
	if err != nil {
		t.Fatal(err)
	}
	var r scapyReply
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil || r.Timeout {
		t.Fatalf("no offer: %v %s", err, out)
	}
	if r.EthDst != "ff:ff:ff:ff:ff:ff" || r.IPDst != "255.255.255.255" {
		t.Errorf("offer to %s / %s, want broadcast", r.EthDst, r.IPDst)
	}
}

// TestScapyPeerAgainstDnsmasq runs the same Pi 5 exchange against dnsmasq with
// pxe-service=0,"Raspberry Pi Boot": the checks our server passes are dnsmasq's
// behaviour, not an artefact of the test client.
func TestScapyPeerAgainstDnsmasq(t *testing.T) {
	t.Parallel()
	netnstest.Require(t)
	need(t, "/usr/bin/python3", "/usr/sbin/dnsmasq")
	script, _ := filepath.Abs("testdata/pi_dora.py")
	l := netnstest.NewLink(t, "10.77.0.1/24", "")
	var log bytes.Buffer
	l.Server.Start(t, &log, "dnsmasq", "--no-daemon", "--port=0", "--no-ping", "--interface="+l.ServerIf, "--bind-interfaces",
		"--dhcp-range=10.77.0.100,10.77.0.150,1h", "--dhcp-leasefile=/dev/null", `--pxe-service=0,Raspberry Pi Boot`, "--log-facility=-")
	waitListening(t, l.Server, 67)
	e := &env{link: l}
	mac := clientMAC(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := l.Client.Run(ctx, "/usr/bin/python3", script, l.ClientIf, hex.EncodeToString(capturedOption97(t)), "discover")
	if err != nil {
		t.Fatal(err)
	}
	var r scapyReply
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil || r.Timeout {
		t.Fatalf("dnsmasq sent no offer: %v %s\n%s", err, out, log.String())
	}
	if r.EthDst != mac || r.IPDst != r.YIAddr || r.Options["43"] != hex.EncodeToString(PXEMenu) || r.Options["60"] != hex.EncodeToString([]byte("PXEClient")) {
		t.Errorf("dnsmasq's offer: %+v", r)
	}
}

// waitListening waits until a UDP socket in ns is bound to port (a server started in
// the background is ready), as ss(8) reports it.
func waitListening(t *testing.T, ns *netnstest.NS, port int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := ns.Run(context.Background(), "ss", "-H", "-u", "-l", "-n", fmt.Sprintf("sport = :%d", port))
		if err == nil && strings.TrimSpace(out) != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on UDP port %d after 10 s: %v %s", port, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
