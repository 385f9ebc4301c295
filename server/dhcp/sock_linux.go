package dhcp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
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

// recvFrom reads one datagram into b. A datagram longer than b is cut to len(b).
func recvFrom(rc syscall.RawConn, b []byte) (n int, from netip.AddrPort, err error) {
	var errno syscall.Errno
	rerr := rc.Read(func(fd uintptr) bool {
		var sa unix.RawSockaddrInet4
		var r uintptr
		e := unix.EINTR
		for e == unix.EINTR {
			salen := uint32(unsafe.Sizeof(sa))
			r, _, e = syscall.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
				unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&salen)))
		}
		if e == unix.EAGAIN {
			return false // wait in the poller until the socket is readable
		}
		errno = e
		if e == 0 {
			n = int(r)
			if sa.Family == unix.AF_INET {
				from = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), htons(sa.Port))
			}
		}
		return true
	})
	if rerr != nil {
		return 0, from, rerr
	}
	if errno != 0 {
		return 0, from, errno
	}
	return n, from, nil
}

// sendTo sends b to the IPv4 address to, waiting in the poller while the socket's
// send buffer is full.
func sendTo(rc syscall.RawConn, b []byte, to netip.AddrPort) error {
	if !to.Addr().Is4() {
		return fmt.Errorf("send to %v: not an IPv4 address", to)
	}
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Port: htons(to.Port()), Addr: to.Addr().As4()}
	return rawSend(rc, b, unsafe.Pointer(&sa), unsafe.Sizeof(sa))
}

// sendFrame sends an Ethernet frame through an AF_PACKET socket to dst on interface
// ifindex.
func sendFrame(rc syscall.RawConn, frame []byte, ifindex int, dst [6]byte) error {
	sa := unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(unix.ETH_P_IP), Ifindex: int32(ifindex), Halen: 6}
	copy(sa.Addr[:], dst[:])
	return rawSend(rc, frame, unsafe.Pointer(&sa), unsafe.Sizeof(sa))
}

func rawSend(rc syscall.RawConn, b []byte, sa unsafe.Pointer, salen uintptr) error {
	if len(b) == 0 {
		return nil
	}
	var errno syscall.Errno
	werr := rc.Write(func(fd uintptr) bool {
		e := unix.EINTR
		for e == unix.EINTR {
			_, _, e = syscall.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
				unix.MSG_DONTWAIT, uintptr(sa), salen)
		}
		if e == unix.EAGAIN {
			return false // wait in the poller until the socket is writable
		}
		errno = e
		return true
	})
	if werr != nil {
		return werr
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// htons converts a 16-bit number between host and network byte order (either way:
// the conversion is its own inverse), on hosts of either byte order.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
