package tftp

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/netnstest"
)

// TestAcrossVeth serves a board over a veth pair with Ethernet's MTU, as on the wire
// to a Pi: the bootloader's blksize 1468 is granted as asked, a larger one is capped at
// MTU − 28, and atftp fetches byte-exact through the server's interface binding.
func TestAcrossVeth(t *testing.T) {
	netnstest.Require(t)
	f := newFixture(t) // reuse the root; its loopback server is not used here
	l := netnstest.NewLink(t, "10.75.0.1/24", "10.75.0.2/24")
	s, err := New(Options{Root: f.root, Recorder: f.rec})
	if err != nil {
		t.Fatal(err)
	}
	l.Server.MustDo(t, func() error { return s.Listen("0.0.0.0:69", l.ServerIf) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// pin/tftp opens each transfer's socket on Serve's goroutine: keep that goroutine
	// on a thread inside the namespace for its whole life.
	go func() { done <- l.Server.Do(func() error { return s.Serve(ctx) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	addr := &net.UDPAddr{IP: net.IPv4(10, 75, 0, 1), Port: 69}

	for blksize, want := range map[string]string{"1468": "1468", "8192": "1472"} {
		var opts map[string]string
		l.Client.MustDo(t, func() (err error) {
			opts, err = probeFrom(net.IPv4(10, 75, 0, 2), addr, "abcd1234/kernel_2712.img", blksize)
			return err
		})
		if opts["blksize"] != want || opts["tsize"] != strconv.Itoa(len(f.files["kernel_2712.img"])) {
			t.Errorf("blksize %s: OACK %v, want blksize %s and the file's tsize", blksize, opts, want)
		}
	}
	out := filepath.Join(t.TempDir(), "kernel")
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	if msg, err := l.Client.Run(cctx, "atftp", "--option", "blksize 1468", "--option", "tsize 0",
		"-g", "-r", "abcd1234/kernel_2712.img", "-l", out, "10.75.0.1", "69"); err != nil {
		t.Fatalf("atftp: %v %s", err, msg)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, f.files["kernel_2712.img"]) {
		t.Fatalf("atftp across the veth pair: %d bytes differ", len(got))
	}
	if ev, ok := f.rec.find("abcd1234/kernel_2712.img"); !ok || ev.Remote.Addr().String() != "10.75.0.2" || ev.Bytes != int64(len(got)) {
		t.Errorf("event %+v", ev)
	}
}
