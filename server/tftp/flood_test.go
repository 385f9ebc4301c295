package tftp

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// flood sends read requests with the Pi's options (tsize 0, blksize 1468) from every
// source address in srcs, rate per second in all, until ctx ends, and never
// acknowledges anything: the attack of issue 13 (1500 RRQ/s never ACKed held 20 000
// descriptors in 10 s). It returns the number of requests sent.
func flood(ctx context.Context, t testing.TB, dst *net.UDPAddr, srcs []net.IP, rate int) int64 {
	t.Helper()
	var conns []*net.UDPConn
	for _, ip := range srcs {
		for range 4 { // several source ports per address, like a real flooder
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
			if err != nil {
				t.Fatalf("flooder socket on %s: %v", ip, err)
			}
			defer c.Close()
			conns = append(conns, c)
		}
	}
	req := rrq("kernel_2712.img", "tsize", "0", "blksize", "1468")
	tk := time.NewTicker(10 * time.Millisecond)
	defer tk.Stop()
	start := time.Now()
	var sent, tried int64
	for {
		select {
		case <-ctx.Done():
			return sent
		case <-tk.C:
		}
		// As many as are due by now: a tick the scheduler delays (a loaded machine)
		// is made up at the next, so the rate holds.
		for due := int64(time.Since(start).Seconds() * float64(rate)); tried < due; tried++ {
			if _, err := conns[tried%int64(len(conns))].WriteTo(req, dst); err == nil {
				sent++
			}
		}
	}
}

// refusing bounds the sockets pin/tftp holds at once for requests our handler is
// refusing (see TestFloodFromOneHostLeavesBootsServed), far below a flood's count.
const refusing = 256

// peakFDs samples the open descriptors every 20 ms until ctx ends and returns the highest.
func peakFDs(ctx context.Context, t testing.TB) func() int {
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if n := int64(openFDs(t)); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() int { <-done; return int(peak.Load()) }
}

// TestFloodFromOneHostLeavesBootsServed pins the TFTP descriptor exhaustion of issue 13:
// one host sends 1500 read requests a second for 4 s and never acknowledges one. The
// per-client cap keeps it to MaxPerClient sockets (without it: one socket per request,
// thousands), a real boot (atftp and curl asking like the Pi: blksize 1468, tsize 0)
// from another address is served byte-exact meanwhile, and once the flood stops every
// descriptor is freed by the retransmission timeout (Timeout × (Retries+1)).
func TestFloodFromOneHostLeavesBootsServed(t *testing.T) {
	// Timeout 1s, Retries 3; MaxPerClient and MaxTransfers at their defaults.
	f := newFixture(t)
	if _, err := probe(f.addr, "kernel_2712.img"); err != nil { // warm up: lazily opened fds
		t.Fatal(err)
	}
	f.idle(t, "kernel_2712.img")
	before := openFDs(t)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	peak := peakFDs(ctx, t)
	var sent int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sent = flood(ctx, t, f.addr, []net.IP{net.IPv4(127, 0, 0, 2)}, 1500)
	}()
	f.floodIsOn(t)
	for _, client := range []string{"atftp", "curl"} {
		for _, name := range []string{"abcd1234/config.txt", "abcd1234/kernel_2712.img"} {
			got, err := fetch(t, client, f.addr, name)
			if err != nil {
				t.Fatalf("%s %s during the flood: %v", client, name, err)
			}
			if !bytes.Equal(got, f.files[name]) {
				t.Fatalf("%s %s during the flood: %d bytes, not the file's %d", client, name, len(got), len(f.files[name]))
			}
		}
	}
	// The flooder holds at most its cap; the board's last transfer (one at a time,
	// from another address) may still be counted while its final ACK is handled.
	if busy := f.srv.Transfers(); busy > DefaultMaxPerClient+1 {
		t.Errorf("%d transfers running during a one-host flood; the per-client cap is %d (+1: the board's own last transfer)", busy, DefaultMaxPerClient)
	}
	wg.Wait()
	high := peak()
	// The flooder's own 4 sockets, the per-client cap, and sockets pin/tftp opens for a
	// refused request until its ERROR is sent: pin/tftp opens it before our handler runs,
	// so their number follows the request rate times the handler's latency (about 100
	// at once under -race on a loaded machine). Without the cap every request of the
	// flood holds its socket for Timeout × (Retries+1): thousands at once.
	if limit := before + 4 + DefaultMaxPerClient + refusing; high > limit {
		t.Errorf("open descriptors peaked at %d during the flood (%d before); want at most %d", high, before, limit)
	}
	after := settle(t, before)
	t.Logf("%d requests in 4 s from one host: descriptors %d before, peak %d, %d after", sent, before, high, after)
	if after > before {
		t.Errorf("open descriptors %d after the flood's transfers timed out; %d before", after, before)
	}
	if sent < 3000 {
		t.Errorf("the flooder sent only %d requests; the test did not flood", sent)
	}
}

