//go:build linux

// Package netboot wires rpi-deployd's DHCP and TFTP servers (server/dhcp,
// server/tftp) to the rest of the server: configuration and flags, start-up checks,
// leases in the SQLite store, and board events through the domain layer, which puts
// them into the board's history and the live event stream.
package netboot

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rpi-deploy/rpi-deploy/server/dhcp"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/store"
	"github.com/rpi-deploy/rpi-deploy/server/tftp"
)

// Boards receives netboot events (domain.Service does).
type Boards interface {
	RecordNetboot(ctx context.Context, e domain.NetbootEvent) error
}

// Deps are what netboot needs from the server.
type Deps struct {
	Store    *store.Store // leases (full mode)
	Site     string       // the server's site: its leases are kept apart from other sites'; "" = domain.DefaultSite
	Boards   Boards       // nil records nothing
	Logger   *slog.Logger // nil discards
	HTTPPort int          // port of the HTTP listener, for the default agent URL
}

// Services are the running DHCP and TFTP servers (either may be absent).
type Services struct {
	dhcp     *dhcp.Server
	handler  *dhcp.Handler
	tftp     *tftp.Server
	rec      *recorder
	leases   *heldLeases // full mode with a store: lease writes held while the database is unreachable
	AgentURL string      // what boards are told (cmdline.txt, option 224)
	log      *slog.Logger

	onlyBoards bool
}

// Start checks the configuration against the system (interface, addresses, ports,
// TFTP root) and opens the sockets. Errors say what to fix.
func Start(ctx context.Context, c Config, d Deps) (*Services, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Services{log: log, AgentURL: c.AgentURL, onlyBoards: c.OnlyBoards}
	s.rec = newRecorder(d.Boards, log)

	var ifc dhcp.Interface
	if c.DHCPInterface != "" {
		var err error
		if ifc, err = dhcp.LookupInterface(c.DHCPInterface); err != nil {
			return nil, err
		}
		if s.AgentURL == "" && d.HTTPPort > 0 {
			s.AgentURL = "http://" + net.JoinHostPort(ifc.IP.String(), strconv.Itoa(d.HTTPPort))
		}
	}
	if c.TFTPRoot != "" {
		if err := tftp.CheckRoot(c.TFTPRoot); err != nil {
			return nil, err
		}
	}
	if c.mode() != dhcp.ModeOff {
		if err := s.startDHCP(ctx, c, d, ifc); err != nil {
			return nil, err
		}
	}
	if c.TFTPRoot != "" {
		if err := s.startTFTP(c); err != nil {
			s.close()
			return nil, err
		}
	}
	if s.tftp != nil && s.AgentURL == "" {
		log.Warn("netboot: no agent URL (set netboot.agent_url or --dhcp-interface): cmdline.txt will carry no rpideploy.server")
	}
	return s, nil
}

// dhcpOptions turns the validated configuration into the DHCP handler's options.
func (s *Services) dhcpOptions(c Config, d Deps, ifc dhcp.Interface) dhcp.Options {
	mode := c.mode()
	o := dhcp.Options{Mode: mode, ServerIP: ifc.IP, Netmask: ifc.Netmask, Reservations: c.Reservations,
		AgentURL: s.AgentURL, Recorder: s.rec, Logger: s.log}
	if mode == dhcp.ModeFull {
		o.RangeFirst, o.RangeLast, _ = ParseRange(c.DHCPRange)
		if d.Store != nil {
			site := d.Site
			if site == "" {
				site = domain.DefaultSite
			}
			o.Leases = leaseStore{d.Store, site}
		}
	}
	if c.LeaseTime != "" {
		o.LeaseTime, _ = time.ParseDuration(c.LeaseTime)
	}
	if c.LeaseReuse != "" {
		o.LeaseReuse, _ = time.ParseDuration(c.LeaseReuse)
		if o.LeaseReuse == 0 {
			o.LeaseReuse = -1 // "0s": off (0 in dhcp.Options is the default)
		}
	}
	if c.OfferHold != "" {
		o.OfferHold, _ = time.ParseDuration(c.OfferHold)
	}
	o.OnlyBoards, o.MaxOffers = c.OnlyBoards, c.MaxOffers
	if c.Router != "" {
		o.Router = netip.MustParseAddr(c.Router)
	}
	for _, a := range c.DNS {
		o.DNS = append(o.DNS, netip.MustParseAddr(a))
	}
	return o
}

// startDHCP builds the DHCP handler and opens its socket on the configured interface.
func (s *Services) startDHCP(ctx context.Context, c Config, d Deps, ifc dhcp.Interface) error {
	o := s.dhcpOptions(c, d, ifc)
	if o.Leases != nil {
		s.leases = &heldLeases{next: o.Leases, log: s.log}
		o.Leases = s.leases
	}
	h, err := dhcp.NewHandler(ctx, o)
	if err != nil {
		return err
	}
	srv, err := dhcp.Listen(h, c.DHCPInterface, 0, s.log)
	if err != nil {
		return err
	}
	s.dhcp, s.handler = srv, h
	return nil
}

