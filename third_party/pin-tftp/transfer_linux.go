//go:build linux

package tftp

// rpi-deploy patch: this file is new (PATCHES.md).

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// connectTransfers: transferConn connects a transfer's socket to its client.
const connectTransfers = true

// maxICMPReports bounds how many ICMP error reports in a row one send or receive
// skips before it gives up (send) or waits in the poller (receive).
const maxICMPReports = 16

// connectedIO is pin's connection for a transfer socket connected to its one peer
// (transferConn): send(2) and
// recv(2) — sendto/recvfrom without addresses — as raw system calls on the
// non-blocking socket (not through the runtime's entersyscall: doc.go), waiting in
// the runtime's poller only when nothing can be read. A transfer is served by one
// goroutine at a time (pin's sender or receiver), so the per-call state below needs
// no lock; the closures are made once, so a datagram allocates nothing.
//
// The read timeout pin sets before each datagram it sends is kept here and given to
// the poller only when a read has to wait: in a lock-step transfer the answer is
// often there already when the read starts, and then neither the clock is read nor
// the poller's timer reset (each SetReadDeadline does both).
//
// A connected UDP socket reports ICMP errors about its peer (port unreachable,
// host unreachable, …) as the next send's or receive's error, once; an unconnected
// one, as upstream's, never does. Those reports are skipped here, so that a transfer
// keeps upstream's behaviour: it waits for the client's next datagram until its
// deadline and resends as before — and a host that sends forged ICMP errors cannot
// end another board's transfer with them.
type connectedIO struct {
	c    *net.UDPConn
	rc   syscall.RawConn
	peer *net.UDPAddr

	timeout time.Duration // the last setDeadline's
	fresh   bool          // that timeout is not yet with the poller

	b     []byte        // the call's buffer
	n     int           // bytes sent or received
	errno syscall.Errno // the call's outcome

	waitRead func(fd uintptr) bool // rc.Read's function
	write    func(fd uintptr) bool // rc.Write's function
}

func newConnectedIO(c *net.UDPConn, peer *net.UDPAddr) (*connectedIO, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	p := *peer
	x := &connectedIO{c: c, rc: rc, peer: &p}
	x.waitRead = func(fd uintptr) bool {
		if x.errno = x.recv(fd); x.errno != syscall.EAGAIN {
			return true
		}
		// Nothing there: wait in the poller, with this datagram's deadline.
		if x.fresh {
			if err := x.giveDeadline(); err != nil {
				x.errno = syscall.EBADF
				return true
			}
		}
		return false
	}
	x.write = func(fd uintptr) bool {
		x.errno = x.send(fd)
		return x.errno != syscall.EAGAIN
	}
	return x, nil
}

// setDeadline notes that the next reads may wait d, from the first of them that has
// to wait (the deadline then starts some microseconds after pin set it: negligible
// beside a timeout of at least 100 ms, and no clock read when no read waits).
func (x *connectedIO) setDeadline(d time.Duration) error {
	x.timeout, x.fresh = d, true
	return nil
}

func (x *connectedIO) close() { x.c.Close() }

// recv receives one datagram into x.b (x.n bytes), skipping ICMP error reports.
func (x *connectedIO) recv(fd uintptr) syscall.Errno {
	for skipped := 0; ; {
		r, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&x.b[0])), uintptr(len(x.b)),
			syscall.MSG_DONTWAIT, 0, 0)
		switch {
		case e == 0:
			x.n = int(r)
			return 0
		case e == syscall.EINTR:
		case icmpReport(e):
			if skipped++; skipped == maxICMPReports {
				return syscall.EAGAIN
			}
		default:
			return e
		}
	}
}

// send sends x.b, skipping ICMP error reports: a report pending on the socket fails
// the send that finds it (the datagram is not sent) and is cleared by it.
func (x *connectedIO) send(fd uintptr) syscall.Errno {
	var e syscall.Errno
	for skipped := 0; skipped < maxICMPReports; {
		_, _, e = syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&x.b[0])), uintptr(len(x.b)),
			syscall.MSG_DONTWAIT, 0, 0)
		switch {
		case e == syscall.EINTR:
		case icmpReport(e):
			skipped++
		default:
			return e
		}
	}
	return e
}

// icmpReport tells the errors Linux reports on a connected UDP socket for an ICMP
// error about its peer (net/ipv4/icmp.c icmp_err_convert, ipv6/icmp.c
// icmpv6_err_convert: the "fatal" ones, which a socket without IP_RECVERR reports).
func icmpReport(e syscall.Errno) bool {
	switch e {
	case syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EHOSTDOWN, syscall.ENONET,
		syscall.ENOPROTOOPT, syscall.EPROTO, syscall.EACCES:
		return true
	}
	return false
}

func (x *connectedIO) sendTo(b []byte, addr *net.UDPAddr) error {
	if addr != nil && (!addr.IP.Equal(x.peer.IP) || addr.Port != x.peer.Port) {
		return fmt.Errorf("transfer socket connected to %v: cannot send to %v", x.peer, addr)
	}
	if len(b) == 0 {
		_, err := x.c.Write(b)
		return err
	}
	x.b = b
	if err := x.rc.Write(x.write); err != nil {
		return opError("write", x.peer, err)
	}
	if x.errno != 0 {
		return &net.OpError{Op: "write", Net: "udp", Addr: x.peer, Err: x.errno}
	}
	return nil
}

// readFrom reads the peer's next datagram into b, waiting in the poller while
// there is none, until the deadline of the last setDeadline (past it: a net.Error
// with Timeout true, which pin's retries need). Closing the socket ends the read with
// net.ErrClosed.
func (x *connectedIO) readFrom(b []byte) (int, *net.UDPAddr, error) {
	if len(b) == 0 {
		n, err := x.c.Read(b)
		return n, x.peer, err
	}
	x.b = b
	for {
		err := x.rc.Read(x.waitRead)
		if err == nil {
			break
		}
		// The poller may hold an older deadline that has passed while no read had
		// to wait: give it the current one and read again.
		if errors.Is(err, os.ErrDeadlineExceeded) && x.fresh {
			if err := x.giveDeadline(); err != nil {
				return 0, nil, err
			}
			continue
		}
		return 0, nil, opError("read", x.peer, err)
	}
	if x.errno != 0 {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Addr: x.peer, Err: x.errno}
	}
	return x.n, x.peer, nil
}

// giveDeadline gives the poller the deadline of the last setDeadline, counted from now.
func (x *connectedIO) giveDeadline() error {
	if err := x.c.SetReadDeadline(time.Now().Add(x.timeout)); err != nil {
		return err
	}
	x.fresh = false
	return nil
}