// TestFloodFromManyHostsIsCapped: 64 source addresses flood at once, beyond what any
// per-client cap can stop; the global cap bounds the sockets, a board asking meanwhile
// gets a clear "server busy" ERROR (it retries), and it is served once the flood ends
// and the held transfers time out. Busy refusals to unanswerable requests (port 0)
// leak no socket.
func TestFloodFromManyHostsIsCapped(t *testing.T) {
	const maxTransfers = 32
	f := newFixtureWith(t, func(o *Options) { o.MaxTransfers = maxTransfers })
	if _, err := probe(f.addr, "kernel_2712.img"); err != nil {
		t.Fatal(err)
	}
	f.idle(t, "kernel_2712.img")
	before := openFDs(t)
	var srcs []net.IP
	for i := range 64 {
		srcs = append(srcs, net.IPv4(127, 0, 1, byte(1+i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	peak := peakFDs(ctx, t)
	done := make(chan int64)
	go func() { done <- flood(ctx, t, f.addr, srcs, 1500) }()
	f.floodIsOn(t)
	_, err := fetch(t, "atftp", f.addr, "abcd1234/config.txt") // atftp prints the ERROR's text; curl does not
	if err == nil || !strings.Contains(err.Error(), "server busy") {
		t.Errorf("a board asking while the global cap is full: got %v, want the ERROR %q", err, ErrBusy)
	}
	if n := f.srv.Transfers(); n > maxTransfers {
		t.Errorf("%d transfers running; the cap is %d", n, maxTransfers)
	}
	sent := <-done
	high := peak()
	// Requests refused as busy (the held transfers still fill the cap) that cannot be
	// answered (source port 0: the case in which pin/tftp v3.1.0 leaks the socket of an
	// aborted transfer) leave nothing. The garbage collector is off until the count is
	// back, so that finalizers cannot close a leaked socket behind the test's back.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	if n := f.srv.Transfers(); n < maxTransfers/2 {
		t.Fatalf("only %d transfers held right after the flood; the port-0 requests would not be refused as busy", n)
	}
	for range 200 {
		sendFromPortZero(t, f.addr, "kernel_2712.img")
	}
	if limit := before + len(srcs)*4 + maxTransfers + refusing; high > limit {
		t.Errorf("open descriptors peaked at %d (%d before, %d flooder sockets); want at most %d", high, before, len(srcs)*4, limit)
	}
	// The flood is over: the held transfers time out and the board gets its file.
	var got []byte
	deadline := time.Now().Add(15 * time.Second)
	for {
		if got, err = fetch(t, "curl", f.addr, "abcd1234/config.txt"); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil || !bytes.Equal(got, f.files["abcd1234/config.txt"]) {
		t.Fatalf("after the flood: %v (%d bytes)", err, len(got))
	}
	after := settle(t, before)
	t.Logf("%d requests from %d hosts: descriptors %d before, peak %d, %d after", sent, len(srcs), before, high, after)
	if after > before {
		t.Errorf("open descriptors %d after the flood; %d before", after, before)
	}
}

// leases is a Boards that knows some addresses, as the DHCP leases of full mode do.
type leases map[netip.Addr]Board

func (l leases) BoardByIP(_ context.Context, ip netip.Addr) (Board, bool) {
	b, ok := l[ip]
	return b, ok
}

// TestFloodLeavesLeasedBoardsServed: the same flood from 64 addresses, but the board
// has a DHCP lease: the flood (addresses no lease knows) holds at most three quarters
// of the global cap, and the board gets its files, byte-exact, while it runs.
func TestFloodLeavesLeasedBoardsServed(t *testing.T) {
	const maxTransfers = 32
	board := netip.MustParseAddr("127.0.0.1")
	f := newFixtureWith(t, func(o *Options) {
		o.MaxTransfers = maxTransfers
		o.Boards = leases{board: {Serial: "abcd1234", MAC: "2c:cf:67:00:00:01"}}
	})
	var srcs []net.IP
	for i := range 64 {
		srcs = append(srcs, net.IPv4(127, 0, 1, byte(1+i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	done := make(chan int64)
	go func() { done <- flood(ctx, t, f.addr, srcs, 1500) }()
	f.floodIsOn(t)
	if n := f.srv.Transfers(); n > maxTransfers-maxTransfers/4 {
		t.Errorf("the flood holds %d transfers; addresses without a lease may hold %d", n, maxTransfers-maxTransfers/4)
	}
	for _, client := range []string{"atftp", "curl"} {
		for _, name := range []string{"abcd1234/config.txt", "abcd1234/kernel_2712.img"} {
			got, err := fetch(t, client, f.addr, name)
			if err != nil || !bytes.Equal(got, f.files[name]) {
				t.Errorf("%s %s with a lease, during the flood: %v (%d bytes)", client, name, err, len(got))
			}
		}
	}
	t.Logf("%d requests from %d addresses without a lease; the leased board was served", <-done, len(srcs))
}
