//go:build e2e

package e2e

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
	"github.com/rpi-deploy/rpi-deploy/server/client"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/netnstest"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// Inputs, set by `make e2e`.
const (
	envInitramfs = "RPI_DEPLOY_INITRAMFS" // the built initramfs_2712
	envKernel    = "RPI_DEPLOY_KERNEL"    // Debian's arm64 vmlinuz
	envDHCP      = "RPI_DEPLOY_E2E_DHCP"  // "rpi-deployd" (default) or "dnsmasq"
)

const (
	serverIP   = "10.77.0.1"
	serverCIDR = serverIP + "/24"
	serverURL  = "http://" + serverIP + ":8080"
	serial     = "10000000e2e00001"
	mac        = "2c:cf:67:0e:2e:01"
	bootWait   = 4 * time.Minute // QEMU start to power-off, at most
)

func input(t *testing.T, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Fatalf("%s is not set: run `make e2e`", env)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	return p
}

// TestBootFlashVerify is the whole chain on a real kernel: DHCP, hello, flash, verify,
// name, power off.
func TestBootFlashVerify(t *testing.T) {
	initramfs, kernel := input(t, envInitramfs), input(t, envKernel)
	needTools(t, "qemu-system-aarch64", "sfdisk", "mtype", "fsck.fat", "e2fsck")
	ctx := context.Background()
	dir := t.TempDir()

	// The master image: Raspberry Pi OS-shaped, small, packed as the server stores it.
	src, packed := filepath.Join(dir, "master.img"), filepath.Join(dir, "e2e-bookworm.img.zst")
	info, man := smallImage(t, src, packed, 7)
	t.Logf("image: %d MiB raw, %d MiB data, %d KiB packed", info.Size>>20, man.DataBytes>>20, man.CompressedSize>>10)

	// The SD card: a used card, full of old bytes, a little larger than the image.
	card := filepath.Join(dir, "card.img")
	writeJunk(t, card, info.Size+32<<20)

	// The network: server namespace -- veth -- bridge + tap0 in the guest's namespace.
	l := netnstest.NewLink(t, serverCIDR, "")
	l.AddBridgeTap(t, "tap0")
	useNamespace(l.Server)
	srv := startServer(t, l)
	fleet := srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 1, Image: packed})
	t.Logf("batch %d: %s", fleet.Batch.ID, fleet.ImageName)

	// Boot. The board's serial and target come from the kernel command line (the virt
	// machine has no Pi device tree); the server URL from DHCP option 224.
	g := bootQEMU(t, vm{ns: l.Client, kernel: kernel, initramfs: initramfs, card: card,
		cmdline: "rpideploy.target=/dev/vda rpideploy.serial=" + serial})
	if err := g.wait(bootWait); err != nil {
		t.Fatalf("QEMU: %v\nconsole (last lines):\n%s", err, g.tail(80))
	}
	if g.at("hello") == 0 {
		t.Errorf("no hello on the console:\n%s", g.tail(80))
	}
	for _, want := range []string{`msg="kernel modules loaded" loaded=8 failed=0`, "DHCP lease", "environment ready"} {
		if !strings.Contains(g.log(), want) {
			t.Errorf("console lacks %q", want)
		}
	}
	// No rpideploy.server on the command line: the URL came with the lease (option 224).
	if want := "msg=\"environment ready\" server=" + serverURL; !strings.Contains(g.log(), want) {
		t.Errorf("console lacks %q: the agent did not take the server URL from DHCP", want)
	}
	// The server says poweroff (serve --after poweroff): the guest powers itself down.
	if !strings.Contains(g.log(), "rpi-agent: powering off") || !strings.Contains(g.log(), "reboot: Power down") {
		t.Errorf("console lacks the agent's power-off")
	}

	// The server's record.
	var board struct {
		mgmtapi.Board
		Deployments []mgmtapi.Deployment `json:"deployments"`
	}
	if err := srv.Do(ctx, http.MethodGet, "/api/v1/boards/"+serial, nil, &board); err != nil {
		t.Fatalf("board %s: %v", serial, err)
	}
	if len(board.Deployments) != 1 {
		t.Fatalf("board has %d deployments, want 1: %+v", len(board.Deployments), board.Deployments)
	}
	d := board.Deployments[0]
	if d.State != mgmtapi.DeployVerified || d.SHA256 != man.SHA256 || d.Image != fleet.ImageName {
		t.Errorf("deployment = state %q sha256 %q image %q, want %q %q %q (error %q in %q)",
			d.State, d.SHA256, d.Image, mgmtapi.DeployVerified, man.SHA256, fleet.ImageName, d.Error, d.ErrorPhase)
	}
	if !regexp.MustCompile(`^KXP2-CORO-\d{3}$`).MatchString(d.Hostname) || board.MAC != mac || !board.Deployed {
		t.Errorf("board = hostname %q mac %q deployed %v, want KXP2-CORO-NNN %s true", d.Hostname, board.MAC, board.Deployed, mac)
	}
	// The server's clock is this machine's: its record dates the hello (deployment
	// opened) and the verification (deployment finished).
	hello, verified := since(t, g.start, d.StartedAt), since(t, g.start, d.FinishedAt)
	fmt.Printf("e2e: seconds from QEMU start: hello %.1f, verified %.1f, powered off %.1f (console hello %.1f)\n",
		hello.Seconds(), verified.Seconds(), g.took.Seconds(), g.at("hello").Seconds())

	if ip := net.ParseIP(board.IP).To4(); ip == nil || !ip.Mask(net.CIDRMask(24, 32)).Equal(net.IPv4(10, 77, 0, 0)) || ip[3] < 100 || ip[3] > 150 {
		t.Errorf("board IP %q is not from the DHCP range 10.77.0.100-150", board.IP)
	}

	checkCard(t, card, src, info, man, d.Hostname)
}

