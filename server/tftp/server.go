//go:build linux

package tftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pin/tftp/v3"
	"golang.org/x/sys/unix"

	"github.com/rpi-deploy/rpi-deploy/server/internal/lograte"
	"github.com/rpi-deploy/rpi-deploy/server/netcheck"
)

// Event is one TFTP read, finished or not.
type Event struct {
	Name     string         // as requested, e.g. "abcd1234/kernel_2712.img"
	File     string         // the file below the prefix, e.g. "kernel_2712.img"
	Board    Board          // from the prefix, else from the Boards lookup
	Remote   netip.AddrPort // the client
	Size     int64          // bytes of the file; -1 when it was not found
	Bytes    int64          // bytes sent
	Duration time.Duration
	Probe    bool  // the client stopped after block 1 ("Early terminate"): it only checked the file exists
	Started  bool  // not the end: the client acknowledged block 1 and the transfer goes on
	Err      error // nil on success and for probes; wraps ErrRefused for refused names
}

// Recorder receives an Event for every read request when it ends, and one with Started
// set when a transfer of more than one block gets past block 1 (so that a board stuck
// in a long transfer shows which file it is on).
type Recorder interface {
	RecordTFTP(ctx context.Context, ev Event)
}

// Boards tells which board has an address (from DHCP leases), for requests without a
// prefix and to put the MAC into cmdline.txt.
type Boards interface {
	BoardByIP(ctx context.Context, ip netip.Addr) (Board, bool)
}

// Options configures a Server. The zero value of a field means its documented default.
type Options struct {
	Root        string        // the TFTP root (required)
	ServerURL   string        // rpideploy.server= in generated cmdline.txt
	Cmdline     string        // start of generated cmdline.txt; default CmdlineFor(Console)
	Console     string        // ConsoleHDMI (default) or ConsoleSerial: which console is last; only without Cmdline
	ConfigExtra string        // extra lines at the end of generated config.txt
	Timeout     time.Duration // per datagram round trip; default 5s
	Retries     int           // per datagram; default 5
	// MaxTransfers caps the transfers running at once (each holds a UDP socket until
	// the client's last ACK, or until Timeout × (Retries+1) passes without one).
	// Requests beyond it are answered with an ERROR "server busy" at once. Addresses
	// that Boards does not know share three quarters of it; the rest is kept for
	// boards with a DHCP lease. Default DefaultMaxTransfers.
	MaxTransfers int
	// MaxPerClient caps the transfers running at once for one client IP address (a
	// Pi's bootloader reads one file at a time). Default DefaultMaxPerClient.
	MaxPerClient int
	Boards       Boards       // nil: boards are known by their prefix only
	Recorder     Recorder     // nil records nothing
	Logger       *slog.Logger // nil discards
}

// Defaults of Options.
const (
	DefaultMaxTransfers = 256
	DefaultMaxPerClient = 8
)

// ErrBusy is the error a request gets (as an ERROR packet) when MaxTransfers or
// MaxPerClient transfers are running.
var ErrBusy = errors.New("server busy: too many transfers at once, try again")

// Server serves the TFTP root read-only.
type Server struct {
	opt     Options
	root    *os.Root
	srv     *tftp.Server
	log     *slog.Logger
	conn    *net.UDPConn
	ifname  string // Listen's interface binding ("": none)
	closing atomic.Bool
	stopped chan struct{} // closed by stopHook once pin's loop closed the socket
	stopOne sync.Once
	slots   *slots
	busy    lograte.Counter
}