// startTFTP builds the TFTP server and opens its socket (default 0.0.0.0:69).
func (s *Services) startTFTP(c Config) error {
	timeout, _ := time.ParseDuration(c.TFTPTimeout) // checked by Validate; "" → 0 → default
	t, err := tftp.New(tftp.Options{Root: c.TFTPRoot, ServerURL: s.AgentURL, Cmdline: c.Cmdline, Console: c.Console,
		ConfigExtra: c.ConfigTxt, Boards: leaseBoards{s}, Recorder: s.rec, Logger: s.log,
		Timeout: timeout, Retries: c.TFTPRetries, MaxTransfers: c.TFTPMaxTransfers, MaxPerClient: c.TFTPMaxPerClient})
	if err != nil {
		return err
	}
	addr := c.TFTPListen
	if addr == "" {
		addr = "0.0.0.0:69"
	}
	if err := t.Listen(addr, c.DHCPInterface); err != nil {
		return err
	}
	s.tftp = t
	return nil
}

func (s *Services) close() {
	if s.dhcp != nil {
		s.dhcp.Close()
	}
}

// Describe is one line for the start-up log.
func (s *Services) Describe() []any {
	var kv []any
	if s.dhcp != nil {
		kv = append(kv, "dhcp", s.handler.Mode(), "dhcp_addr", s.dhcp.LocalAddr().String())
		if s.onlyBoards {
			kv = append(kv, "dhcp_only_boards", true)
		}
	} else {
		kv = append(kv, "dhcp", "off")
	}
	if s.tftp != nil {
		kv = append(kv, "tftp", s.tftp.LocalAddr().String())
	} else {
		kv = append(kv, "tftp", "off")
	}
	return append(kv, "agent_url", s.AgentURL)
}

// Serve runs the servers until ctx ends; then it closes their sockets and returns nil.
// Board events are recorded until both servers have stopped (the TFTP server lets
// running transfers end first), so an event of a reply that went out is never lost.
func (s *Services) Serve(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { <-ctx.Done(); return nil }) // until ctx ends, with or without servers
	if s.dhcp != nil {
		g.Go(func() error { return s.dhcp.Serve(ctx) })
	}
	if s.tftp != nil {
		g.Go(func() error { return s.tftp.Serve(ctx) })
	}
	if s.leases != nil {
		g.Go(func() error { return s.leases.run(ctx) })
	}
	stopped := make(chan struct{})
	var err error
	go func() {
		err = g.Wait()
		close(stopped)
	}()
	s.rec.run(ctx, stopped)
	return err
}

// leaseStore adapts the store to dhcp.LeaseStore: the leases of one site (one
// deploy network).
type leaseStore struct {
	st   *store.Store
	site string
}

func (l leaseStore) LoadLeases(ctx context.Context) ([]dhcp.Lease, error) {
	rows, err := l.st.DHCPLeases(ctx, l.site)
	if err != nil {
		return nil, err
	}
	out := make([]dhcp.Lease, 0, len(rows))
	for _, r := range rows {
		ip, err := netip.ParseAddr(r.IP)
		if err != nil {
			continue
		}
		out = append(out, dhcp.Lease{MAC: r.MAC, IP: ip, Serial: r.Serial, Kind: r.Kind, Hostname: r.Hostname, Expires: r.ExpiresAt})
	}
	return out, nil
}

func (l leaseStore) PutLease(ctx context.Context, x dhcp.Lease) error {
	return l.st.PutDHCPLease(ctx, l.site, store.DHCPLease{MAC: x.MAC, IP: x.IP.String(), Serial: x.Serial, Kind: x.Kind,
		Hostname: x.Hostname, ExpiresAt: x.Expires})
}

func (l leaseStore) DeleteLease(ctx context.Context, mac string) error {
	return l.st.DeleteDHCPLease(ctx, l.site, mac)
}

// leaseBoards tells TFTP which board has an address, from the DHCP leases.
type leaseBoards struct{ s *Services }

func (b leaseBoards) BoardByIP(_ context.Context, ip netip.Addr) (tftp.Board, bool) {
	if b.s.handler == nil {
		return tftp.Board{}, false
	}
	l, ok := b.s.handler.LeaseByIP(ip)
	if !ok {
		return tftp.Board{}, false
	}
	return tftp.Board{Serial: l.Serial, MAC: l.MAC}, true
}

// recorder turns DHCP and TFTP events into domain netboot events. It queues them so
// that a slow database never delays a DHCP reply or a TFTP block; when the queue is
// full, events are dropped and counted in the log.
type recorder struct {
	boards  Boards
	log     *slog.Logger
	q       chan domain.NetbootEvent
	dropped atomic.Int64
}

func newRecorder(b Boards, log *slog.Logger) *recorder {
	return &recorder{boards: b, log: log, q: make(chan domain.NetbootEvent, 4096)}
}

