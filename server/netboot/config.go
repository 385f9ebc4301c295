package netboot

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/dhcp"
	"github.com/rpi-deploy/rpi-deploy/server/tftp"
)

// Config is the "netboot" section of rpi-deployd's config file. Flags of `serve`
// override the first four fields and Console. Zero values mean the documented defaults.
type Config struct {
	// DHCPMode is full, proxy or off. Default off.
	DHCPMode string `json:"dhcp_mode,omitempty"`
	// DHCPInterface is the deployment network interface (required unless DHCP is off).
	// DHCP listens on 0.0.0.0:67 bound to it; TFTP is bound to it as well.
	DHCPInterface string `json:"dhcp_interface,omitempty"`
	// DHCPRange is the full-mode pool, "FIRST-LAST" (inclusive), inside the
	// interface's network.
	DHCPRange string `json:"dhcp_range,omitempty"`
	// LeaseTime is the full-mode lease time, e.g. "1h" (default 1h).
	LeaseTime string `json:"lease_time,omitempty"`
	// LeaseReuse (full mode): a REQUEST that renews a lease unchanged within this
	// long of the lease's last write is answered with what is left of it, without a
	// write, e.g. "15m" (default a quarter of lease_time; "0s": every REQUEST writes).
	LeaseReuse string `json:"lease_reuse,omitempty"`
	// Router is option 3 in full mode (default: none).
	Router string `json:"router,omitempty"`
	// DNS servers, option 6 in full mode (default: none).
	DNS []string `json:"dns,omitempty"`
	// OnlyBoards (full mode) answers only Pi bootloaders (option 60
	// PXEClient:Arch:00000:UNDI:002001 with option 97 "RPi5"/"RPi4") and the agent
	// (option 60 rpi-deploy-agent); other clients get no answer. Default false.
	OnlyBoards bool `json:"dhcp_only_boards,omitempty"`
	// OfferHold (full mode) is how long an offered address waits for its REQUEST,
	// e.g. "5s" (default 5s, at most 1m).
	OfferHold string `json:"offer_hold,omitempty"`
	// MaxOffers (full mode) caps the offers held at once (default half the range);
	// beyond it the oldest offer, a non-board's first, makes room.
	MaxOffers int `json:"max_offers,omitempty"`
	// Reservations pin addresses to boards by MAC or serial (8 hex digits).
	Reservations []dhcp.Reservation `json:"reservations,omitempty"`
	// TFTPRoot is the TFTP root directory (see `rpi-deployd tftproot`). TFTP is off
	// when empty.
	TFTPRoot string `json:"tftp_root,omitempty"`
	// TFTPListen is the TFTP UDP address. Default 0.0.0.0:69.
	TFTPListen string `json:"tftp_listen,omitempty"`
	// TFTPMaxTransfers caps the TFTP transfers running at once; requests beyond it
	// get an ERROR "server busy". Default 256 (tftp.DefaultMaxTransfers).
	TFTPMaxTransfers int `json:"tftp_max_transfers,omitempty"`
	// TFTPMaxPerClient caps the TFTP transfers running at once for one client
	// address. Default 8 (tftp.DefaultMaxPerClient).
	TFTPMaxPerClient int `json:"tftp_max_per_client,omitempty"`
	// TFTPTimeout is how long a TFTP transfer waits for each ACK before it resends,
	// e.g. "5s"; after TFTPRetries resends the transfer ends and frees its socket.
	// Default 5s.
	TFTPTimeout string `json:"tftp_timeout,omitempty"`
	// TFTPRetries is how often a datagram is resent. Default 5.
	TFTPRetries int `json:"tftp_retries,omitempty"`
	// AgentURL is the URL agents reach the server at: rpideploy.server= in the
	// generated cmdline.txt and DHCP option 224. Default http://<interface address>:<HTTP port>.
	AgentURL string `json:"agent_url,omitempty"`
	// Console is which console the generated cmdline.txt puts last, and so which one
	// shows the agent and the rescue shell: "hdmi" (default: tty1, a screen on HDMI)
	// or "serial" (serial0, the Pi 5's 3-pin debug UART). Kernel messages go to both.
	Console string `json:"console,omitempty"`
	// Cmdline starts the generated cmdline.txt instead (default: from Console,
	// tftp.DefaultCmdline for hdmi). It names its own console= entries, so it cannot be
	// combined with Console.
	Cmdline string `json:"cmdline,omitempty"`
	// ConfigTxt is appended to the generated config.txt.
	ConfigTxt string `json:"config_txt,omitempty"`
}

