package dhcp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Modes of the DHCP server.
const (
	ModeFull  = "full"  // hand out addresses from a range
	ModeProxy = "proxy" // boot options only, beside another DHCP server
	ModeOff   = "off"   // no DHCP
)

// Event is one DHCP exchange step worth showing on a board's record.
type Event struct {
	Type   string     // "dhcp offer", "dhcp ack", "dhcp nak", "dhcp release", "dhcp decline", "dhcp inform"
	MAC    string     // aa:bb:cc:dd:ee:ff
	IP     netip.Addr // the address offered or bound; invalid in proxy mode
	Client Client     // kind, model, revision, serial (8 hex) as far as known
	Mode   string     // ModeFull or ModeProxy
	Reason string     // why a NAK was sent
}

// Recorder receives the Server's events (the caller ties them to board records).
type Recorder interface {
	RecordDHCP(ctx context.Context, ev Event)
}

// Options configures a Handler. The zero value of a field means its documented default.
type Options struct {
	Mode     string     // ModeFull or ModeProxy (required)
	ServerIP netip.Addr // our address on the boot network: option 54, siaddr default (required)
	Netmask  net.IPMask // of the boot network (required in full mode)

	RangeFirst, RangeLast netip.Addr    // full mode: the pool (inclusive)
	Reservations          []Reservation // full mode: fixed addresses by MAC or serial
	LeaseTime             time.Duration // full mode; default 1h
	// LeaseReuse (full mode): a REQUEST that renews a lease unchanged (the same
	// address, serial, kind and hostname) less than LeaseReuse after the lease was
	// last written to the store is answered with what is left of that lease, and
	// nothing is written (as Kea's cache-threshold). Default LeaseTime/4; negative:
	// every REQUEST writes its lease. Boards ask for the same lease three times per
	// install (bootloader, agent, installed system), and a client that REQUESTs
	// again and again costs no write each time.
	LeaseReuse time.Duration
	Router     netip.Addr   // option 3 when valid
	DNS        []netip.Addr // option 6 when set

	TFTPServer netip.Addr // siaddr and option 66 for Pi bootloaders; default ServerIP
	AgentURL   string     // option 224 for the agent's DHCP; none when empty

	// OnlyBoards (full mode) answers only Raspberry Pi bootloaders (option 60
	// PiClassID and option 97 of the "RPi5"/"RPi4" form) and the rpi-deploy agent
	// (option 60 AgentClassID), and stays silent to every other client. A REQUEST,
	// RELEASE or DECLINE from a MAC that holds a board's offer or lease is answered
	// too (a Pi 4 REQUEST was seen without option 60). Default false: any client
	// gets a lease.
	OnlyBoards bool
	// OfferHold (full mode) is how long an offered address is kept for the client
	// that was offered it, waiting for its REQUEST (which real clients send within
	// milliseconds). Default 5s.
	OfferHold time.Duration
	// MaxOffers (full mode) caps the offers held at once; at the cap a new DISCOVER
	// takes the place of the oldest held offer, one of a client that is not a board
	// first. So a host that sends DISCOVERs from many MACs and never REQUESTs holds at
	// most MaxOffers addresses, for at most OfferHold. Default half the range (at
	// least 1).
	MaxOffers int

	Leases   LeaseStore   // full mode; nil keeps leases in memory only
	Recorder Recorder     // nil records nothing
	Logger   *slog.Logger // nil discards
}

var serial8 = regexp.MustCompile(`^[0-9a-f]{8}$`)

// Handler computes replies to DHCP requests. It does no I/O except through its
// LeaseStore and Recorder; Server puts it on the wire.
type Handler struct {
	opt  Options
	pool *pool
	log  *slog.Logger
	now  func() time.Time

	// Options the same in every reply, encoded once (encodeOptions).
	network []option // 54, 1, 28, 3, 6
	boot    []option // 54, 60, 43, 66 for the Pi bootloader
	agent   []option // 224 for the agent
	lease   []option // 51, 58, 59 for a lease of LeaseTime
	tftpIP  net.IP   // siaddr for the Pi bootloader
}