// New opens the root. It does not check the boot files (CheckRoot does).
func New(o Options) (*Server, error) {
	if o.Root == "" {
		return nil, errors.New("tftp: no root directory")
	}
	if o.Cmdline == "" {
		base, err := CmdlineFor(o.Console)
		if err != nil {
			return nil, err
		}
		o.Cmdline = base
	} else if o.Console != "" {
		return nil, fmt.Errorf("tftp: console %q and cmdline %q: set one (cmdline names its own console= entries)", o.Console, o.Cmdline)
	}
	root, err := os.OpenRoot(o.Root)
	if err != nil {
		return nil, fmt.Errorf("tftp root: %w", err)
	}
	if o.MaxTransfers <= 0 {
		o.MaxTransfers = DefaultMaxTransfers
	}
	if o.MaxPerClient <= 0 {
		o.MaxPerClient = DefaultMaxPerClient
	}
	s := &Server{opt: o, root: root, log: o.Logger, slots: newSlots(o.MaxTransfers, o.MaxPerClient)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.srv = tftp.NewServer(s.read, nil)
	if o.Timeout > 0 {
		s.srv.SetTimeout(o.Timeout)
	}
	if o.Retries > 0 {
		s.srv.SetRetries(o.Retries)
	}
	s.stopped = make(chan struct{})
	s.srv.SetHook(stopHook{s})
	return s, nil
}

// CheckRoot reports what a Pi 5 needs and the root lacks: kernel_2712.img, a bcm2712
// device tree and our initramfs (initramfs_2712).
func CheckRoot(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("tftp root %q: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("tftp root %q is not a directory", dir)
	}
	var missing []string
	for _, f := range []string{KernelFile, InitramfsFile} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || !st.Mode().IsRegular() {
			missing = append(missing, f)
		}
	}
	if dtbs, _ := filepath.Glob(filepath.Join(dir, "bcm2712*.dtb")); len(dtbs) == 0 {
		missing = append(missing, "bcm2712-rpi-5-b.dtb (any bcm2712*.dtb)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("tftp root %q lacks %s (build it with: rpi-deployd tftproot --image IMAGE --initramfs FILE --out %s)", dir, strings.Join(missing, ", "), dir)
	}
	return nil
}

// Listen opens UDP port addr ("0.0.0.0:69", "127.0.0.1:0", …), bound to ifname when
// it is not empty. A port already taken is reported with its holder when /proc tells.
func (s *Server) Listen(addr, ifname string) error {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// pin/tftp turns IP_PKTINFO on in Serve; a request queued before that has no
			// interface info and gets blksize 512. Turn it on before the first packet.
			if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1); serr != nil || ifname == "" {
				return
			}
			serr = unix.BindToDevice(int(fd), ifname)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			_, port, _ := net.SplitHostPort(addr)
			var p int
			fmt.Sscan(port, &p)
			return fmt.Errorf("tftp: UDP port %s is already taken%s: %w", port, netcheck.UDPPortHolder(p), err)
		}
		return fmt.Errorf("tftp: listen on %s: %w", addr, err)
	}
	s.conn = pc.(*net.UDPConn)
	s.ifname = ifname
	return nil
}

// Transfers is the number of transfers running (holding a slot).
func (s *Server) Transfers() int { return s.slots.running() }

// LocalAddr is the address Listen bound.
func (s *Server) LocalAddr() *net.UDPAddr { return s.conn.LocalAddr().(*net.UDPAddr) }

// Serve answers requests until ctx is cancelled; then it stops taking requests, waits
// for running transfers (each ends within Timeout×Retries) and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	if s.conn == nil {
		return errors.New("tftp: Serve before Listen")
	}
	// The stop packet's socket is made here, on the caller's goroutine: in the
	// network namespace the server runs in (tests run servers in namespaces they
	// made; the AfterFunc below runs on a goroutine of its own).
	stopper, err := s.stopSender()
	if err != nil {
		s.log.Warn("tftp: no socket for the stop packet; shutdown will close from outside", "err", err)
	}
	shutDown := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(shutDown)
		s.closing.Store(true)
		// pin/tftp v3.1.0's Shutdown closes the socket, then waits for running
		// transfers; but a request its loop read just before the close still starts a
		// transfer after that wait began (a WaitGroup Add racing Wait: the race
		// detector flags it, and the transfer outlives Shutdown). So the socket is
		// closed by pin's loop itself: a stop packet sent to the socket reaches the
		// loop after every request read before it, and the hook the loop calls for it
		// closes the socket before the loop can read again (stopHook). Only then does
		// Shutdown wait, with no transfer left to start.
		if err := s.stopLoop(stopper); err != nil {
			s.log.Warn("tftp: stop the request loop from inside; closing from outside", "err", err)
			s.conn.Close()
		}
		s.srv.Shutdown()
	})
	if stopper != nil {
		defer stopper.Close()
	}
	serveErr := s.srv.Serve(s.conn)
	if !stop() {
		<-shutDown // pin's Serve returns before Shutdown has waited for the transfers
	}
	s.root.Close()
	if s.closing.Load() {
		return nil
	}
	return serveErr
}

