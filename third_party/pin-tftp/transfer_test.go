//go:build linux

package tftp

// rpi-deploy patch: this file is new (PATCHES.md). Needs root (raw ICMP sockets), as
// the repository's other network tests do.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// family is one address family the transfer tests run in: the server's and the
// client's address, and the address a hostile host sends from (another loopback
// address for IPv4; for IPv6, whose loopback has one address, another port of it).
type family struct {
	name, network string
	server, host  net.IP
}

var families = []family{
	{"ipv4", "udp4", net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2)},
	{"ipv6", "udp6", net.IPv6loopback, net.IPv6loopback},
}

// TestTransferSocketIsConnected: the socket of a read request is connected to the
// client that asked (the kernel's socket table shows the client as its peer), and
// the client gets the file byte for byte.
func TestTransferSocketIsConnected(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			content := randomBytes(t, 3*512+100)
			srv, st := startServer(t, f, content)
			cli := listen(t, f.network, f.server)
			got, _ := get(t, cli, srv, func(block int, tid *net.UDPAddr) {
				if block != 1 {
					return
				}
				peer, err := socketPeer(f.network, tid.Port)
				if err != nil {
					t.Fatal(err)
				}
				if want := cli.LocalAddr().(*net.UDPAddr); !peer.IP.Equal(want.IP) || peer.Port != want.Port {
					t.Errorf("transfer socket %v: peer %v in the kernel's table, want the client %v", tid, peer, want)
				}
			})
			if !bytes.Equal(got, content) {
				t.Fatalf("got %d bytes, not the file's %d", len(got), len(content))
			}
			st.wantSuccess(t, 4)
		})
	}
}

// TestTransferIgnoresOtherSenders: while a board's transfer waits for its ACK, a
// hostile host — another address, and another port of the client's own address —
// sends the transfer's port the datagrams that would end or advance it if taken
// (ERROR "Early terminate", the ACK of the block in flight, the next block's ACK,
// junk). None of them reaches the transfer: the board gets every block once, byte
// for byte, the server sends no block twice, and the hostile sockets get no answer.
func TestTransferIgnoresOtherSenders(t *testing.T) {
	hostile := [][]byte{
		[]byte("\x00\x05\x00\x00Early terminate\x00"),
		{0, 4, 0, 1},
		{0, 4, 0, 2},
		[]byte("junk"),
	}
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			content := randomBytes(t, 3*512+100)
			srv, st := startServer(t, f, content)
			cli := listen(t, f.network, f.server)
			others := []*net.UDPConn{listen(t, f.network, f.host), listen(t, f.network, f.server)}
			got, _ := get(t, cli, srv, func(block int, tid *net.UDPAddr) {
				for _, o := range others {
					for _, p := range hostile {
						if _, err := o.WriteToUDP(p, tid); err != nil {
							t.Fatalf("hostile send from %v: %v", o.LocalAddr(), err)
						}
					}
				}
				time.Sleep(20 * time.Millisecond) // let the transfer see them, were they delivered
			})
			if !bytes.Equal(got, content) {
				t.Fatalf("got %d bytes, not the file's %d", len(got), len(content))
			}
			st.wantSuccess(t, 4)
			for _, o := range others {
				o.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if n, from, err := o.ReadFromUDP(make([]byte, 1024)); err == nil {
					t.Errorf("hostile socket %v got an answer: %x from %v", o.LocalAddr(), n, from)
				}
			}
		})
	}
}

// TestTransferSkipsICMPErrors: a connected UDP socket reports ICMP errors about its
// peer as its next read's error, which an unconnected one never does. A host that
// forges them ("port unreachable" quoting the server's DATA to the board) while a
// transfer waits for an ACK must not use up the transfer's resends and end it: the
// transfer (2 resends allowed) takes 5 forged errors, resends nothing and finishes
// byte for byte. The forged error is first shown to reach a connected socket: a plain
// one reads ECONNREFUSED.
func TestTransferSkipsICMPErrors(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			// The forged error does reach a connected socket.
			ctl := listen(t, f.network, f.server)
			dst := ctl.LocalAddr().(*net.UDPAddr)
			ctl.Close()
			probe, err := net.DialUDP(f.network, &net.UDPAddr{IP: f.server}, dst)
			if err != nil {
				t.Fatal(err)
			}
			defer probe.Close()
			forgeUnreachable(t, f, probe.LocalAddr().(*net.UDPAddr), dst)
			probe.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := probe.Read(make([]byte, 16)); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("a connected socket read %v after the forged ICMP error, want ECONNREFUSED (the test's forgery does not work)", err)
			}

			content := randomBytes(t, 3*512+100)
			srv, st := startServer(t, f, content)
			cli := listen(t, f.network, f.server)
			client := cli.LocalAddr().(*net.UDPAddr)
			got, _ := get(t, cli, srv, func(block int, tid *net.UDPAddr) {
				if block > 2 {
					return
				}
				for range 5 {
					forgeUnreachable(t, f, tid, client)
					time.Sleep(10 * time.Millisecond)
				}
			})
			if !bytes.Equal(got, content) {
				t.Fatalf("got %d bytes, not the file's %d", len(got), len(content))
			}
			st.wantSuccess(t, 4)
		})
	}
}