// needTools fails the test when a tool it runs is not installed.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (make deps): %v", tool, err)
		}
	}
}

// smallImage builds a small Raspberry Pi OS-shaped master image (firstrun) at src
// and packs it to packed as the server stores it.
func smallImage(t *testing.T, src, packed string, seed int64) (*testimg.Info, *manifest.Manifest) {
	t.Helper()
	ctx := context.Background()
	info, err := testimg.BuildContext(ctx, src, testimg.Options{Kind: testimg.BookwormFirstrun,
		BootSize: testimg.MinBootSize, RootData: 24 << 20, RootFree: 16 << 20, Seed: seed})
	if err != nil {
		t.Fatalf("build the test image: %v", err)
	}
	man, err := pack.Pack(ctx, pack.Options{Input: src, Output: packed, Concurrency: 2})
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	return info, man
}

// TestRescueShell boots with a command line the agent cannot work with and checks
// that the technician gets a shell on the console that runs the rescue tools, that
// Ctrl-C stops a running command and nothing else, and that the shell powers the
// machine off.
//
// It types each command only once the shell's prompt is on the console (the line
// editor's key-help line, drawn with every new prompt), as a technician reads before
// typing, and presses Enter as a serial terminal does (CR). Two faults this pins:
//   - the shell hung after Enter on a loaded machine (gosh's line editor on bubbletea
//     v0.24.1, whose renderer deadlocked on stop): it cleared its line and printed
//     nothing more, not even its next prompt;
//   - Ctrl-C while a command ran killed the agent too (the shell ran in the agent's
//     process group, the console's foreground group), init ran out of commands and
//     the kernel panicked.
//
// The Ctrl-C and retype path is kept to tell a hang from a lost keystroke in the log;
// using it fails the test: a prompt that is up takes what is typed. The waits are
// generous: they only bound a hang, a loaded machine echoes a typed line slowly.
func TestRescueShell(t *testing.T) {
	initramfs, kernel := input(t, envInitramfs), input(t, envKernel)
	card := filepath.Join(t.TempDir(), "card.img")
	writeJunk(t, card, 8<<20)
	g := bootQEMU(t, vm{kernel: kernel, initramfs: initramfs, card: card,
		cmdline: "rpideploy.target=/dev/vda rpideploy.serial=not-a-serial"})
	if _, err := g.out.waitFor("rpi-agent: RESCUE:", 90*time.Second); err != nil {
		t.Fatalf("%v\nconsole (last lines):\n%s", err, g.tail(60))
	}
	prompts := 0 // prompts typed into so far
	for _, step := range []struct {
		cmd, out  string
		interrupt bool // press Ctrl-C once out is there: the command is still running
	}{
		{cmd: "cat /lib/rpi-deploy/modules/load.list", out: "virtio_net.ko"},
		// cat goes on to read the console after the file, until Ctrl-C.
		{cmd: "cat /lib/rpi-deploy/modules/load.list -", out: "virtio_net.ko", interrupt: true},
		// The shell's parent is still the agent: had the Ctrl-C reached the agent, the
		// agent would be gone and init (PID 1, "/init") the parent.
		{cmd: "cat /proc/$PPID/cmdline", out: "--uinit"},
		{cmd: "cat /proc/partitions", out: "vda"},
		{cmd: "poweroff", out: "reboot: Power down"},
	} {
		var err error
		for try := 0; try < 3; try++ {
			if try > 0 {
				t.Errorf("rescue shell: no output for %q (try %d): pressing Ctrl-C before typing it again", step.cmd, try)
				if _, err := io.WriteString(g.in, "\x03"); err != nil {
					t.Fatal(err)
				}
			}
			if err := g.wire.waitCount(shellPrompt, prompts+1, time.Minute); err != nil {
				t.Fatalf("rescue shell: before %q: %v\nconsole (last lines):\n%s", step.cmd, err, g.tail(40))
			}
			prompts = g.wire.count(shellPrompt)
			from := g.out.count()
			if _, err := io.WriteString(g.in, step.cmd+"\r"); err != nil {
				t.Fatal(err)
			}
			if err = g.out.waitForFrom(from, step.out, time.Minute); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("rescue shell, %q: %v\nconsole (last lines):\n%s", step.cmd, err, g.tail(40))
		}
		if step.interrupt {
			if _, err := io.WriteString(g.in, "\x03"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := g.wait(time.Minute); err != nil {
		t.Fatalf("%v\nconsole (last lines):\n%s", err, g.tail(60))
	}
	if want := `rpideploy.serial="not-a-serial": want 16 hex digits`; !strings.Contains(g.log(), want) {
		t.Errorf("console lacks the reason %q", want)
	}
	if bad := "init: All commands exited"; strings.Contains(g.log(), bad) {
		t.Errorf("console shows %q: the agent ended", bad)
	}
	fmt.Printf("e2e: rescue shell after %.1f s\n", g.at("rescue").Seconds())
}

// shellPrompt is drawn with each new prompt of the rescue shell (gosh's line editor,
// bubbline): the key-help line under the input line.
const shellPrompt = "M-? toggle key help"

// checkCard checks the card against the master image with outside tools: the same
// partitions, every data range outside the boot partition byte for byte, every boot
// file but the first-boot ones unchanged, both file systems clean, the hostname in
// firstrun.sh.
func checkCard(t *testing.T, card, src string, info *testimg.Info, man *manifest.Manifest, hostname string) {
	t.Helper()
	ctx := context.Background()
	got, err := testimg.ReadPartitions(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	want, err := testimg.ReadPartitions(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("card partitions %v, want %v", got, want)
	}
	cf, err := os.Open(card)
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	sf, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	boot := manifest.Range{Offset: info.Boot.Offset, Length: info.Boot.Size}
	var compared int64
	for _, r := range man.Ranges {
		for _, part := range outside(r, boot) {
			a, b := make([]byte, part.Length), make([]byte, part.Length)
			if _, err := cf.ReadAt(a, part.Offset); err != nil {
				t.Fatal(err)
			}
			if _, err := sf.ReadAt(b, part.Offset); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("card differs from the image in data range [%d, %d)", part.Offset, part.End())
			}
			compared += part.Length
		}
	}
	t.Logf("compared %d MiB of data ranges outside the boot partition", compared>>20)

	if err := testimg.Fsck(ctx, card); err != nil {
		t.Errorf("fsck of the card: %v", err)
	}
	for _, f := range info.Files {
		if f.FS != "bootfs" || f.Path == "cmdline.txt" {
			continue
		}
		b, err := testimg.MType(ctx, card, info.Boot.Offset, f.Path)
		if err != nil {
			t.Errorf("boot file %s: %v", f.Path, err)
			continue
		}
		if sum := sha256Hex(b); sum != f.SHA256 {
			t.Errorf("boot file %s changed", f.Path)
		}
	}
	firstrun, err := testimg.MType(ctx, card, info.Boot.Offset, "firstrun.sh")
	if err != nil {
		t.Fatalf("firstrun.sh on the card: %v", err)
	}
	if !strings.Contains(string(firstrun), hostname) {
		t.Errorf("firstrun.sh does not name the board %s:\n%s", hostname, firstrun)
	}
	cmdline, err := testimg.MType(ctx, card, info.Boot.Offset, "cmdline.txt")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cmdline), "systemd.run=/boot/firmware/firstrun.sh") {
		t.Errorf("cmdline.txt does not run firstrun.sh: %q", cmdline)
	}
}

// since parses a store timestamp and returns how long after start it is.
func since(t *testing.T, start time.Time, stamp string) time.Duration {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil {
		t.Errorf("server timestamp %q: %v", stamp, err)
		return 0
	}
	return at.Sub(start)
}

// outside returns the parts of r that do not overlap hole.
func outside(r, hole manifest.Range) []manifest.Range {
	if r.End() <= hole.Offset || r.Offset >= hole.End() {
		return []manifest.Range{r}
	}
	var parts []manifest.Range
	if r.Offset < hole.Offset {
		parts = append(parts, manifest.Range{Offset: r.Offset, Length: hole.Offset - r.Offset})
	}
	if r.End() > hole.End() {
		parts = append(parts, manifest.Range{Offset: hole.End(), Length: r.End() - hole.End()})
	}
	return parts
}

// writeJunk makes a card of size bytes of pseudo-random old data.
func writeJunk(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.NewChaCha8([32]byte{'c', 'a', 'r', 'd'}), size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// useNamespace sends this test binary's HTTP (the management calls and the image
// upload) into ns: each connection's socket is opened on a thread inside it.
func useNamespace(ns *netnstest.NS) {
	http.DefaultTransport = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() error {
				var err error
				c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
		MaxIdleConnsPerHost: 4,
	}
}

// startServer runs rpi-deployd in the server namespace: HTTP on serverURL, DHCP in
// full mode on the veth end (or dnsmasq handing out option 224, for development
// before rpi-deployd had DHCP).
func startServer(t *testing.T, l *netnstest.Link) *servertest.Server {
	t.Helper()
	tok := make([]byte, 16)
	if _, err := crand.Read(tok); err != nil {
		t.Fatal(err)
	}
	token := hex.EncodeToString(tok)
	args := []string{"serve", "--data", t.TempDir(), "--listen", serverIP + ":8080", "--token", token, "--after", "poweroff"}
	switch dhcp := os.Getenv(envDHCP); dhcp {
	case "", "rpi-deployd":
		args = append(args, "--dhcp-mode", "full", "--dhcp-interface", l.ServerIf,
			"--dhcp-range", "10.77.0.100-10.77.0.150")
	case "dnsmasq":
		l.Server.Start(t, nil, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
			"--interface="+l.ServerIf, "--bind-interfaces", "--no-ping", "--leasefile-ro",
			"--dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,1h",
			"--dhcp-vendorclass=set:agent,rpi-deploy-agent", "--dhcp-option=tag:agent,224,"+serverURL)
	default:
		t.Fatalf("%s=%q: want rpi-deployd or dnsmasq", envDHCP, dhcp)
	}
	out := &lines{}
	cmd := l.Server.Command(context.Background(), servertest.Binary(t), args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("rpi-deployd log (last lines):\n%s", out.tail(60))
		}
	})
	if _, err := out.waitFor("rpi-deployd: listening on", 30*time.Second); err != nil {
		t.Fatalf("rpi-deployd: %v\n%s", err, out.tail(40))
	}
	return &servertest.Server{URL: serverURL, Token: token, Client: client.New(serverURL, token)}
}

