//go:build !linux

package tftp

// rpi-deploy patch: this file is new (PATCHES.md).

import (
	"errors"
	"net"
	"time"
)

// connectTransfers: off Linux transfer sockets stay unconnected, as upstream's (how
// each system reports ICMP errors on a connected UDP socket differs; only Linux's is
// handled, in transfer_linux.go).
const connectTransfers = false

// connectedIO is never made off Linux (connectTransfers).
type connectedIO struct{}

func newConnectedIO(*net.UDPConn, *net.UDPAddr) (*connectedIO, error) {
	return nil, errors.ErrUnsupported
}

func (*connectedIO) setDeadline(time.Duration) error            { return nil }
func (*connectedIO) close()                                     {}
func (*connectedIO) sendTo([]byte, *net.UDPAddr) error          { return net.ErrClosed }
func (*connectedIO) readFrom([]byte) (int, *net.UDPAddr, error) { return 0, nil, net.ErrClosed }