// Parse reads the raw "netboot" section (empty: all defaults); unknown fields are an error.
func Parse(raw json.RawMessage) (Config, error) {
	var c Config
	if len(bytes.TrimSpace(raw)) == 0 {
		return c, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("config netboot: %w", err)
	}
	return c, nil
}

// Flags are the netboot flags of `rpi-deployd serve`.
type Flags struct {
	DHCPMode, DHCPInterface, DHCPRange, TFTPRoot, Console string
	OnlyBoards                                            bool
	TFTPMaxTransfers, TFTPMaxPerClient                    int
}

// AddFlags registers --dhcp-mode, --dhcp-interface, --dhcp-range, --tftp-root,
// --console, --dhcp-only-boards, --tftp-max-transfers and --tftp-max-per-client.
func AddFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.DHCPMode, "dhcp-mode", "", "DHCP mode: full, proxy or off (default off)")
	fs.StringVar(&f.DHCPInterface, "dhcp-interface", "", "deployment network interface for DHCP and TFTP")
	fs.StringVar(&f.DHCPRange, "dhcp-range", "", "full-mode address pool FIRST-LAST, e.g. 10.42.0.100-10.42.0.199")
	fs.StringVar(&f.TFTPRoot, "tftp-root", "", "TFTP root directory (TFTP is off when unset)")
	fs.BoolVar(&f.OnlyBoards, "dhcp-only-boards", false, "full mode: answer only Raspberry Pi bootloaders and the rpi-deploy agent, no other DHCP client")
	fs.StringVar(&f.Console, "console", "", "console the netbooted agent and its rescue shell use: hdmi or serial (default hdmi; put last in cmdline.txt)")
	fs.IntVar(&f.TFTPMaxTransfers, "tftp-max-transfers", 0, "TFTP transfers at once; past it: ERROR server busy (default 256)")
	fs.IntVar(&f.TFTPMaxPerClient, "tftp-max-per-client", 0, "TFTP transfers at once for one client address (default 8)")
	return f
}

// Override returns c with the flags that were given.
func (c Config) Override(f *Flags) Config {
	if f == nil {
		return c
	}
	for _, p := range []struct {
		dst *string
		v   string
	}{
		{&c.DHCPMode, f.DHCPMode}, {&c.DHCPInterface, f.DHCPInterface},
		{&c.DHCPRange, f.DHCPRange}, {&c.TFTPRoot, f.TFTPRoot}, {&c.Console, f.Console},
	} {
		if p.v != "" {
			*p.dst = p.v
		}
	}
	if f.OnlyBoards {
		c.OnlyBoards = true
	}
	if f.TFTPMaxTransfers > 0 {
		c.TFTPMaxTransfers = f.TFTPMaxTransfers
	}
	if f.TFTPMaxPerClient > 0 {
		c.TFTPMaxPerClient = f.TFTPMaxPerClient
	}
	return c
}

