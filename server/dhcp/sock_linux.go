package dhcp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The DHCP server's per-packet system calls: recvfrom and sendto with MSG_DONTWAIT,
// made with syscall.RawSyscall6 inside syscall.RawConn's Read and Write.
//
// Why not net.UDPConn.ReadFrom/WriteTo: every system call made through the Go
// runtime's usual path (entersyscall) wakes the runtime's monitor thread (sysmon)
// when it is in its deep sleep, which it enters whenever every P has been idle — on
// a DHCP server that answers a packet every few milliseconds, that is before nearly
// every packet. So each packet paid a futex wake of another thread, its nanosleeps,
// and their context switches (measured with perf on rpi-deployd under perfdhcp:
// `runtime.entersyscallWakeSysmon` from `syscall.recvfrom`; 9 context switches per
// DISCOVER). A call that cannot block (MSG_DONTWAIT) may skip that path: it returns
// in microseconds like any other instruction sequence of the goroutine. When there
// is nothing to read (EAGAIN), Read parks the goroutine in the runtime's network
// poller as net.UDPConn does, so the loop still ends when the socket is closed. The
// poller is edge-triggered: a call is only given up on EAGAIN (EINTR is retried at
// once), so nothing queued waits for the next datagram's edge.

// reader reads datagrams with recvfrom. Its function for RawConn.Read is made
// once, with the state it sets: a closure made per read escaped to the heap with
// the variables it set, four allocations per datagram.
type reader struct {
	rc    syscall.RawConn
	fn    func(fd uintptr) bool // r.recv
	b     []byte
	n     int
	from  netip.AddrPort
	errno syscall.Errno
}

func newReader(rc syscall.RawConn) *reader {
	r := &reader{rc: rc}
	r.fn = r.recv
	return r
}

// read reads one datagram into b. A datagram longer than b is cut to len(b).
func (r *reader) read(b []byte) (n int, from netip.AddrPort, err error) {
	r.b, r.n, r.from, r.errno = b, 0, netip.AddrPort{}, 0
	rerr := r.rc.Read(r.fn)
	r.b = nil
	if rerr != nil {
		return 0, r.from, rerr
	}
	if r.errno != 0 {
		return 0, r.from, r.errno
	}
	return r.n, r.from, nil
}

// recv is one recvfrom; false (on EAGAIN) waits in the poller for the socket to be
// readable.
func (r *reader) recv(fd uintptr) bool {
	var sa unix.RawSockaddrInet4
	var n uintptr
	e := unix.EINTR
	for e == unix.EINTR {
		salen := uint32(unsafe.Sizeof(sa))
		n, _, e = syscall.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.b[0])), uintptr(len(r.b)),
			unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&salen)))
	}
	if e == unix.EAGAIN {
		return false
	}
	r.errno = e
	if e == 0 {
		r.n = int(n)
		if sa.Family == unix.AF_INET {
			r.from = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), htons(sa.Port))
		}
	}
	return true
}

// sender sends datagrams and frames with sendto. As reader's, its function for
// RawConn.Write is made once, with the state it reads; a sender also holds the
// buffer a reply is written into (see Server.send), and senders are used again.
type sender struct {
	fn    func(fd uintptr) bool // w.send
	buf   []byte
	b     []byte
	in4   unix.RawSockaddrInet4
	ll    unix.RawSockaddrLinklayer
	sa    unsafe.Pointer // &w.in4 or &w.ll
	salen uintptr
	errno syscall.Errno
}

func newSender() *sender {
	w := &sender{buf: make([]byte, 0, frameHeaders+1500)}
	w.fn = w.send
	return w
}

// senders are the Server's senders not in use (*sender).
var senders = sync.Pool{New: func() any { return newSender() }}

// sendTo sends b to the IPv4 address to, waiting in the poller while the socket's
// send buffer is full.
func (w *sender) sendTo(rc syscall.RawConn, b []byte, to netip.AddrPort) error {
	if !to.Addr().Is4() {
		return fmt.Errorf("send to %v: not an IPv4 address", to)
	}
	w.in4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: htons(to.Port()), Addr: to.Addr().As4()}
	w.sa, w.salen = unsafe.Pointer(&w.in4), unsafe.Sizeof(w.in4)
	return w.write(rc, b)
}

// sendFrame sends an Ethernet frame through an AF_PACKET socket to dst on interface
// ifindex.
func (w *sender) sendFrame(rc syscall.RawConn, frame []byte, ifindex int, dst [6]byte) error {
	w.ll = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(unix.ETH_P_IP), Ifindex: int32(ifindex), Halen: 6}
	copy(w.ll.Addr[:], dst[:])
	w.sa, w.salen = unsafe.Pointer(&w.ll), unsafe.Sizeof(w.ll)
	return w.write(rc, frame)
}

func (w *sender) write(rc syscall.RawConn, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	w.b, w.errno = b, 0
	werr := rc.Write(w.fn)
	w.b = nil
	if werr != nil {
		return werr
	}
	if w.errno != 0 {
		return w.errno
	}
	return nil
}

// send is one sendto; false (on EAGAIN) waits in the poller until the socket is
// writable.
func (w *sender) send(fd uintptr) bool {
	e := unix.EINTR
	for e == unix.EINTR {
		_, _, e = syscall.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&w.b[0])), uintptr(len(w.b)),
			unix.MSG_DONTWAIT, uintptr(w.sa), w.salen)
	}
	if e == unix.EAGAIN {
		return false
	}
	w.errno = e
	return true
}

// htons converts a 16-bit number between host and network byte order (either way:
// the conversion is its own inverse), on hosts of either byte order.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