// guest is a running QEMU and its console.
type guest struct {
	cmd    *exec.Cmd
	start  time.Time
	out    *lines
	wire   *wire          // the console's bytes both ways, as sent
	in     io.WriteCloser // the console's input
	exited chan struct{}  // closed when QEMU has exited; err is then set
	err    error
	took   time.Duration
}

// vm says how to boot.
type vm struct {
	ns        *netnstest.NS // run QEMU here, with a NIC on tap0; nil: on the host, no NIC
	kernel    string
	initramfs string
	card      string
	cmdline   string // after "console=ttyAMA0 panic=-1"
}

func bootQEMU(t *testing.T, v vm) *guest {
	t.Helper()
	args := []string{"-M", "virt", "-cpu", "cortex-a76", "-smp", "2", "-m", "1024",
		"-nographic", "-no-reboot",
		"-kernel", v.kernel, "-initrd", v.initramfs,
		"-append", "console=ttyAMA0 panic=-1 " + v.cmdline,
		"-drive", "file=" + v.card + ",format=raw,if=none,id=sd,cache=unsafe",
		"-device", "virtio-blk-pci,drive=sd",
	}
	g := &guest{out: &lines{markers: map[string]string{"hello": "rpi-agent: hello to", "rescue": "rpi-agent: RESCUE:"}},
		exited: make(chan struct{})}
	if v.ns != nil {
		args = append(args, "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=n0,mac="+mac+",romfile=")
		g.cmd = v.ns.Command(context.Background(), "qemu-system-aarch64", args...)
	} else {
		args = append(args, "-nic", "none")
		g.cmd = exec.Command("qemu-system-aarch64", args...)
	}
	g.run(t)
	return g
}