// Validate checks the values that need no system access.
func (c Config) Validate() error {
	switch c.DHCPMode {
	case "", dhcp.ModeOff, dhcp.ModeProxy:
	case dhcp.ModeFull:
		if c.DHCPRange == "" {
			return fmt.Errorf("dhcp mode full needs --dhcp-range FIRST-LAST")
		}
		if _, _, err := ParseRange(c.DHCPRange); err != nil {
			return err
		}
	default:
		return fmt.Errorf("dhcp mode %q: want full, proxy or off", c.DHCPMode)
	}
	if c.mode() != dhcp.ModeOff && c.DHCPInterface == "" {
		return fmt.Errorf("dhcp mode %s needs --dhcp-interface IF", c.DHCPMode)
	}
	if _, err := tftp.CmdlineFor(c.Console); err != nil {
		return err
	}
	if c.Console != "" && c.Cmdline != "" {
		return fmt.Errorf("console %q and cmdline %q: set one (cmdline names its own console= entries)", c.Console, c.Cmdline)
	}
	if c.OfferHold != "" {
		if d, err := time.ParseDuration(c.OfferHold); err != nil || d <= 0 || d > time.Minute {
			return fmt.Errorf("offer_hold %q: want a duration above 0 and at most 1m, e.g. \"5s\"", c.OfferHold)
		}
	}
	if c.MaxOffers < 0 {
		return fmt.Errorf("max_offers %d: want a positive number (0 = half the range)", c.MaxOffers)
	}
	if c.OnlyBoards && c.mode() != dhcp.ModeFull {
		return fmt.Errorf("dhcp_only_boards is for dhcp mode full (proxy mode answers only Pi bootloaders anyway)")
	}
	if c.LeaseTime != "" {
		if d, err := time.ParseDuration(c.LeaseTime); err != nil || d < time.Minute {
			return fmt.Errorf("lease_time %q: want a duration of at least 1m, e.g. \"1h\"", c.LeaseTime)
		}
	}
	if err := c.checkLeaseReuse(); err != nil {
		return err
	}
	if c.TFTPTimeout != "" {
		if d, err := time.ParseDuration(c.TFTPTimeout); err != nil || d < 100*time.Millisecond || d > time.Minute {
			return fmt.Errorf("tftp_timeout %q: want a duration from 100ms to 1m, e.g. \"5s\"", c.TFTPTimeout)
		}
	}
	if c.TFTPMaxTransfers < 0 || c.TFTPMaxPerClient < 0 || c.TFTPRetries < 0 {
		return fmt.Errorf("tftp_max_transfers, tftp_max_per_client and tftp_retries: want 0 (default) or more")
	}
	for _, a := range append([]string{c.Router}, c.DNS...) {
		if a == "" {
			continue
		}
		if ip, err := netip.ParseAddr(a); err != nil || !ip.Is4() {
			return fmt.Errorf("router/dns %q: want an IPv4 address", a)
		}
	}
	return nil
}

func (c Config) mode() string {
	if c.DHCPMode == "" {
		return dhcp.ModeOff
	}
	return c.DHCPMode
}

// ParseRange reads "FIRST-LAST".
func ParseRange(s string) (first, last netip.Addr, err error) {
	a, b, ok := strings.Cut(s, "-")
	if ok {
		first, err = netip.ParseAddr(strings.TrimSpace(a))
		if err == nil {
			last, err = netip.ParseAddr(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || !first.Is4() || !last.Is4() || last.Less(first) {
		return first, last, fmt.Errorf("dhcp range %q: want FIRST-LAST, two IPv4 addresses in order, e.g. 10.42.0.100-10.42.0.199", s)
	}
	return first, last, nil
}

// checkLeaseReuse checks lease_reuse against lease_time (default 1h).
func (c Config) checkLeaseReuse() error {
	if c.LeaseReuse == "" {
		return nil
	}
	lt := time.Hour
	if c.LeaseTime != "" {
		lt, _ = time.ParseDuration(c.LeaseTime) // checked before
	}
	if d, err := time.ParseDuration(c.LeaseReuse); err != nil || d < 0 || d >= lt {
		return fmt.Errorf("lease_reuse %q: want a duration from 0s (off) to less than lease_time (%v), e.g. \"15m\"", c.LeaseReuse, lt)
	}
	return nil
}