// NewHandler checks o and loads the leases (full mode).
func NewHandler(ctx context.Context, o Options) (*Handler, error) {
	if o.Mode != ModeFull && o.Mode != ModeProxy {
		return nil, fmt.Errorf("dhcp mode %q: want %q or %q", o.Mode, ModeFull, ModeProxy)
	}
	if !o.ServerIP.Is4() {
		return nil, fmt.Errorf("dhcp: server address %v is not IPv4", o.ServerIP)
	}
	if !o.TFTPServer.IsValid() {
		o.TFTPServer = o.ServerIP
	}
	if o.LeaseTime <= 0 {
		o.LeaseTime = time.Hour
	}
	h := &Handler{opt: o, log: o.Logger, now: time.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if o.Mode == ModeFull {
		if len(o.Netmask) != 4 {
			return nil, fmt.Errorf("dhcp: full mode needs the IPv4 netmask of the boot network")
		}
		if !o.RangeFirst.Is4() || !o.RangeLast.Is4() || o.RangeLast.Less(o.RangeFirst) {
			return nil, fmt.Errorf("dhcp range %v-%v: want FIRST-LAST, two IPv4 addresses in order", o.RangeFirst, o.RangeLast)
		}
		subnet := net.IPNet{IP: ip4(o.ServerIP).Mask(o.Netmask), Mask: o.Netmask}
		for _, a := range []netip.Addr{o.RangeFirst, o.RangeLast} {
			if !subnet.Contains(ip4(a)) {
				return nil, fmt.Errorf("dhcp range %v-%v: %v is outside the network %v of %v", o.RangeFirst, o.RangeLast, a, subnet.String(), o.ServerIP)
			}
		}
		if o.RangeFirst.Compare(o.ServerIP) <= 0 && o.ServerIP.Compare(o.RangeLast) <= 0 {
			return nil, fmt.Errorf("dhcp range %v-%v contains the server's own address %v", o.RangeFirst, o.RangeLast, o.ServerIP)
		}
		o.Reservations = slices.Clone(o.Reservations) // normalised below; the caller's stay as they are
		for i, r := range o.Reservations {
			if !r.IP.Is4() || !subnet.Contains(ip4(r.IP)) {
				return nil, fmt.Errorf("dhcp reservation %v: not an address of the network %v", r.IP, subnet.String())
			}
			if r.MAC != "" {
				hw, err := net.ParseMAC(r.MAC)
				if err != nil || len(hw) != 6 {
					return nil, fmt.Errorf("dhcp reservation %v: MAC %q: want aa:bb:cc:dd:ee:ff", r.IP, r.MAC)
				}
				r.MAC = hw.String()
			}
			r.Serial = strings.ToLower(r.Serial)
			if (r.MAC == "") == (r.Serial == "") || (r.Serial != "" && !serial8.MatchString(r.Serial)) {
				return nil, fmt.Errorf("dhcp reservation %v: give either a MAC or a serial of 8 hex digits", r.IP)
			}
			o.Reservations[i] = r
		}
		if o.OfferHold <= 0 {
			o.OfferHold = DefaultOfferHold
		}
		if o.MaxOffers <= 0 {
			o.MaxOffers = max(1, rangeSize(o.RangeFirst, o.RangeLast)/2)
		}
		if o.LeaseReuse == 0 {
			o.LeaseReuse = o.LeaseTime / 4
		}
		if o.LeaseReuse >= o.LeaseTime {
			return nil, fmt.Errorf("dhcp: lease reuse %v: want less than the lease time %v", o.LeaseReuse, o.LeaseTime)
		}
		h.opt = o
		p, err := newPool(ctx, o.RangeFirst, o.RangeLast, o.Reservations, o.Leases)
		if err != nil {
			return nil, err
		}
		p.hold, p.maxOffers, p.reuse = o.OfferHold, o.MaxOffers, max(0, o.LeaseReuse)
		h.pool = p
	}
	h.encodeOptions()
	return h, nil
}

// encodeOptions encodes the options that are the same in every reply.
func (h *Handler) encodeOptions() {
	o := h.opt
	sid := dhcpv4.OptServerIdentifier(ip4(o.ServerIP))
	if o.Mode == ModeFull { // a proxy sends no network options
		network := ip4(o.ServerIP).Mask(o.Netmask)
		bcast := make(net.IP, 4)
		for i := range bcast {
			bcast[i] = network[i] | ^o.Netmask[i]
		}
		opts := []dhcpv4.Option{sid, dhcpv4.OptSubnetMask(o.Netmask), dhcpv4.OptBroadcastAddress(bcast)}
		if o.Router.Is4() {
			opts = append(opts, dhcpv4.OptRouter(ip4(o.Router)))
		}
		if len(o.DNS) > 0 {
			var ips []net.IP
			for _, a := range o.DNS {
				ips = append(ips, ip4(a))
			}
			opts = append(opts, dhcpv4.OptDNS(ips...))
		}
		h.network = encodeOptions(opts...)
		h.lease = encodeOptions(dhcpv4.OptIPAddressLeaseTime(o.LeaseTime), dhcpv4.OptRenewTimeValue(o.LeaseTime/2),
			dhcpv4.OptRebindingTimeValue(o.LeaseTime*7/8))
	}
	h.boot = encodeOptions(sid, dhcpv4.OptClassIdentifier("PXEClient"),
		dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, PXEMenu), dhcpv4.OptTFTPServerName(o.TFTPServer.String()))
	if o.AgentURL != "" {
		h.agent = encodeOptions(dhcpv4.OptGeneric(OptionAgentURL, []byte(o.AgentURL)))
	}
	h.tftpIP = ip4(o.TFTPServer)
}