// run records queued events until stopped is closed, then what is still queued. ctx
// ending does not interrupt it: events are written with a context that outlives ctx.
func (r *recorder) run(ctx context.Context, stopped <-chan struct{}) {
	ctx = context.WithoutCancel(ctx)
	for {
		select {
		case <-stopped:
			for { // flush what is queued
				select {
				case e := <-r.q:
					r.deliver(ctx, e)
				default:
					return
				}
			}
		case e := <-r.q:
			r.deliverWaiting(ctx, e, stopped)
		}
	}
}

// deliverWaiting delivers e; while the database is unavailable it tries again
// every heldRetry (the queue holds the events coming meanwhile, up to its size)
// until it is back or stopped is closed.
func (r *recorder) deliverWaiting(ctx context.Context, e domain.NetbootEvent, stopped <-chan struct{}) {
	for waited := false; ; waited = true {
		err := r.boards.RecordNetboot(ctx, e)
		if !errors.Is(err, store.ErrUnavailable) {
			if waited && err == nil {
				r.log.Info("netboot: database back; recording board events again")
			}
			r.logFailure(e, err)
			return
		}
		if !waited {
			r.log.Warn("netboot: database unavailable; board events wait in the queue", "err", err)
		}
		select {
		case <-stopped:
			r.logFailure(e, err)
			return
		case <-time.After(heldRetry):
		}
	}
}

func (r *recorder) deliver(ctx context.Context, e domain.NetbootEvent) {
	r.logFailure(e, r.boards.RecordNetboot(ctx, e))
}

func (r *recorder) logFailure(e domain.NetbootEvent, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		r.log.Warn("netboot: record board event", "kind", e.Kind, "serial", e.Serial, "mac", e.MAC, "err", err)
	}
}

func (r *recorder) enqueue(e domain.NetbootEvent) {
	if r.boards == nil || (e.Serial == "" && e.MAC == "") {
		return
	}
	select {
	case r.q <- e:
	default:
		if n := r.dropped.Add(1); n%100 == 1 {
			r.log.Warn("netboot: event queue full, dropping board events", "dropped", n)
		}
	}
}

// DHCP kinds beyond the domain's constants.
const (
	kindDHCPNak     = "dhcp.nak"
	kindDHCPRelease = "dhcp.release"
	kindDHCPDecline = "dhcp.decline"
	kindTFTPMissing = "tftp.missing"
	kindTFTPRefused = "tftp.refused"
	kindTFTPStart   = "tftp.start" // a multi-block transfer got past block 1; Bytes is the file size
)

// dhcpKinds maps dhcp.Event types to board event kinds (one map, not one per event:
// RecordDHCP runs for every offer).
var dhcpKinds = map[string]string{
	"dhcp offer": domain.NetbootDHCPOffer, "dhcp ack": domain.NetbootDHCPAck, "dhcp nak": kindDHCPNak,
	"dhcp release": kindDHCPRelease, "dhcp decline": kindDHCPDecline,
}

func (r *recorder) RecordDHCP(_ context.Context, ev dhcp.Event) {
	kind := dhcpKinds[ev.Type]
	if kind == "" || (ev.Client.Kind == dhcp.KindOther && ev.Client.Serial == "") {
		return // not a board: a laptop or a load generator on the deployment network
	}
	e := domain.NetbootEvent{Serial: ev.Client.Serial, MAC: ev.MAC, Kind: kind, Error: ev.Reason}
	if ev.IP.IsValid() {
		e.IP = ev.IP.String()
	}
	r.enqueue(e)
}

// bootFiles are the files whose absence stops a Pi 5 from booting our initramfs; a
// missing one is worth a line on the board's record (other misses, like pieeprom.sig,
// are the bootloader's normal probing).
var bootFiles = map[string]bool{tftp.KernelFile: true, tftp.InitramfsFile: true, "config.txt": true,
	"cmdline.txt": true, "bcm2712-rpi-5-b.dtb": true}

func (r *recorder) RecordTFTP(_ context.Context, ev tftp.Event) {
	e := domain.NetbootEvent{Serial: ev.Board.Serial, MAC: ev.Board.MAC, File: ev.File, Bytes: ev.Bytes, Duration: ev.Duration}
	switch {
	case ev.Started:
		e.Kind, e.Bytes = kindTFTPStart, ev.Size
	case ev.Probe:
		r.log.Debug("tftp probe", "file", ev.Name, "remote", ev.Remote.String())
		return
	case ev.Err == nil:
		e.Kind = domain.NetbootTFTPFile
	case errors.Is(ev.Err, tftp.ErrRefused):
		e.Kind, e.Error, e.File = kindTFTPRefused, ev.Err.Error(), ev.Name
	case ev.Size < 0:
		if !bootFiles[ev.File] {
			r.log.Debug("tftp file not found", "file", ev.Name, "remote", ev.Remote.String())
			return
		}
		e.Kind, e.Error = kindTFTPMissing, "not in the TFTP root"
	default:
		e.Kind, e.Error = domain.NetbootTFTPFailed, ev.Err.Error()
	}
	r.enqueue(e)
}