// TestTransferResendsOnSilence: a connected transfer socket keeps pin's timeouts: a
// client that stops acknowledging gets its block again after each timeout, as many
// times as the retries allow, and then the transfer ends (reported to the hook).
func TestTransferResendsOnSilence(t *testing.T) {
	f := families[0]
	content := randomBytes(t, 3*512+100)
	srv, st := startServerWith(t, f, content, 300*time.Millisecond)
	cli := listen(t, f.network, f.server)
	if _, err := cli.WriteToUDP(rrq("f"), srv); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	var data1 int
	for {
		cli.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := cli.ReadFromUDP(buf)
		if err != nil {
			break // the server gave up (2 resends of block 1) and sent nothing more
		}
		if n < 4 || binary.BigEndian.Uint16(buf) != opDATA || binary.BigEndian.Uint16(buf[2:]) != 1 {
			if binary.BigEndian.Uint16(buf) == opERROR {
				break
			}
			t.Fatalf("got %x, want DATA 1", buf[:n])
		}
		data1++
		if data1 == 3 {
			break
		}
	}
	if data1 != 3 {
		t.Fatalf("got DATA 1 %d times, want 3 (once and 2 resends)", data1)
	}
	st.wantFailure(t)
}

// TestConnectedIODeadline: connectedIO gives the poller a read deadline only when a
// read waits. A read past it ends with a net.Error whose Timeout is true (what pin
// resends on); a deadline the poller still holds from an earlier read, expired since,
// does not end a later read that has a deadline of its own; closing the socket ends a
// waiting read with net.ErrClosed.
func TestConnectedIODeadline(t *testing.T) {
	peer := listen(t, "udp4", net.IPv4(127, 0, 0, 1))
	c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, peer.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	x, err := newConnectedIO(c, peer.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)

	x.setDeadline(50 * time.Millisecond)
	_, _, err = x.readFrom(buf)
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v (%T), want a net.Error with Timeout", err, err)
	}

	// The poller keeps the expired 50 ms deadline; the next read has 5 s.
	x.setDeadline(5 * time.Second)
	if _, err := peer.WriteToUDP([]byte("ack"), c.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	n, from, err := x.readFrom(buf)
	if err != nil || string(buf[:n]) != "ack" || from.Port != peer.LocalAddr().(*net.UDPAddr).Port {
		t.Fatalf("read with a fresh deadline: %q from %v, %v; want \"ack\" from %v", buf[:n], from, err, peer.LocalAddr())
	}

	if err := x.sendTo([]byte("data"), nil); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := peer.ReadFromUDP(buf); err != nil || string(buf[:n]) != "data" {
		t.Fatalf("peer got %q, %v; want \"data\"", buf[:n], err)
	}
	if err := x.sendTo([]byte("data"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}); err == nil {
		t.Fatal("send to an address other than the peer: no error")
	}

	x.setDeadline(time.Minute)
	done := make(chan error, 1)
	go func() {
		_, _, err := x.readFrom(buf)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read ended by close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("close did not end the read")
	}
}

// rrq is a read request for name in octet mode (RFC 1350).
func rrq(name string) []byte { return []byte("\x00\x01" + name + "\x00octet\x00") }

// get reads file "f" from srv the way a lock-step client does: RRQ, then an ACK for
// each DATA, from one port; before each ACK it calls before (block number, the
// server's transfer address). It fails the test on a block sent twice.
func get(t *testing.T, cli *net.UDPConn, srv *net.UDPAddr, before func(block int, tid *net.UDPAddr)) ([]byte, *net.UDPAddr) {
	t.Helper()
	if _, err := cli.WriteToUDP(rrq("f"), srv); err != nil {
		t.Fatal(err)
	}
	var got []byte
	var tid *net.UDPAddr
	buf := make([]byte, 1024)
	for block := 1; ; block++ {
		cli.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := cli.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("waiting for DATA %d: %v", block, err)
		}
		if tid == nil {
			tid = from
		}
		if !from.IP.Equal(tid.IP) || from.Port != tid.Port {
			t.Fatalf("DATA %d from %v, want %v", block, from, tid)
		}
		if n < 4 || binary.BigEndian.Uint16(buf) != opDATA {
			t.Fatalf("got %x, want DATA %d", buf[:n], block)
		}
		if b := int(binary.BigEndian.Uint16(buf[2:])); b != block {
			t.Fatalf("got DATA %d, want DATA %d (a block sent twice)", b, block)
		}
		got = append(got, buf[4:n]...)
		before(block, tid)
		ack := []byte{0, 4, byte(block >> 8), byte(block)}
		if _, err := cli.WriteToUDP(ack, tid); err != nil {
			t.Fatal(err)
		}
		if n-4 < 512 {
			return got, tid
		}
	}
}

type stats struct {
	mu   sync.Mutex
	done chan struct{}
	ok   *TransferStats
	err  error
}

func (s *stats) OnSuccess(st TransferStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.Filename != "" {
		s.ok = &st
		close(s.done)
	}
}

