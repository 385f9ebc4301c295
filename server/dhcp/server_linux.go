package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/rpi-deploy/rpi-deploy/server/netcheck"
)

// Server puts a Handler on one interface: UDP 0.0.0.0:67 bound to the device for
// receiving and for broadcast/unicast-UDP replies, an AF_PACKET socket for unicast
// replies to clients that have no address yet.
type Server struct {
	h      *Handler
	ifc    *net.Interface
	srcIP  net.IP
	conn   *net.UDPConn
	udp    syscall.RawConn // conn's
	raw    *os.File        // the AF_PACKET socket (non-blocking, in the runtime's poller)
	rawc   syscall.RawConn // raw's
	log    *slog.Logger
	ipID   atomic.Uint32
	closed atomic.Bool
}

// Interface describes the boot network interface: its address and netmask.
type Interface struct {
	Name    string
	IP      netip.Addr
	Netmask net.IPMask
}

// LookupInterface checks that the named interface exists, is up and has an IPv4
// address, and returns its first IPv4 address and netmask.
func LookupInterface(name string) (Interface, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return Interface{}, fmt.Errorf("dhcp interface %q: %w", name, err)
	}
	if ifc.Flags&net.FlagUp == 0 {
		return Interface{}, fmt.Errorf("dhcp interface %q is down (ip link set %s up)", name, name)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return Interface{}, fmt.Errorf("dhcp interface %q: addresses: %w", name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			ip, _ := netip.AddrFromSlice(n.IP.To4())
			return Interface{Name: name, IP: ip, Netmask: net.IPMask(n.Mask[len(n.Mask)-4:])}, nil
		}
	}
	return Interface{}, fmt.Errorf("dhcp interface %q has no IPv4 address (give it one, e.g. ip addr add 10.42.0.1/24 dev %s)", name, name)
}

// Listen opens the sockets of a DHCP server for h on interface ifname (port 67 unless
// port is non-zero, for tests). A port already taken is reported with its holder
// when /proc tells who it is.
func Listen(h *Handler, ifname string, port int, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if port == 0 {
		port = dhcpv4.ServerPort
	}
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("dhcp interface %q: %w", ifname, err)
	}
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// No SO_REUSEADDR/SO_REUSEPORT: a second DHCP server on this port must fail
			// to bind, not silently share the requests with us.
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			serr = unix.BindToDevice(int(fd), ifname)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("dhcp: UDP port %d on %s is already taken%s: %w", port, ifname, netcheck.UDPPortHolder(port), err)
		}
		return nil, fmt.Errorf("dhcp: listen on UDP port %d on %s: %w", port, ifname, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0) // protocol 0: send only
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("dhcp: open packet socket (needs CAP_NET_RAW): %w", err)
	}
	s := &Server{h: h, ifc: ifc, srcIP: ip4(h.opt.ServerIP), conn: pc.(*net.UDPConn), raw: os.NewFile(uintptr(fd), "packet"), log: log}
	if s.udp, err = s.conn.SyscallConn(); err == nil {
		s.rawc, err = s.raw.SyscallConn()
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("dhcp: %w", err)
	}
	return s, nil
}