// run starts g.cmd (QEMU) with its console in g.out and stdin in g.in, both recorded
// in g.wire; at the test's end it kills QEMU if it still runs and, if the test failed,
// keeps the console log and the serial transcript.
func (g *guest) run(t *testing.T) {
	t.Helper()
	g.start = time.Now()
	g.out.start = g.start
	g.wire = &wire{start: g.start}
	out := io.MultiWriter(g.out, wireWriter{g.wire, "guest", nil})
	g.cmd.Stdout, g.cmd.Stderr = out, out
	in, err := g.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	g.in = wireWriter{g.wire, "test", in}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		g.err = g.cmd.Wait()
		close(g.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-g.exited:
		default:
			g.cmd.Process.Kill()
			<-g.exited
		}
		if t.Failed() {
			p := filepath.Join(os.TempDir(), "rpi-deploy-e2e-console-"+strings.ReplaceAll(t.Name(), "/", "-")+fmt.Sprintf("-%d.log", g.start.Unix()))
			if err := os.WriteFile(p, []byte(g.out.all()), 0o644); err == nil {
				t.Logf("console log: %s", p)
			}
			p = strings.Replace(p, "-console-", "-serial-", 1)
			if err := os.WriteFile(p, g.wire.transcript(), 0o644); err == nil {
				t.Logf("serial transcript (both ways): %s", p)
			}
		}
	})
}

