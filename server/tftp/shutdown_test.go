package tftp

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/internal/logbuf"
	"github.com/rpi-deploy/rpi-deploy/server/netnstest"
)

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ev)
}

// TestShutdownWhileRequestsArrive pins the pin/tftp v3.1.0 shutdown race that a fixed
// 100 ms sleep used to paper over (issue 18): a request the library's loop read just
// before the socket closed started a transfer after Shutdown had begun waiting (a
// WaitGroup Add racing Wait, which -race reports) and ran after Serve returned. With
// requests arriving all the time, Serve must return nil, stop through its own stop
// packet (not the fallback), and no request may be handled after it returned.
func TestShutdownWhileRequestsArrive(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{KernelFile, InitramfsFile, "bcm2712-rpi-5-b.dtb"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 10 {
		rec := &recorder{}
		var log logbuf.Buffer
		s, err := New(Options{Root: root, Recorder: rec, Timeout: time.Second, Retries: 1,
			Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Listen("127.0.0.1:0", ""); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()

		// Requests for a missing file: each starts a transfer that ends at once.
		c, err := net.DialUDP("udp4", nil, s.LocalAddr())
		if err != nil {
			t.Fatal(err)
		}
		rrq := []byte("\x00\x01nope-" + string(rune('a'+round%26)) + "\x00octet\x00")
		stopSending := make(chan struct{})
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			for {
				select {
				case <-stopSending:
					return
				default:
					c.Write(rrq)
				}
			}
		}()
		if !rec.wait(30*time.Second, func(evs []Event) bool { return len(evs) >= 5 }) {
			t.Fatalf("round %d: fewer than 5 requests handled in 30 s", round)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("round %d: Serve: %v", round, err)
			}
		case <-time.After(stopGiveUp + 30*time.Second):
			t.Fatalf("round %d: Serve did not return after cancel", round)
		}
		after := rec.count()
		time.Sleep(50 * time.Millisecond)
		close(stopSending)
		<-sent
		c.Close()
		if n := rec.count(); n != after {
			t.Errorf("round %d: %d requests handled after Serve returned", round, n-after)
		}
		if strings.Contains(log.String(), "closing from outside") {
			t.Errorf("round %d: the stop packet did not stop the loop: %s", round, log.String())
		}
	}
}

// TestShutdownBoundToInterface: a server bound to an interface (as rpi-deployd binds
// the deploy network's) stops through its stop packet too: a datagram to the
// interface's own address counts as coming in on it.
func TestShutdownBoundToInterface(t *testing.T) {
	netnstest.Require(t)
	f := newFixture(t)
	l := netnstest.NewLink(t, "10.76.0.1/24", "10.76.0.2/24")
	var log logbuf.Buffer
	s, err := New(Options{Root: f.root, Recorder: f.rec, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	l.Server.MustDo(t, func() error { return s.Listen("0.0.0.0:69", l.ServerIf) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Server.Do(func() error { return s.Serve(ctx) }) }()
	var opts map[string]string
	l.Client.MustDo(t, func() (err error) {
		opts, err = probeFrom(net.IPv4(10, 76, 0, 2), &net.UDPAddr{IP: net.IPv4(10, 76, 0, 1), Port: 69}, "kernel_2712.img", "1468")
		return err
	})
	if opts["blksize"] != "1468" {
		t.Fatalf("probe: OACK %v", opts)
	}
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if strings.Contains(log.String(), "closing from outside") {
		t.Errorf("the stop packet did not reach the interface-bound socket (after %v): %s", time.Since(start), log.String())
	}
}