// Serve answers requests until ctx is cancelled, then closes the sockets and returns nil.
//
// One goroutine reads the requests and answers those that need no lease store
// write itself, one after the other: no goroutine to start and no other thread to
// wake per packet (see sock_linux.go). That is every DISCOVER and INFORM, proxy
// mode, and a REQUEST that reuses its stored lease (Options.LeaseReuse). A request
// that writes the store (a REQUEST that binds, RELEASE, DECLINE in full mode) is
// answered on a goroutine of its own, so that a slow database delays only the
// requests that wait for it. Serve returns once those have ended too: their store
// writes see ctx cancelled.
func (s *Server) Serve(ctx context.Context) error {
	var handlers sync.WaitGroup
	defer handlers.Wait()
	ctx, cancel := context.WithCancel(ctx) // also when the loop ends on a read error
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	defer s.Close()
	buf := make([]byte, 4096) // larger than any DHCP message a client sends (RFC 2131: 576 unless option 57 says more)
	rd, in := newReader(s.udp), new(inbox)
	for {
		n, from, err := rd.read(buf)
		if err != nil {
			if s.closed.Load() {
				return nil
			}
			return fmt.Errorf("dhcp: serve: %w", err)
		}
		req, err := in.parse(buf[:n]) // copies what it keeps: buf is reused
		if err != nil {
			s.log.Debug("dhcp: malformed packet", "from", from.String(), "err", err)
			continue
		}
		reply, err := s.h.reply(ctx, req, false)
		if errors.Is(err, errWouldWait) {
			in = new(inbox) // req is the goroutine's
			handlers.Go(func() {
				reply, err := s.h.Reply(ctx, req)
				s.answer(from, req, reply, err)
			})
			continue
		}
		s.answer(from, req, reply, err)
	}
}

// Close closes the sockets.
func (s *Server) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	err := s.conn.Close()
	s.raw.Close()
	return err
}

// LocalAddr is the UDP address the server listens on.
func (s *Server) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// answer sends the Handler's reply to req, if any, and logs its error. The reply
// goes back to newReply's pool.
func (s *Server) answer(peer netip.AddrPort, req, reply *dhcpv4.DHCPv4, err error) {
	if err != nil {
		s.log.Warn("dhcp request", "mac", req.ClientHWAddr.String(), "type", req.MessageType().String(), "err", err)
	}
	if reply == nil {
		return
	}
	if err := s.send(req, reply, peer); err != nil {
		s.log.Warn("dhcp reply", "mac", req.ClientHWAddr.String(), "type", reply.MessageType().String(), "err", err)
	}
	releaseReply(reply)
}

// send delivers reply like dnsmasq does (RFC 2131 §4.1).
func (s *Server) send(req, reply *dhcpv4.DHCPv4, peer netip.AddrPort) error {
	w := senders.Get().(*sender)
	defer senders.Put(w)
	f := appendMessage(w.buf[:frameHeaders], reply) // the message where a frame carries it
	w.buf = f[:0]                                   // keep what append grew
	b := f[frameHeaders:]
	port := clientPort(peer)
	switch {
	case !req.GatewayIPAddr.IsUnspecified() && req.GatewayIPAddr != nil:
		return w.sendTo(s.udp, b, netip.AddrPortFrom(addrOf(req.GatewayIPAddr), dhcpv4.ServerPort))
	case messageType(reply) == dhcpv4.MessageTypeNak:
		return w.sendTo(s.udp, b, netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), dhcpv4.ClientPort))
	case !req.ClientIPAddr.IsUnspecified() && req.ClientIPAddr != nil:
		return w.sendTo(s.udp, b, netip.AddrPortFrom(addrOf(req.ClientIPAddr), port))
	case req.IsBroadcast():
		return w.sendTo(s.udp, b, netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), port))
	}
	dst := reply.YourIPAddr
	if dst == nil || dst.IsUnspecified() {
		dst = net.IPv4bcast // proxy offer: no address to send to, but still only to this MAC
	}
	udpFrame(f, req.ClientHWAddr, s.ifc.HardwareAddr, s.srcIP, dst, dhcpv4.ServerPort, port, uint16(s.ipID.Add(1)))
	if err := w.sendFrame(s.rawc, f, s.ifc.Index, [6]byte(req.ClientHWAddr)); err != nil {
		return fmt.Errorf("send to %s on %s: %w", req.ClientHWAddr, s.ifc.Name, err)
	}
	return nil
}

// clientPort is 68 unless the client sent from another port (perfdhcp and tests do).
func clientPort(peer netip.AddrPort) uint16 {
	if p := peer.Port(); p != 0 && p != dhcpv4.ServerPort {
		return p
	}
	return dhcpv4.ClientPort
}
