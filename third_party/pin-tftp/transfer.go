package tftp

// rpi-deploy patch: this file is new (PATCHES.md).

import "net"

// transferConn opens a read or write request's own socket, bound to local (port 0:
// the kernel picks the transfer's port, the server's TID) and, for a unicast peer,
// connected to the client that asked (connect(2)). On a connected socket the kernel
// delivers only the client's datagrams: a datagram from any other address or port
// never reaches the transfer (a host on the network cannot end or feed another
// board's transfer by guessing its port), and each send skips the route lookup and
// the address an unconnected sendto(2) carries. A peer that cannot be connected to
// (port 0, a broadcast or unspecified address, no route) gets upstream's unconnected
// socket, whose sends fail as before. A connected socket is pin's connection as
// connectedIO; an unconnected one, as upstream's, a connConnection.
func transferConn(local, remote *net.UDPAddr) (connection, error) {
	if connectTransfers && connectable(remote) {
		if c, err := net.DialUDP("udp", local, remote); err == nil {
			if x, err := newConnectedIO(c, remote); err == nil {
				return x, nil
			}
			c.Close()
		}
	}
	c, err := net.ListenUDP("udp", local)
	if err != nil {
		return nil, err
	}
	return &connConnection{conn: c}, nil
}

func connectable(a *net.UDPAddr) bool {
	if a == nil || a.Port <= 0 || a.Port > 0xffff {
		return false
	}
	ip := a.IP
	return len(ip) > 0 && !ip.IsUnspecified() && !ip.IsMulticast() && !ip.Equal(net.IPv4bcast)
}
