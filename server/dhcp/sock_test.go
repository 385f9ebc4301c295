package dhcp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestRawSendRecvLoopback: the read loop's reader and sendTo (raw system calls,
// addresses in network byte order built by hand) against the standard library's
// UDP sockets on loopback: the datagram, the sender's address and port as the
// kernel reports them, and a reply that reaches that port.
func TestRawSendRecvLoopback(t *testing.T) {
	t.Parallel()
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	rc, err := srv.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("DHCPDISCOVER, more or less")
	if _, err := cli.WriteToUDP(msg, srv.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, from, err := newReader(rc).read(buf)
	if err != nil {
		t.Fatal(err)
	}
	want := cli.LocalAddr().(*net.UDPAddr).AddrPort()
	if !bytes.Equal(buf[:n], msg) || from != want {
		t.Fatalf("read = %q from %v, want %q from %v", buf[:n], from, msg, want)
	}
	if err := newSender().sendTo(rc, []byte("OFFER"), from); err != nil {
		t.Fatal(err)
	}
	cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, src, err := cli.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "OFFER" || src != srv.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("reply %q from %v (%v), want OFFER from %v", buf[:n], src, err, srv.LocalAddr())
	}
	if err := newSender().sendTo(rc, []byte("x"), netip.MustParseAddrPort("[::1]:67")); err == nil {
		t.Error("sendTo an IPv6 address: no error")
	}
}

// TestRecvFromEndsOnClose: a read waiting for a datagram returns once the socket
// is closed (how Serve's loop ends on shutdown).
func TestRecvFromEndsOnClose(t *testing.T) {
	t.Parallel()
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := srv.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := newReader(rc).read(make([]byte, 64))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let it wait in the poller
	srv.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("read on a closed socket: no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("read still waits 10 s after the socket was closed")
	}
}