// setLeaseOptions sets options 51, 58 and 59 of reply for a lease of lt: renewal
// at half of it, rebinding at 7/8 (RFC 2131 §4.4.5), each in seconds as 32 bits
// (RFC 2132 §9.2, §9.11, §9.12). For a reused lease's time left it writes those
// 12 bytes itself: with the library's three encoders (as for h.lease), 8 s of the
// bench's perfdhcp load, whose REQUESTs nearly all reuse their lease, brought a
// collection 5.8 s in; without them, none. TestRenewalReusesStoredLease checks
// the three values.
func (h *Handler) setLeaseOptions(reply *dhcpv4.DHCPv4, lt time.Duration) {
	if lt == h.opt.LeaseTime {
		setOptions(reply, h.lease)
		return
	}
	v := make([]byte, 12)
	for i, d := range [3]time.Duration{lt, lt / 2, lt * 7 / 8} {
		binary.BigEndian.PutUint32(v[4*i:], uint32(d/time.Second))
	}
	reply.Options[dhcpv4.OptionIPAddressLeaseTime.Code()] = v[0:4:4]
	reply.Options[dhcpv4.OptionRenewTimeValue.Code()] = v[4:8:8]
	reply.Options[dhcpv4.OptionRebindingTimeValue.Code()] = v[8:12:12]
}

// Mode returns ModeFull or ModeProxy.
func (h *Handler) Mode() string { return h.opt.Mode }

// Reply answers req; a nil reply means "stay silent". The error is for logging; a
// reply may still be nil or not. The reply shares byte slices with req and with
// other replies (option values the same in each are encoded once): read it, do not
// write into it.
func (h *Handler) Reply(ctx context.Context, req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, error) {
	return h.reply(ctx, req, true)
}

// errWouldWait is reply's error, with wait false, for a request whose answer needs
// a LeaseStore write; nothing has changed.
var errWouldWait = errors.New("dhcp: the answer waits for a lease write")

