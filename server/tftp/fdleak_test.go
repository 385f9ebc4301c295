package tftp

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// settle waits until the open descriptors drop to at most want (transfers finish
// asynchronously after the client's last packet) and returns the count.
func settle(t testing.TB, want int) int {
	t.Helper()
	n := openFDs(t)
	for deadline := time.Now().Add(10 * time.Second); n > want && time.Now().Before(deadline); n = openFDs(t) {
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// missing asks for a file that does not exist and expects an ERROR packet.
func missing(addr *net.UDPAddr, name string) error {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.WriteTo(rrq(name, "tsize", "0", "blksize", "1468"), addr); err != nil {
		return err
	}
	buf := make([]byte, 600)
	n, _, err := readSkippingStale(c, buf)
	if err != nil {
		return err
	}
	if n < 4 || buf[1] != 5 {
		return fmt.Errorf("want ERROR for %q, got % x", name, buf[:min(n, 20)])
	}
	return nil
}

// sendFromPortZero sends an RRQ whose UDP source port is 0 through a raw socket. The
// server cannot answer it (sendto to port 0 fails with EINVAL): the case in which
// pin/tftp v3.1.0 leaks the transfer socket when the handler returns an error.
func sendFromPortZero(t testing.TB, dst *net.UDPAddr, name string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_UDP)
	if err != nil {
		t.Fatalf("raw socket (needs CAP_NET_RAW): %v", err)
	}
	defer unix.Close(fd)
	payload := rrq(name)
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:2], 0) // source port 0
	binary.BigEndian.PutUint16(udp[2:4], uint16(dst.Port))
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp)))
	copy(udp[8:], payload) // checksum 0: none (allowed for IPv4)
	sa := &unix.SockaddrInet4{}
	copy(sa.Addr[:], dst.IP.To4())
	if err := unix.Sendto(fd, udp, 0, sa); err != nil {
		t.Fatal(err)
	}
}

// TestProbesLeaveNoDescriptors pins the pin/tftp v3.1.0 descriptor leak on aborted
// transfers (issue #64, fixed upstream after v3.1.0): 10 000 "Early terminate" probes
// like the Pi bootloader's, requests for missing files, and unanswerable requests from
// port 0 must leave the process's open descriptors where they were.
//
// The garbage collector is off meanwhile: a leaked *net.UDPConn is otherwise closed by
// its finalizer at the next GC, which hides the leak in a short test but not the
// descriptors a busy server holds between collections.
func TestProbesLeaveNoDescriptors(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	// 8 workers on one address stand for many boards: lift the per-client cap.
	f := newFixtureWith(t, func(o *Options) { o.MaxPerClient = 1000 })
	if _, err := probe(f.addr, "kernel_2712.img"); err != nil { // warm up: lazily opened fds
		t.Fatal(err)
	}
	if err := missing(f.addr, "pieeprom.sig"); err != nil {
		t.Fatal(err)
	}
	f.idle(t, "kernel_2712.img", "pieeprom.sig")
	before := openFDs(t)

	const probes, workers = 10_000, 8
	names := []string{"kernel_2712.img", "abcd1234/config.txt", "abcd1234/bcm2712-rpi-5-b.dtb", "abcd1234/special.bin"}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < probes; i += workers {
				var err error
				if i%50 == 0 {
					err = missing(f.addr, "pieeprom.sig") // the bootloader's self-update probe
				} else {
					_, err = probe(f.addr, names[i%len(names)])
				}
				if err != nil {
					errs <- fmt.Errorf("probe %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for range 200 {
		sendFromPortZero(t, f.addr, "no-such-file")
		sendFromPortZero(t, f.addr, "../refused")
	}
	after := settle(t, before)
	t.Logf("open descriptors: %d before, %d after %d probes and 400 unanswerable requests", before, after, probes)
	if after > before {
		t.Errorf("open descriptors grew from %d to %d", before, after)
	}
}
