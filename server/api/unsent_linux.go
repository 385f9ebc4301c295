package api

import (
	"net"

	"golang.org/x/sys/unix"
)

// unsent reports the bytes written to c's TCP socket that its peer has not
// acknowledged yet (SIOCOUTQ); ok is false when c has no descriptor (rawConn).
func unsent(c net.Conn) (n int, ok bool) {
	rc := rawConn(c)
	if rc == nil {
		return 0, false
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil || ierr != nil {
		return 0, false
	}
	return n, true
}