// reply is Reply; with wait false it answers only what needs no LeaseStore write
// (every DISCOVER and INFORM, a REQUEST that reuses its stored lease, a NAK) and
// returns errWouldWait for the rest, which the Server then answers on a goroutine
// of its own.
func (h *Handler) reply(ctx context.Context, req *dhcpv4.DHCPv4, wait bool) (*dhcpv4.DHCPv4, error) {
	if req.OpCode != dhcpv4.OpcodeBootRequest || len(req.ClientHWAddr) != 6 {
		return nil, nil
	}
	c := Classify(req)
	if h.opt.Mode == ModeProxy {
		return h.proxy(ctx, req, c), nil
	}
	return h.full(ctx, req, c, wait)
}

func (h *Handler) ours(req *dhcpv4.DHCPv4) (asked, ours bool) {
	sid := req.ServerIdentifier()
	if sid == nil || sid.IsUnspecified() {
		return false, false
	}
	return true, addrOf(sid) == h.opt.ServerIP
}

// proxy answers Pi bootloaders only, with boot options and no address.
func (h *Handler) proxy(ctx context.Context, req *dhcpv4.DHCPv4, c Client) *dhcpv4.DHCPv4 {
	if c.Kind != KindBootloader {
		return nil
	}
	var mt dhcpv4.MessageType
	switch messageType(req) {
	case dhcpv4.MessageTypeDiscover:
		mt = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		if _, ours := h.ours(req); !ours {
			return nil // the site's DHCP server answers this one
		}
		mt = dhcpv4.MessageTypeAck
	default:
		return nil
	}
	reply := newReply(req, mt)
	h.bootOptions(reply, req)
	h.record(ctx, Event{Type: eventName(mt), MAC: req.ClientHWAddr.String(), Client: c, Mode: ModeProxy})
	return reply
}

// DefaultOfferHold is Options.OfferHold's default.
const DefaultOfferHold = 5 * time.Second

// rangeSize is the number of addresses FIRST-LAST holds (capped at 1<<20).
func rangeSize(first, last netip.Addr) int {
	n := 1
	for a := first; a.IsValid() && a.Compare(last) < 0 && n < 1<<20; a = a.Next() {
		n++
	}
	return n
}

// isBoard says whether OnlyBoards lets req through: a Pi bootloader by options 60
// and 97, the agent by option 60, or a follow-up from a MAC a board holds an offer or
// lease for.
func (h *Handler) isBoard(req *dhcpv4.DHCPv4, c Client, mac string) bool {
	switch {
	case c.Kind == KindAgent:
		return true
	case c.Kind == KindBootloader && string(req.Options[dhcpv4.OptionClassIdentifier.Code()]) == PiClassID && (c.Model == "RPi5" || c.Model == "RPi4"):
		return true
	case messageType(req) == dhcpv4.MessageTypeDiscover || messageType(req) == dhcpv4.MessageTypeInform:
		return false
	}
	return h.pool.heldByBoard(mac)
}

// full answers req as the network's DHCP server (ModeFull): boards only when
// OnlyBoards is set, and a board's agent known by the NIC its bootloader used.
func (h *Handler) full(ctx context.Context, req *dhcpv4.DHCPv4, c Client, wait bool) (*dhcpv4.DHCPv4, error) {
	mac := req.ClientHWAddr.String()
	now := h.now()
	if h.opt.OnlyBoards && !h.isBoard(req, c, mac) {
		h.log.Debug("dhcp: not a board, ignored (only_boards)", "mac", mac, "type", req.MessageType().String(), "class", req.ClassIdentifier())
		return nil, nil
	}
	if c.Serial == "" {
		if l, ok := h.pool.lease(mac); ok {
			c.Serial = l.Serial // the agent's DHCP: same NIC, the board the bootloader named
		}
	}
	mt := messageType(req)
	if !wait && h.pool.store != nil && (mt == dhcpv4.MessageTypeRelease || mt == dhcpv4.MessageTypeDecline) {
		return nil, errWouldWait
	}
	switch mt {
	case dhcpv4.MessageTypeDiscover:
		return h.discover(ctx, req, c, mac, now)
	case dhcpv4.MessageTypeRequest:
		return h.request(ctx, req, c, mac, now, wait)
	case dhcpv4.MessageTypeRelease:
		return nil, h.release(ctx, req, c, mac)
	case dhcpv4.MessageTypeDecline:
		return nil, h.decline(ctx, req, c, mac, now)
	case dhcpv4.MessageTypeInform:
		return h.inform(req, c)
	}
	return nil, nil
}