// stopPacket is the datagram stopLoop sends to the server's own socket: opcode 0xFFFF,
// which no TFTP packet has, so pin's loop reports it to the hook as
// stopPacketErr without starting anything.
var stopPacket = []byte{0xff, 0xff}

const stopPacketErr = "unknown opcode: 65535"

// stopResend and stopGiveUp: stopLoop sends the stop packet again every stopResend
// (a full socket buffer drops it) and gives up after stopGiveUp.
const (
	stopResend = 100 * time.Millisecond
	stopGiveUp = 10 * time.Second
)

// stopSender is a UDP socket connected to an address at which the server's socket
// receives datagrams from this host (selfAddr).
func (s *Server) stopSender() (*net.UDPConn, error) {
	dst, err := s.selfAddr()
	if err != nil {
		return nil, err
	}
	c, err := net.DialUDP("udp4", nil, dst)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", dst, err)
	}
	return c, nil
}

// stopLoop sends stopPacket through c until pin's loop has read one and closed the
// socket (see stopHook), and returns then.
func (s *Server) stopLoop(c *net.UDPConn) error {
	if c == nil {
		return errors.New("no socket for the stop packet")
	}
	resend := time.NewTicker(stopResend)
	defer resend.Stop()
	giveUp := time.After(stopGiveUp)
	for {
		if _, err := c.Write(stopPacket); err != nil {
			return fmt.Errorf("send the stop packet to %s: %w", c.RemoteAddr(), err)
		}
		select {
		case <-s.stopped:
			return nil
		case <-resend.C:
		case <-giveUp:
			return fmt.Errorf("no stop packet came back through %s in %v", c.RemoteAddr(), stopGiveUp)
		}
	}
}

// selfAddr is an address at which the server's socket receives a datagram from this
// host: its own address; for a wildcard bind, the bound interface's IPv4 address or,
// without one, 127.0.0.1 (a datagram to an interface's own address is received as
// coming in on that interface, so an interface binding lets it through).
func (s *Server) selfAddr() (*net.UDPAddr, error) {
	la := s.LocalAddr()
	if !la.IP.IsUnspecified() {
		return la, nil
	}
	if s.ifname == "" {
		return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: la.Port}, nil
	}
	ifi, err := net.InterfaceByName(s.ifname)
	if err != nil {
		return nil, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return &net.UDPAddr{IP: n.IP.To4(), Port: la.Port}, nil
		}
	}
	return nil, fmt.Errorf("interface %q has no IPv4 address", s.ifname)
}

// read is the pin/tftp read handler: a transfer slot, the name parsed, the board
// named, the file opened or generated, then sent; every answered request is recorded.
func (s *Server) read(raw string, rf io.ReaderFrom) error {
	ctx := context.Background()
	start := time.Now()
	ot := rf.(tftp.OutgoingTransfer)
	ra := ot.RemoteAddr()
	remote := netip.AddrPortFrom(addrOf(ra.IP), uint16(ra.Port))
	ev := Event{Name: raw, Remote: remote, Size: -1}
	log := s.log.With("remote", remote.String(), "file", raw)

	leased, known, ok := s.takeSlot(ctx, remote)
	if !ok {
		return failSafe(rf, ra, ErrBusy)
	}
	defer s.slots.release(remote.Addr())

	n, err := ParseName(raw)
	if err != nil {
		ev.Err = err
		log.Warn("tftp request refused", "err", err)
		s.record(ctx, ev, start)
		return failSafe(rf, ra, err)
	}
	ev.File = n.File
	generated := n.File == "config.txt" || n.File == "cmdline.txt"
	ev.Board = Board{Serial: n.Serial(), MAC: n.MAC()}
	if known {
		ev.Board = mergeLeased(log, ev.Board, leased, generated)
	}
	r, f, err := s.content(log, n, generated, &ev)
	if err != nil {
		ev.Err = err
		s.record(ctx, ev, start)
		return failSafe(rf, ra, err)
	}
	if f != nil {
		defer f.Close()
	}
	s.send(ctx, log, rf, r, ev, start)
	return nil // ReadFrom has closed the transfer's socket and told the client
}