func (s *stats) OnFailure(st TransferStats, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.Filename != "" {
		s.err = err
		close(s.done)
	}
}

func (s *stats) wait(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the transfer did not end")
	}
}

// wantSuccess: the transfer ended well after sending exactly blocks datagrams.
func (s *stats) wantSuccess(t *testing.T, blocks int) {
	t.Helper()
	s.wait(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ok == nil {
		t.Fatalf("transfer failed: %v", s.err)
	}
	if s.ok.DatagramsSent != blocks || s.ok.DatagramsAcked != blocks {
		t.Errorf("transfer sent %d datagrams, %d acknowledged; want %d each (nothing resent)", s.ok.DatagramsSent, s.ok.DatagramsAcked, blocks)
	}
}

func (s *stats) wantFailure(t *testing.T) {
	t.Helper()
	s.wait(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		t.Fatalf("transfer succeeded, want it to end on the client's silence")
	}
}

func startServer(t *testing.T, f family, content []byte) (*net.UDPAddr, *stats) {
	return startServerWith(t, f, content, 5*time.Second)
}

// startServerWith serves content as every file, on f's loopback, with timeout per
// datagram and 2 resends, returning the server's address and its transfers' stats.
func startServerWith(t *testing.T, f family, content []byte, timeout time.Duration) (*net.UDPAddr, *stats) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root (raw ICMP sockets, as the repository's network tests)")
	}
	st := &stats{done: make(chan struct{})}
	s := NewServer(func(_ string, rf io.ReaderFrom) error {
		_, err := rf.ReadFrom(bytes.NewReader(content))
		return err
	}, nil)
	s.SetTimeout(timeout)
	s.SetRetries(2)
	s.SetBackoff(func(int) time.Duration { return time.Millisecond })
	s.SetHook(st)
	conn := listen(t, f.network, f.server)
	served := make(chan error, 1)
	go func() { served <- s.Serve(conn) }()
	t.Cleanup(func() {
		s.Shutdown()
		<-served
	})
	return conn.LocalAddr().(*net.UDPAddr), st
}

func listen(t *testing.T, network string, ip net.IP) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// forgeUnreachable sends, from f's hostile address, an ICMP "port unreachable" that
// quotes a UDP datagram from src to dst — what dst's host would answer had src's
// datagram found dst's port closed — to src's address.
func forgeUnreachable(t *testing.T, f family, src, dst *net.UDPAddr) {
	t.Helper()
	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[0:], uint16(src.Port))
	binary.BigEndian.PutUint16(udp[2:], uint16(dst.Port))
	binary.BigEndian.PutUint16(udp[4:], 8)
	var msg icmp.Message
	var network string
	if f.network == "udp4" {
		h := ipv4.Header{Version: 4, Len: ipv4.HeaderLen, TotalLen: ipv4.HeaderLen + 8, TTL: 64, Protocol: 17, Src: src.IP, Dst: dst.IP}
		inner, err := h.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		msg = icmp.Message{Type: ipv4.ICMPTypeDestinationUnreachable, Code: 3, Body: &icmp.DstUnreach{Data: append(inner, udp...)}}
		network = "ip4:icmp"
	} else {
		inner := make([]byte, ipv6.HeaderLen)
		inner[0] = 6 << 4
		binary.BigEndian.PutUint16(inner[4:], 8)
		inner[6], inner[7] = 17, 64
		copy(inner[8:24], src.IP.To16())
		copy(inner[24:40], dst.IP.To16())
		msg = icmp.Message{Type: ipv6.ICMPTypeDestinationUnreachable, Code: 4, Body: &icmp.DstUnreach{Data: append(inner, udp...)}}
		network = "ip6:ipv6-icmp" // the kernel fills in the ICMPv6 checksum
	}
	b, err := msg.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenPacket(network, f.host.String())
	if err != nil {
		t.Fatalf("raw ICMP socket: %v", err)
	}
	defer c.Close()
	if _, err := c.WriteTo(b, &net.IPAddr{IP: src.IP}); err != nil {
		t.Fatal(err)
	}
}

// socketPeer returns the remote address of the UDP socket bound to local port port,
// as /proc/net/udp (udp4) or /proc/net/udp6 lists it: 0 for an unconnected socket.
func socketPeer(network string, port int) (*net.UDPAddr, error) {
	name := "/proc/net/udp"
	if network == "udp6" {
		name = "/proc/net/udp6"
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		local, err := procAddr(fields[1])
		if err != nil || local.Port != port {
			continue
		}
		return procAddr(fields[2])
	}
	return nil, fmt.Errorf("no UDP socket on port %d in %s", port, name)
}

// procAddr decodes /proc/net/udp's "HEX_IP:HEX_PORT" (the address as 32-bit words in
// host byte order, little-endian here).
func procAddr(s string) (*net.UDPAddr, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("bad address %q", s)
	}
	raw, err := hex.DecodeString(h)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return nil, err
	}
	ip := make(net.IP, len(raw))
	for i := 0; i+4 <= len(raw); i += 4 {
		binary.BigEndian.PutUint32(ip[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	return &net.UDPAddr{IP: ip, Port: int(port)}, nil
}