// wait waits for QEMU to exit by itself (the guest powered off; -no-reboot makes a
// reboot an exit too).
func (g *guest) wait(limit time.Duration) error {
	select {
	case <-g.exited:
		g.took = time.Since(g.start)
		if g.err != nil {
			return fmt.Errorf("qemu-system-aarch64: %w", g.err)
		}
		return nil
	case <-time.After(limit):
		g.cmd.Process.Kill()
		<-g.exited
		g.took = time.Since(g.start)
		return fmt.Errorf("the guest did not power off within %v", limit)
	}
}

// wire records a console's bytes both ways as they pass: what the guest sent, whole,
// and a transcript, one line per write: seconds since start, who wrote ("guest" or
// "test") and the bytes quoted, escape sequences and all.
type wire struct {
	mu    sync.Mutex
	start time.Time
	guest []byte
	log   bytes.Buffer
}

func (w *wire) record(who string, p []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if who == "guest" {
		w.guest = append(w.guest, p...)
	}
	fmt.Fprintf(&w.log, "%9.3f %-5s %q\n", time.Since(w.start).Seconds(), who, p)
}

// count says how often sub occurs in what the guest sent.
func (w *wire) count(sub string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Count(w.guest, []byte(sub))
}

// waitCount waits until sub occurs at least n times in what the guest sent.
func (w *wire) waitCount(sub string, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if w.count(sub) >= n {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%q seen %d times within %v, want %d", sub, w.count(sub), limit, n)
}

func (w *wire) transcript() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.log.Bytes())
}