// takeSlot takes a transfer slot for remote before anything else: a flood of requests
// that are never acknowledged must not hold more sockets than the caps allow. A board
// that holds a lease (returned, with known) gets its own share. Refusals are neither
// recorded (a flood would fill the store) nor logged one by one.
func (s *Server) takeSlot(ctx context.Context, remote netip.AddrPort) (leased Board, known, ok bool) {
	if s.opt.Boards != nil && remote.Addr().IsValid() {
		leased, known = s.opt.Boards.BoardByIP(ctx, remote.Addr())
	}
	if !s.slots.take(remote.Addr(), known) {
		if n := s.busy.Add(); n > 0 {
			s.log.Warn("tftp requests refused: too many transfers at once", "refused", n,
				"max_transfers", s.opt.MaxTransfers, "max_per_client", s.opt.MaxPerClient, "last_remote", remote.String())
		}
		return leased, known, false
	}
	return leased, known, true
}

// mergeLeased completes the board b that the request's name gives with what its DHCP
// lease knows: the serial when the name has no prefix, and the MAC. The name's serial
// wins over the lease's.
func mergeLeased(log *slog.Logger, b, leased Board, generated bool) Board {
	if b.Serial == "" {
		b.Serial = leased.Serial
	} else if leased.Serial != "" && leased.Serial != b.Serial && generated {
		// The prefix is what the bootloader itself asks for; option 97 is
		// decoded by us (and was once decoded with the wrong byte order).
		// Said once per generated file, i.e. twice per boot, not per block.
		log.Warn("tftp: the board's TFTP prefix and its DHCP option 97 serial disagree; using the TFTP prefix",
			"tftp_prefix", b.Serial, "option97_serial", leased.Serial, "mac", leased.MAC)
	}
	if b.MAC == "" {
		b.MAC = leased.MAC
	}
	return b
}

// content returns the bytes to send for n and sets ev.Size: the file from the root
// (and f, for the caller to close), or for config.txt and cmdline.txt the generated
// text when the board has no file of its own (always without a prefix: never the
// shared root's copy, which is the master image's).
func (s *Server) content(log *slog.Logger, n Name, generated bool, ev *Event) (r io.Reader, f *os.File, err error) {
	if generated && n.Prefix == "" {
		n.File = ""
	}
	switch f, _, err := open(s.root, n, !generated); {
	case err == nil:
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		ev.Size = st.Size()
		// pin/tftp reads one block (blksize bytes, io.ReadFull) per DATA packet: read
		// the file in 64 KiB pieces instead of a system call per block, from the page
		// cache without the runtime's system call path (fileread_linux.go).
		return newFileReader(f), f, nil
	case generated && (n.File == "" || errors.Is(err, fs.ErrNotExist)):
		var b []byte
		if ev.File == "config.txt" {
			b = ConfigTxt(ev.Board, s.opt.ConfigExtra)
		} else {
			b = CmdlineTxt(ev.Board, s.opt.Cmdline, s.opt.ServerURL)
		}
		ev.Size = int64(len(b))
		return bytes.NewReader(b), nil, nil
	default:
		if errors.Is(err, ErrRefused) {
			log.Warn("tftp request refused", "err", err)
		} else {
			log.Debug("tftp file not found", "err", err)
		}
		return nil, nil, err
	}
}