// discover answers a DISCOVER from mac with an OFFER of an address the pool holds for
// it (the requested one when free).
func (h *Handler) discover(ctx context.Context, req *dhcpv4.DHCPv4, c Client, mac string, now time.Time) (*dhcpv4.DHCPv4, error) {
	ip, err := h.pool.offer(mac, c.Serial, c.Kind, addrOf(req.RequestedIPAddress()), now)
	if err != nil {
		return nil, fmt.Errorf("offer to %s: %w", mac, err)
	}
	reply := h.leaseReply(req, c, dhcpv4.MessageTypeOffer, ip, h.opt.LeaseTime)
	h.record(ctx, Event{Type: "dhcp offer", MAC: mac, IP: ip, Client: c, Mode: ModeFull})
	return reply, nil
}

// request answers a REQUEST (SELECTING, INIT-REBOOT, RENEWING or REBINDING): an ACK
// once the lease is bound in the store, a NAK for an address mac may not have, and
// nothing when the client chose another server, asks about another network, or the
// store fails (the client retries).
func (h *Handler) request(ctx context.Context, req *dhcpv4.DHCPv4, c Client, mac string, now time.Time, wait bool) (*dhcpv4.DHCPv4, error) {
	asked, ours := h.ours(req)
	if asked && !ours {
		h.pool.forgetOffer(mac) // it chose another server
		return nil, nil
	}
	ip := addrOf(req.RequestedIPAddress())
	if !ip.IsValid() || ip.IsUnspecified() {
		ip = addrOf(req.ClientIPAddr)
	}
	if !ip.IsValid() || ip.IsUnspecified() {
		return h.nak(ctx, req, c, "no address requested"), nil
	}
	l := Lease{MAC: mac, IP: ip, Serial: c.Serial, Kind: c.Kind, Hostname: req.HostName(), Expires: now.Add(h.opt.LeaseTime)}
	l, ok, err := h.pool.bind(ctx, l, now, wait)
	if err != nil {
		return nil, err // store failure: say nothing, the client retries
	}
	if !ok {
		if !asked && !h.onOurNetwork(ip) {
			return nil, nil // INIT-REBOOT for another network: not ours to judge
		}
		return h.nak(ctx, req, c, fmt.Sprintf("address %v is not available to %s", ip, mac)), nil
	}
	reply := h.leaseReply(req, c, dhcpv4.MessageTypeAck, ip, l.Expires.Sub(now)) // less than LeaseTime when reused
	h.record(ctx, Event{Type: "dhcp ack", MAC: mac, IP: ip, Client: c, Mode: ModeFull})
	return reply, nil
}

// release frees the lease of mac on the address the RELEASE names.
func (h *Handler) release(ctx context.Context, req *dhcpv4.DHCPv4, c Client, mac string) error {
	ip := addrOf(req.ClientIPAddr)
	if err := h.pool.release(ctx, mac, ip); err != nil {
		return err
	}
	h.record(ctx, Event{Type: "dhcp release", MAC: mac, IP: ip, Client: c, Mode: ModeFull})
	return nil
}

// decline marks the address a DECLINE names as in use by someone else for a lease time.
func (h *Handler) decline(ctx context.Context, req *dhcpv4.DHCPv4, c Client, mac string, now time.Time) error {
	ip := addrOf(req.RequestedIPAddress())
	if !ip.IsValid() {
		return nil
	}
	if err := h.pool.decline(ctx, mac, ip, now.Add(h.opt.LeaseTime)); err != nil {
		return err
	}
	h.record(ctx, Event{Type: "dhcp decline", MAC: mac, IP: ip, Client: c, Mode: ModeFull})
	return nil
}

