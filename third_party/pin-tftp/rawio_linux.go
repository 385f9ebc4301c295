//go:build linux

package tftp

import (
	"encoding/binary"
	"errors"
	"net"
	"syscall"
	"unsafe"
)

// rawSendTo sends b to addr (IPv4) on c with sendto(2) and MSG_DONTWAIT as a raw
// system call, waiting in the runtime's poller while the send buffer is full. Not
// through entersyscall, so it wakes no sleeping sysmon (doc.go). Only on an IPv4
// socket: IPv6 peers, and the dual-stack IPv6 socket that net.ListenUDP("udp") makes
// for a wildcard address (server.go does for a request that came to a broadcast
// address), go through WriteToUDP, which maps the address.
func rawSendTo(c *net.UDPConn, b []byte, addr *net.UDPAddr) error {
	ip4 := addr.IP.To4()
	la, _ := c.LocalAddr().(*net.UDPAddr)
	if ip4 == nil || la == nil || la.IP.To4() == nil || len(b) == 0 || addr.Port <= 0 || addr.Port > 0xffff {
		_, err := c.WriteToUDP(b, addr)
		return err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	sa := syscall.RawSockaddrInet4{Family: syscall.AF_INET}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], uint16(addr.Port))
	copy(sa.Addr[:], ip4)
	var errno syscall.Errno
	werr := rc.Write(func(fd uintptr) bool {
		e := syscall.EINTR
		for e == syscall.EINTR {
			_, _, e = syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
				syscall.MSG_DONTWAIT, uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
		}
		if e == syscall.EAGAIN {
			return false
		}
		errno = e
		return true
	})
	if werr != nil {
		return werr
	}
	if errno != 0 {
		return &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: errno}
	}
	return nil
}

// rawReadFrom reads one datagram from c into b with recvfrom(2) and MSG_DONTWAIT as
// a raw system call, waiting in the runtime's poller (and so honouring c's read
// deadline: the error is then a net.Error with Timeout true) until one is there.
// Datagrams from IPv6 peers come back with their address as the kernel gave it.
func rawReadFrom(c *net.UDPConn, b []byte) (int, *net.UDPAddr, error) {
	if len(b) == 0 {
		return c.ReadFromUDP(b)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, nil, err
	}
	var n int
	var addr *net.UDPAddr
	var errno syscall.Errno
	rerr := rc.Read(func(fd uintptr) bool {
		var sa syscall.RawSockaddrAny
		var r uintptr
		e := syscall.EINTR
		for e == syscall.EINTR {
			salen := uint32(unsafe.Sizeof(sa))
			r, _, e = syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
				syscall.MSG_DONTWAIT, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&salen)))
		}
		if e == syscall.EAGAIN {
			return false // wait in the poller until the socket is readable
		}
		if errno = e; e == 0 {
			n, addr = int(r), udpAddrOf(&sa)
		}
		return true
	})
	if rerr != nil {
		return 0, nil, opError("read", nil, rerr)
	}
	if errno != 0 {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Err: errno}
	}
	return n, addr, nil
}

// opError wraps an error of RawConn's Control, Read or Write (closed socket, read
// deadline) as net.UDPConn's own calls do; addr is the peer, if there is one.
func opError(op string, addr net.Addr, err error) error {
	if errors.Is(err, syscall.EBADF) {
		err = net.ErrClosed
	}
	return &net.OpError{Op: op, Net: "udp", Addr: addr, Err: err}
}

func udpAddrOf(sa *syscall.RawSockaddrAny) *net.UDPAddr {
	switch sa.Addr.Family {
	case syscall.AF_INET:
		in := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&in.Port))[:])
		return &net.UDPAddr{IP: net.IPv4(in.Addr[0], in.Addr[1], in.Addr[2], in.Addr[3]), Port: int(port)}
	case syscall.AF_INET6:
		in := (*syscall.RawSockaddrInet6)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&in.Port))[:])
		return &net.UDPAddr{IP: append(net.IP(nil), in.Addr[:]...), Port: int(port)}
	}
	return &net.UDPAddr{}
}