// send transfers r to the client (tsize in the OACK first), records the transfer's
// start once the client acknowledges the first block and its end; a client that stops
// after the OACK (a size probe) is recorded as a probe, not a failure.
func (s *Server) send(ctx context.Context, log *slog.Logger, rf io.ReaderFrom, r io.Reader, ev Event, start time.Time) {
	rf.(tftp.OutgoingTransfer).SetSize(ev.Size) // before ReadFrom, so tsize goes into the OACK
	pr := &progressReader{r: r, onStart: func() {
		st := ev
		st.Started = true
		s.record(ctx, st, start)
	}}
	sent, err := rf.ReadFrom(pr)
	ev.Bytes = sent
	if err != nil && isEarlyTerminate(err) {
		ev.Probe = true
		err = nil
	}
	ev.Err = err
	if err != nil {
		log.Info("tftp transfer failed", "bytes", sent, "err", err)
	}
	s.record(ctx, ev, start)
}

func (s *Server) record(ctx context.Context, ev Event, start time.Time) {
	ev.Duration = time.Since(start)
	if s.opt.Recorder != nil {
		s.opt.Recorder.RecordTFTP(ctx, ev)
	}
}

// failSafe returns err to pin/tftp, which answers the client with an ERROR packet —
// unless that send could fail: pin/tftp v3.1.0 then leaks the transfer's socket
// (abort returns before closing it). For such peers (port 0, a non-unicast address, no
// route) it lets ReadFrom fail on the first read instead: ReadFrom always closes the
// socket, whatever happens to its own ERROR packet.
func failSafe(rf io.ReaderFrom, ra net.UDPAddr, err error) error {
	if sendable(ra) {
		return err
	}
	_, _ = rf.ReadFrom(errReader{err})
	return nil
}

func sendable(ra net.UDPAddr) bool {
	ip := ra.IP.To4()
	if ra.Port == 0 || ip == nil || ip.IsUnspecified() || ip.IsMulticast() || ip.Equal(net.IPv4bcast) {
		return false
	}
	c, err := net.DialUDP("udp4", nil, &ra) // connect(2) fails when there is no route
	if err != nil {
		return false
	}
	c.Close()
	return true
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// isEarlyTerminate recognises the client's ERROR after block 1 that pin/tftp reports
// as "sending block 1: code=0, error: Early terminate" (no typed error exists).
func isEarlyTerminate(err error) bool {
	return strings.Contains(err.Error(), "Early terminate")
}

// stopHook is pin/tftp's hook. It logs failures pin reports outside our handler (stray
// packets on port 69), and it ends pin's request loop on shutdown: pin calls
// OnFailure with no remote address only from its loop, for a packet the loop read
// and could not use; when that packet is the stop packet of a server that is
// closing, the hook closes the socket right there, on the loop's goroutine, so the
// loop reads nothing more (see Serve).
type stopHook struct{ s *Server }

func (stopHook) OnSuccess(tftp.TransferStats) {}
func (h stopHook) OnFailure(st tftp.TransferStats, err error) {
	if st.RemoteAddr == nil && h.s.closing.Load() && err != nil && err.Error() == stopPacketErr {
		h.s.stopOne.Do(func() {
			h.s.conn.Close()
			close(h.s.stopped)
		})
		return
	}
	if st.Filename == "" {
		h.s.log.Debug("tftp: stray packet", "err", err)
	}
}

func addrOf(ip net.IP) netip.Addr {
	if v4 := ip.To4(); v4 != nil {
		a, _ := netip.AddrFromSlice(v4)
		return a
	}
	a, _ := netip.AddrFromSlice(ip)
	return a
}

// progressReader calls onStart once, when pin/tftp asks for block 2: pin reads a block
// only after the client acknowledged the one before, so a probe (which stops at block
// 1) never gets there.
type progressReader struct {
	r       io.Reader
	block   int // bytes asked for by the first Read: the block size
	read    int
	onStart func()
}

func (p *progressReader) Read(b []byte) (int, error) {
	if p.block == 0 {
		p.block = len(b)
	} else if p.onStart != nil && p.read >= p.block {
		p.onStart()
		p.onStart = nil
	}
	n, err := p.r.Read(b)
	p.read += n
	return n, err
}
