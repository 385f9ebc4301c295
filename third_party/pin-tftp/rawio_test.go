//go:build linux

package tftp

import (
	"errors"
	"net"
	"testing"
	"time"
)

func loopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRawIOLoopback: rawSendTo and rawReadFrom (the transfer socket's I/O, as raw
// system calls) against the standard library's UDP sockets: the datagram both ways,
// and the peer's address and port as the kernel reports them.
func TestRawIOLoopback(t *testing.T) {
	srv, cli := loopback(t), loopback(t)
	if _, err := cli.WriteToUDP([]byte("\x00\x04\x00\x01"), srv.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 516)
	n, from, err := rawReadFrom(srv, buf)
	if err != nil {
		t.Fatal(err)
	}
	if want := cli.LocalAddr().(*net.UDPAddr); string(buf[:n]) != "\x00\x04\x00\x01" || !from.IP.Equal(want.IP) || from.Port != want.Port {
		t.Fatalf("rawReadFrom = %q from %v, want ACK 1 from %v", buf[:n], from, want)
	}
	if err := rawSendTo(srv, []byte("\x00\x03\x00\x02data"), from); err != nil {
		t.Fatal(err)
	}
	cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, src, err := cli.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "\x00\x03\x00\x02data" || src.Port != srv.LocalAddr().(*net.UDPAddr).Port {
		t.Fatalf("client got %q from %v (%v)", buf[:n], src, err)
	}
}

// TestRawReadFromDeadline: a read deadline ends rawReadFrom with a net.Error whose
// Timeout is true — what sender.sendWithRetry resends on — and a closed socket ends it
// with net.ErrClosed.
func TestRawReadFromDeadline(t *testing.T) {
	srv := loopback(t)
	srv.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, _, err := rawReadFrom(srv, make([]byte, 516))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("rawReadFrom past the deadline: %v (%T), want a net.Error with Timeout", err, err)
	}
	if _, ok := err.(net.Error); !ok {
		t.Fatalf("rawReadFrom past the deadline: %T is not a net.Error itself (sendWithRetry type-asserts)", err)
	}
	srv.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, _, err := rawReadFrom(srv, make([]byte, 516))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	srv.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("rawReadFrom on a closed socket: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("rawReadFrom still waits 10 s after the socket was closed")
	}
}

// TestRawIODualStack: the socket server.go opens for a request to a broadcast address
// (net.ListenUDP("udp", 0.0.0.0:0), which is an IPv6 socket taking IPv4 too): an IPv4
// peer's datagram is read with its address (v4-mapped, equal to the IPv4 one) and the
// reply reaches it.
func TestRawIODualStack(t *testing.T) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli := loopback(t)
	port := srv.LocalAddr().(*net.UDPAddr).Port
	if _, err := cli.WriteToUDP([]byte("\x00\x04\x00\x00"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 516)
	_, from, err := rawReadFrom(srv, buf)
	if err != nil {
		t.Fatal(err)
	}
	want := cli.LocalAddr().(*net.UDPAddr)
	if !from.IP.Equal(want.IP) || from.Port != want.Port {
		t.Fatalf("rawReadFrom on a dual-stack socket: from %v, want %v", from, want)
	}
	if err := rawSendTo(srv, []byte("\x00\x03\x00\x01x"), want); err != nil {
		t.Fatalf("rawSendTo from a dual-stack socket to %v: %v", want, err)
	}
	cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := cli.ReadFromUDP(buf); err != nil || string(buf[:n]) != "\x00\x03\x00\x01x" {
		t.Fatalf("client got %q (%v)", buf[:n], err)
	}
}
