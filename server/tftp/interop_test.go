package tftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/internal/logbuf"
)

type recorder struct {
	mu      sync.Mutex
	ev      []Event
	changed logbuf.Changes
}

func (r *recorder) RecordTFTP(_ context.Context, ev Event) {
	r.mu.Lock()
	r.ev = append(r.ev, ev)
	r.changed.Notify()
	r.mu.Unlock()
}

// wait blocks until ok holds for the events recorded so far, checking again on every
// new event, or until timeout; it reports whether ok held.
func (r *recorder) wait(timeout time.Duration, ok func([]Event) bool) bool {
	return logbuf.Wait(&r.mu, &r.changed, timeout, func() bool { return ok(r.ev) })
}

// find waits up to 2 s for the last event of name: the server records a transfer after
// the client's last ACK, which may be after the client exits.
func (r *recorder) find(name string) (Event, bool) {
	var found Event
	ok := r.wait(2*time.Second, func(evs []Event) bool {
		for i := len(evs) - 1; i >= 0; i-- {
			if evs[i].Name == name && !evs[i].Started {
				found = evs[i]
				return true
			}
		}
		return false
	})
	return found, ok
}

func (r *recorder) started(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.ev {
		if ev.Name == name && ev.Started {
			return true
		}
	}
	return false
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.ev = nil
	r.mu.Unlock()
}

type fixture struct {
	root  string
	addr  *net.UDPAddr
	rec   *recorder
	files map[string][]byte // name as requested -> content expected
	log   *logbuf.Buffer    // the server's log (unless the test set its own Logger)
	srv   *Server
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// newFixture builds a TFTP root like tftproot makes (kernel, dtb, initramfs, overlays),
// a board directory, and a symlink out of the root; it starts a server on loopback.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureWith(t, func(*Options) {})
}

// newFixtureWith is newFixture with changes to the server's options.
func newFixtureWith(t testing.TB, change func(*Options)) *fixture {
	t.Helper()
	root := t.TempDir()
	outside := t.TempDir()
	f := &fixture{root: root, rec: &recorder{}, log: &logbuf.Buffer{}, files: map[string][]byte{}}
	write := func(rel string, b []byte) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kernel := randBytes(t, 3*1468*100+17) // not a multiple of any block size
	dtb := randBytes(t, 60_000)
	special := randBytes(t, 1468*4) // an exact multiple: the transfer ends with an empty block
	write("kernel_2712.img", kernel)
	write("bcm2712-rpi-5-b.dtb", dtb)
	write("initramfs_2712", randBytes(t, 100_000))
	write("overlays/overlay_map.dtb", randBytes(t, 3000))
	write("abcd1234/special.bin", special)
	write("abcd1234/kernel_2712.img", kernel) // same bytes: the board dir wins, fallback tested with dtb
	write("config.txt", []byte("# the master image's config.txt: never served\n"))
	write("cmdline.txt", []byte("root=PARTUUID=0000-02 rootwait # the image's: never served\n"))
	override := []byte("console=ttyAMA10 rpideploy.server=http://elsewhere:8080 # this board's own\n")
	write("feed0001/cmdline.txt", override)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644)
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "evil")); err != nil {
		t.Fatal(err)
	}
	os.Symlink("../../"+filepath.Base(outside)+"/secret", filepath.Join(root, "abcd1234", "evil2"))
	os.Symlink("kernel_2712.img", filepath.Join(root, "kernel8.img")) // inside the root: fine
	f.files["kernel_2712.img"] = kernel
	f.files["kernel8.img"] = kernel
	f.files["abcd1234/kernel_2712.img"] = kernel
	f.files["abcd1234/bcm2712-rpi-5-b.dtb"] = dtb
	f.files["abcd1234/special.bin"] = special
	f.files["abcd1234/config.txt"] = ConfigTxt(Board{Serial: "abcd1234"}, "")
	f.files["abcd1234/cmdline.txt"] = CmdlineTxt(Board{Serial: "abcd1234"}, "", "http://10.42.0.1:8080")
	f.files["cmdline.txt"] = CmdlineTxt(Board{}, "", "http://10.42.0.1:8080")
	f.files["config.txt"] = ConfigTxt(Board{}, "")
	f.files["feed0001/cmdline.txt"] = override
	f.files["feed0001/config.txt"] = ConfigTxt(Board{Serial: "feed0001"}, "")

	if err := CheckRoot(root); err != nil {
		t.Fatal(err)
	}
	o := Options{Root: root, ServerURL: "http://10.42.0.1:8080", Recorder: f.rec, Timeout: time.Second, Retries: 3,
		Logger: slog.New(slog.NewTextHandler(f.log, nil))}
	change(&o)
	f.srv = serveLoopback(t, o)
	f.addr = f.srv.LocalAddr()
	return f
}