// inform answers an INFORM with an ACK carrying the network's options and no address.
func (h *Handler) inform(req *dhcpv4.DHCPv4, c Client) (*dhcpv4.DHCPv4, error) {
	reply := newReply(req, dhcpv4.MessageTypeAck)
	setOptions(reply, h.network)
	h.clientOptions(reply, req, c)
	return reply, nil
}

func (h *Handler) onOurNetwork(ip netip.Addr) bool {
	n := net.IPNet{IP: ip4(h.opt.ServerIP).Mask(h.opt.Netmask), Mask: h.opt.Netmask}
	return ip.Is4() && n.Contains(ip4(ip))
}

func (h *Handler) nak(ctx context.Context, req *dhcpv4.DHCPv4, c Client, why string) *dhcpv4.DHCPv4 {
	reply := newReply(req, dhcpv4.MessageTypeNak)
	reply.UpdateOption(dhcpv4.OptServerIdentifier(ip4(h.opt.ServerIP)))
	reply.UpdateOption(dhcpv4.OptMessage(why))
	h.record(ctx, Event{Type: "dhcp nak", MAC: req.ClientHWAddr.String(), Client: c, Mode: ModeFull, Reason: why})
	return reply
}

// leaseReply builds an OFFER or ACK for ip, a lease of lt, with the lease options
// dnsmasq sends (54, 51, 58, 59, 1, 28, 3) and the client-specific ones.
func (h *Handler) leaseReply(req *dhcpv4.DHCPv4, c Client, mt dhcpv4.MessageType, ip netip.Addr, lt time.Duration) *dhcpv4.DHCPv4 {
	reply := newReply(req, mt)
	reply.YourIPAddr = ip4(ip)
	h.setLeaseOptions(reply, lt)
	setOptions(reply, h.network)
	h.clientOptions(reply, req, c)
	return reply
}

func (h *Handler) clientOptions(reply, req *dhcpv4.DHCPv4, c Client) {
	switch c.Kind {
	case KindBootloader:
		h.bootOptions(reply, req)
	case KindAgent:
		setOptions(reply, h.agent)
	}
}

// bootOptions adds what the Pi bootloader needs: siaddr, 54, 60 "PXEClient", 97 echoed,
// 43 = PXEMenu, and 66 = the TFTP server in dotted form (read by the Pi 4, harmless to
// the Pi 5, which reads siaddr).
func (h *Handler) bootOptions(reply, req *dhcpv4.DHCPv4) {
	reply.ServerIPAddr = h.tftpIP
	setOptions(reply, h.boot)
	if v := req.GetOneOption(dhcpv4.OptionClientMachineIdentifier); v != nil {
		reply.Options[dhcpv4.OptionClientMachineIdentifier.Code()] = v
	}
}

func (h *Handler) record(ctx context.Context, ev Event) {
	if h.log.Enabled(ctx, slog.LevelDebug) { // the arguments cost allocations on every offer otherwise
		h.log.Debug("dhcp", "event", ev.Type, "mac", ev.MAC, "ip", ev.IP, "kind", ev.Client.Kind, "serial", ev.Client.Serial)
	}
	if h.opt.Recorder != nil {
		h.opt.Recorder.RecordDHCP(ctx, ev)
	}
}

func eventName(mt dhcpv4.MessageType) string {
	switch mt {
	case dhcpv4.MessageTypeOffer:
		return "dhcp offer"
	case dhcpv4.MessageTypeAck:
		return "dhcp ack"
	case dhcpv4.MessageTypeNak:
		return "dhcp nak"
	}
	return "dhcp " + mt.String()
}

// LeaseByIP returns the current lease of ip (full mode), so that TFTP can tell which
// board asks for a file without a prefix.
func (h *Handler) LeaseByIP(ip netip.Addr) (Lease, bool) {
	if h.pool == nil {
		return Lease{}, false
	}
	return h.pool.leaseByIP(ip, h.now())
}
