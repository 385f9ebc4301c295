//go:build !linux

package tftp

import "net"

func rawSendTo(c *net.UDPConn, b []byte, addr *net.UDPAddr) error {
	_, err := c.WriteToUDP(b, addr)
	return err
}

func rawReadFrom(c *net.UDPConn, b []byte) (int, *net.UDPAddr, error) {
	return c.ReadFromUDP(b)
}