// serveLoopback starts a server with o on a loopback port for the rest of the test;
// when the test ends, Serve must return nil.
func serveLoopback(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0", ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// idle waits until the server has recorded the end of a transfer of each of names and
// holds no transfer slot, so that the descriptors a test counts next are those of an
// idle server. The slot is released just after the transfer is recorded, with no event
// of its own: that last step is polled (1 ms, 5 s at most). A refused request's socket
// is closed by pin/tftp after the handler returns, also without an event; it may still
// be open, one descriptor, which no leak test here could confuse with a leak.
func (f *fixture) idle(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, ok := f.rec.find(name); !ok {
			t.Fatalf("no end of a transfer of %q recorded", name)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); f.srv.Transfers() > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d transfers still hold a slot 5 s after their end was recorded", f.srv.Transfers())
		}
	}
}

// floodIsOn waits until the server refuses requests for want of a slot (its WARN line
// "too many transfers at once"): a flood has filled a cap.
func (f *fixture) floodIsOn(t testing.TB) {
	t.Helper()
	if !f.log.WaitFor("too many transfers at once", 10*time.Second) {
		t.Fatalf("no request refused as busy 10 s into the flood; log:\n%s", f.log.String())
	}
}

// clients fetch name into out; each is a real TFTP client the way test-peers.md says.
var clients = map[string]func(ctx context.Context, addr *net.UDPAddr, name, out string) *exec.Cmd{
	"tftp-hpa": func(ctx context.Context, a *net.UDPAddr, name, out string) *exec.Cmd {
		return exec.CommandContext(ctx, "tftp", "-m", "binary", a.IP.String(), strconv.Itoa(a.Port), "-c", "get", name, out)
	},
	"atftp": func(ctx context.Context, a *net.UDPAddr, name, out string) *exec.Cmd {
		return exec.CommandContext(ctx, "atftp", "--option", "blksize 1468", "--option", "tsize 0",
			"-g", "-r", name, "-l", out, a.IP.String(), strconv.Itoa(a.Port))
	},
	"curl": func(ctx context.Context, a *net.UDPAddr, name, out string) *exec.Cmd {
		return exec.CommandContext(ctx, "curl", "-sS", "--fail", "--tftp-blksize", "1468", "-o", out,
			fmt.Sprintf("tftp://%s:%d/%s", a.IP, a.Port, name))
	},
}

func fetch(t *testing.T, client string, addr *net.UDPAddr, name string) ([]byte, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := clients[client](ctx, addr, name, out)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", cmd, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", cmd, err, msg)
	}
	// tftp-hpa and atftp exit 0 after an ERROR packet; they print it.
	if bytes.Contains(msg, []byte("Error")) || bytes.Contains(msg, []byte("error")) {
		return b, fmt.Errorf("%s: %s", cmd, msg)
	}
	return b, nil
}

func TestRealClientsFetchByteExact(t *testing.T) {
	for _, tool := range []string{"tftp", "atftp", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s missing (scripts/deps/netboot.apt installs it)", tool)
		}
	}
	f := newFixture(t)
	for _, client := range []string{"tftp-hpa", "atftp", "curl"} {
		for name, want := range f.files {
			t.Run(client+"/"+name, func(t *testing.T) {
				f.rec.reset()
				got, err := fetch(t, client, f.addr, name)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%d bytes differ from the %d expected", len(got), len(want))
				}
				ev, ok := f.rec.find(name)
				if !ok || ev.Err != nil || ev.Bytes != int64(len(want)) || ev.Probe {
					t.Errorf("event %+v, want %d bytes sent without error", ev, len(want))
				}
				if started := f.rec.started(name); started != (len(want) > 512) {
					t.Errorf("started event: %v, want one only for files of more than one block", started)
				}
				if strings.HasPrefix(name, "abcd1234/") && (ev.Board.Serial != "abcd1234" || ev.File != strings.TrimPrefix(name, "abcd1234/")) {
					t.Errorf("per-board event = %+v, want serial abcd1234", ev)
				}
			})
		}
	}
}

func TestTraversalRefused(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"../etc/passwd", "/etc/passwd", "abcd1234/../../etc/passwd", "evil", "abcd1234/evil2", "overlays/../../x"} {
		for _, client := range []string{"atftp", "curl"} {
			t.Run(client+"/"+name, func(t *testing.T) {
				got, err := fetch(t, client, f.addr, name)
				if err == nil {
					t.Fatalf("fetched %q: %q", name, got)
				}
				if bytes.Contains(got, []byte("secret")) {
					t.Fatalf("leaked the file outside the root")
				}
			})
		}
		ev, ok := f.rec.find(name)
		if !ok || !errors.Is(ev.Err, ErrRefused) {
			t.Errorf("%q: event %+v, want ErrRefused recorded", name, ev)
		}
	}
}