// wireWriter records what passes in w and hands it on to to (none: only records).
type wireWriter struct {
	w   *wire
	who string
	to  io.WriteCloser
}

func (ww wireWriter) Write(p []byte) (int, error) {
	ww.w.record(ww.who, p)
	if ww.to == nil {
		return len(p), nil
	}
	return ww.to.Write(p)
}

func (ww wireWriter) Close() error {
	if ww.to == nil {
		return nil
	}
	return ww.to.Close()
}

func (g *guest) at(marker string) time.Duration { return g.out.at(marker) }
func (g *guest) log() string                    { return g.out.all() }
func (g *guest) tail(n int) string              { return g.out.tail(n) }

// lines collects a process's output by line, noting when marker lines first appear.
type lines struct {
	mu      sync.Mutex
	start   time.Time
	partial []byte
	all_    []string
	markers map[string]string        // name → substring
	seen    map[string]time.Duration // name → first time since start
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(l.partial[:i]), "\r")
		l.partial = l.partial[i+1:]
		l.all_ = append(l.all_, line)
		for name, sub := range l.markers {
			if _, ok := l.seen[name]; !ok && strings.Contains(line, sub) {
				if l.seen == nil {
					l.seen = map[string]time.Duration{}
				}
				l.seen[name] = time.Since(l.start)
			}
		}
	}
	return len(p), nil
}

func (l *lines) at(name string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[name]
}

func (l *lines) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all_, "\n") + "\n" + string(l.partial)
}

func (l *lines) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	from := max(0, len(l.all_)-n)
	return strings.Join(l.all_[from:], "\n") + "\n" + string(l.partial)
}

func (l *lines) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all_)
}

// waitForFrom waits until a line from index from on contains sub.
func (l *lines) waitForFrom(from int, sub string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		for _, line := range l.all_[min(from, len(l.all_)):] {
			if strings.Contains(line, sub) {
				l.mu.Unlock()
				return nil
			}
		}
		l.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no line with %q within %v", sub, limit)
}

// waitFor waits until a line containing sub appears and returns it.
func (l *lines) waitFor(sub string, limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		for _, line := range l.all_ {
			if strings.Contains(line, sub) {
				l.mu.Unlock()
				return line, nil
			}
		}
		l.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("no %q line within %v", sub, limit)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