func TestManyBoardsAtOnce(t *testing.T) {
	// 20 boards on one loopback address: lift the per-client cap (boards have their own).
	f := newFixtureWith(t, func(o *Options) { o.MaxPerClient = 20 })
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "kernel_2712.img"
			if i%2 == 1 {
				name = "abcd1234/kernel_2712.img"
			}
			got, err := fetch(t, []string{"atftp", "curl"}[i%2], f.addr, name)
			if err == nil && !bytes.Equal(got, f.files[name]) {
				err = fmt.Errorf("client %d: %d bytes differ", i, len(got))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// rrq builds a read request with the options the Pi 5 bootloader sends.
func rrq(name string, opts ...string) []byte {
	b := []byte{0, 1}
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, "octet"...)
	b = append(b, 0)
	for _, o := range opts {
		b = append(b, o...)
		b = append(b, 0)
	}
	return b
}

// readSkippingStale reads the next packet, skipping the ERROR "…Early terminate" that
// pin/tftp sends back after an earlier probe: on loopback, a new client socket often
// gets the port of one that has just finished.
func readSkippingStale(c *net.UDPConn, buf []byte) (int, *net.UDPAddr, error) {
	for {
		n, from, err := c.ReadFromUDP(buf)
		if err != nil || !(n > 4 && buf[1] == 5 && strings.Contains(string(buf[4:n]), "Early terminate")) {
			return n, from, err
		}
	}
}

// probe does what the bootloader does to test that a file exists: RRQ with tsize 0 and
// blksize 1468, ACK the OACK, read block 1, answer ERROR "Early terminate". It returns
// the OACK's options.
func probe(addr *net.UDPAddr, name string) (map[string]string, error) {
	return probeFrom(net.IPv4(127, 0, 0, 1), addr, name, "1468")
}

func probeFrom(local net.IP, addr *net.UDPAddr, name, blksize string) (map[string]string, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: local})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.WriteTo(rrq(name, "tsize", "0", "blksize", blksize), addr); err != nil {
		return nil, err
	}
	buf := make([]byte, 2000)
	n, from, err := readSkippingStale(c, buf)
	if err != nil {
		return nil, err
	}
	if n < 2 || buf[1] != 6 {
		return nil, fmt.Errorf("want OACK, got % x", buf[:min(n, 40)])
	}
	fields := strings.Split(string(buf[2:n]), "\x00")
	opts := map[string]string{}
	for i := 0; i+1 < len(fields); i += 2 {
		opts[fields[i]] = fields[i+1]
	}
	c.WriteTo([]byte{0, 4, 0, 0}, from)
	n, _, err = readSkippingStale(c, buf)
	if err != nil {
		return nil, err
	}
	if n < 4 || buf[1] != 3 || buf[3] != 1 {
		return nil, fmt.Errorf("want DATA 1, got % x", buf[:min(n, 8)])
	}
	_, err = c.WriteTo(append([]byte{0, 5, 0, 0}, "Early terminate\x00"...), from)
	return opts, err
}

func TestOACKAndProbe(t *testing.T) {
	f := newFixture(t)
	opts, err := probe(f.addr, "abcd1234/kernel_2712.img")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"tsize": strconv.Itoa(len(f.files["kernel_2712.img"])), "blksize": "1468"}
	if fmt.Sprint(opts) != fmt.Sprint(want) {
		t.Errorf("OACK %v, want %v", opts, want)
	}
	// The generated config.txt has a size too.
	opts, err = probe(f.addr, "abcd1234/config.txt")
	if err != nil {
		t.Fatal(err)
	}
	if opts["tsize"] != strconv.Itoa(len(f.files["abcd1234/config.txt"])) {
		t.Errorf("config.txt OACK %v", opts)
	}
	if ev, ok := f.rec.find("abcd1234/kernel_2712.img"); !ok || !ev.Probe || ev.Err != nil {
		t.Errorf("probe event %+v: want Probe and no error", ev)
	}
	if f.rec.started("abcd1234/kernel_2712.img") {
		t.Error("a probe was recorded as a started transfer")
	}
}

func TestCheckRootAndPortTaken(t *testing.T) {
	dir := t.TempDir()
	err := CheckRoot(dir)
	for _, want := range []string{"kernel_2712.img", "initramfs_2712", "bcm2712"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckRoot(empty) = %v, want it to name %s", err, want)
		}
	}
	if err := CheckRoot(filepath.Join(dir, "nope")); err == nil {
		t.Error("CheckRoot(missing dir) = nil")
	}
	f := newFixture(t)
	s, err := New(Options{Root: f.root})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Listen(f.addr.String(), "")
	if err == nil || !strings.Contains(err.Error(), "already taken") {
		t.Errorf("Listen on a taken port: %v", err)
	}
}
