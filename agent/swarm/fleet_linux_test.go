package swarm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
	"github.com/rpi-deploy/rpi-deploy/internal/logbuf"
	"github.com/rpi-deploy/rpi-deploy/server/netnstest"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// fleet is a deploy network in namespaces the test creates: a switch (a bridge in its
// own namespace), rpi-deployd in one namespace, each board in its own, every link a
// veth pair shaped in both directions with tc tbf. Traffic goes nowhere else.
type fleet struct {
	t              *testing.T
	sw, srv        *netnstest.NS
	url, token     string
	dir            string
	srvOut         *logbuf.Buffer
	image          string // name
	m              *manifest.Manifest
	zst            string
	agent, rpiImag string
	srvPID         int
}

const serverIP = "10.79.0.1"

func randName() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tbfShape is the rest of every link's tbf after its rate (tc syntax).
var tbfShape = []string{"burst", "64kb", "latency", "100ms"}

// nsSysctls are set in every namespace of a fleet (sysctl -w syntax).
var nsSysctls = []string{"net.ipv4.tcp_congestion_control=reno"}

// tbf shapes dev's egress to rate (tc syntax, e.g. "40mbit").
func tbf(t testing.TB, ns *netnstest.NS, dev, rate string) {
	t.Helper()
	ns.MustRun(t, "tc", append([]string{"qdisc", "add", "dev", dev, "root", "tbf", "rate", rate}, tbfShape...)...)
}

// attach links ns to the switch as eth0 with address ip/16, rate-limited both ways.
func (f *fleet) attach(ns *netnstest.NS, ip, rate string) {
	t := f.t
	t.Helper()
	a, b := "p2a"+randName(), "p2b"+randName()
	for _, args := range [][]string{{"link", "add", a, "type", "veth", "peer", "name", b},
		{"link", "set", a, "netns", ns.Name}, {"link", "set", b, "netns", f.sw.Name}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			exec.Command("ip", "link", "del", a).Run()
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	// TCP as on the boards: loss-based congestion control. Raspberry Pi OS's kernels
	// use Linux's default, cubic; a namespace takes this machine's default, bbr, which
	// misjudges a tbf-shaped link by its burst and paces far above the rate (at
	// 4 Mbit/s one board's connection retransmitted 80 MB to deliver 1 MB, and the
	// fleet stalled). A namespace may only pick an allowed one
	// (net.ipv4.tcp_allowed_congestion_control: here reno and bbr), so reno, which on
	// links of a few ms round trip grows its window as cubic does in its TCP-friendly
	// region.
	ns.MustRun(t, "sysctl", append([]string{"-qw"}, nsSysctls...)...)
	ns.MustRun(t, "ip", "link", "set", a, "name", "eth0")
	ns.MustRun(t, "ip", "addr", "add", ip+"/16", "dev", "eth0")
	ns.MustRun(t, "ip", "link", "set", "eth0", "up")
	f.sw.MustRun(t, "ip", "link", "set", b, "master", "br0")
	f.sw.MustRun(t, "ip", "link", "set", b, "up")
	if rate != "" {
		tbf(t, ns, "eth0", rate)
		tbf(t, f.sw, b, rate)
	}
}

// fleetImage builds a Raspberry Pi OS-shaped image (testimg, bookworm firstrun) with
// rootMiB MiB of file data and packs it with 1 MiB chunks, once per test binary.
var (
	fleetImgOnce sync.Once
	fleetImgZst  string
	fleetImgErr  error
)

func fleetImage(t testing.TB, rootMiB int64) string {
	t.Helper()
	fleetImgOnce.Do(func() {
		dir, err := os.MkdirTemp("", "p2p-fleet-image-")
		if err != nil {
			fleetImgErr = err
			return
		}
		raw := filepath.Join(dir, "p2pfleet.img")
		if _, fleetImgErr = testimg.Build(raw, testimg.Options{Kind: testimg.BookwormFirstrun, BootSize: testimg.MinBootSize,
			RootData: rootMiB << 20, RootFree: 4 << 20, Seed: 15}); fleetImgErr != nil {
			return
		}
		fleetImgZst = filepath.Join(dir, "p2pfleet.img.zst")
		_, fleetImgErr = pack.Pack(context.Background(), pack.Options{Input: raw, Output: fleetImgZst, ChunkSize: 1 << 20, Force: true})
		os.Remove(raw)
	})
	if fleetImgErr != nil {
		t.Fatal(fleetImgErr)
	}
	return fleetImgZst
}

// newFleet starts rpi-deployd (P2P p2p: "on" or "off", and serverArgs) behind a link
// of serverRate, uploads image zst, and opens a batch of count boards of product RXP2.
func newFleet(t *testing.T, zst, p2p, serverRate string, count int, serverArgs ...string) *fleet {
	t.Helper()
	netnstest.Require(t)
	for _, tool := range []string{"tc", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (scripts/deps): %v", tool, err)
		}
	}
	srvBin, err := servertest.Build(servertest.ServerPkg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, dir: t.TempDir(), token: randName() + randName() + randName(), srvOut: &logbuf.Buffer{}, zst: zst}
	if f.agent, err = servertest.Build(servertest.AgentPkg); err != nil {
		t.Fatal(err)
	}
	if f.rpiImag, err = servertest.Build("github.com/rpi-deploy/rpi-deploy/image-tools/cmd/rpi-image"); err != nil {
		t.Fatal(err)
	}
	if f.m, err = manifest.Load(manifest.PathFor(zst)); err != nil {
		t.Fatal(err)
	}
	f.image = f.m.Name
	f.sw = netnstest.New(t)
	f.sw.MustRun(t, "ip", "link", "add", "br0", "type", "bridge")
	f.sw.MustRun(t, "ip", "link", "set", "br0", "up")
	f.srv = netnstest.New(t)
	f.attach(f.srv, serverIP, serverRate)
	f.url = "http://" + serverIP + ":8080"
	cmd := f.srv.Command(context.Background(), srvBin, append([]string{"serve", "--data", filepath.Join(f.dir, "data"), "--listen", serverIP + ":8080",
		"--p2p", p2p, "--p2p-seed-for", "2m", "--http-max-conns-per-source", "4096"}, serverArgs...)...)
	cmd.Env = append(os.Environ(), "RPI_DEPLOY_TOKEN="+f.token)
	cmd.Stdout, cmd.Stderr = f.srvOut, f.srvOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.srvPID = cmd.Process.Pid
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("rpi-deployd output:\n%s", tail(f.srvOut.String(), 80))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := f.srv.Run(context.Background(), "curl", "-sf", "-o", "/dev/null", f.url+"/healthz"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rpi-deployd not healthy after 30 s:\n%s", f.srvOut.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	f.srv.MustRun(t, f.rpiImag, "push", "-q", "--server", f.url, "--token", f.token, zst)
	f.api("POST", "/api/v1/images/"+f.image+"/activate", `{"product":"RXP2"}`)
	f.api("POST", "/api/v1/venues", `{"code":"CORO","name":"Coro"}`)
	f.api("POST", "/api/v1/batches", fmt.Sprintf(`{"venue":"CORO","product":"RXP2","image":%q,"count":%d}`, f.image, count))
	return f
}

// api calls the management API with curl from the server's namespace.
func (f *fleet) api(method, path, body string) string {
	f.t.Helper()
	args := []string{"-sS", "--fail-with-body", "-X", method, "-H", "Authorization: Bearer " + f.token, f.url + path}
	if body != "" {
		args = append(args, "-H", "Content-Type: application/json", "-d", body)
	}
	out, err := f.srv.Run(context.Background(), "curl", args...)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	return out
}

// served is the server's image bytes counter (its /metrics).
func (f *fleet) served() int64 { f.t.Helper(); return f.metric("rpideploy_image_bytes_served_total") }

// metric reads counter name from the server's /metrics.
func (f *fleet) metric(name string) int64 {
	f.t.Helper()
	out := f.api("GET", "/metrics", "")
	m := regexp.MustCompile(`(?m)^` + name + ` (\d+)$`).FindStringSubmatch(out)
	if m == nil {
		f.t.Fatalf("no %s in /metrics:\n%s", name, out)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// serverCPU is the user + system CPU time rpi-deployd has used so far.
func (f *fleet) serverCPU() time.Duration { return procCPU(f.srvPID) }

// procCPU is the user + system CPU time of process pid (/proc/PID/stat, clock ticks
// of 1/100 s); 0 when it is gone.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	fields := strings.Fields(rest)
	if len(fields) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// board is one rpi-agent process in its own namespace.
type board struct {
	ns     *netnstest.NS
	ip     string
	serial string
	target string
	out    *logbuf.Buffer
	cmd    *exec.Cmd
	err    error
	took   time.Duration
	cpu    time.Duration // user + system CPU time of the agent process
	done   chan struct{}
}

// addBoard links board i (10.79.1.i) to the switch at rate.
func (f *fleet) addBoard(i int, rate string) *board {
	b := &board{ns: netnstest.New(f.t), ip: fmt.Sprintf("10.79.1.%d", i), serial: fmt.Sprintf("%016x", 0xd00d0000+i),
		target: filepath.Join(f.dir, fmt.Sprintf("card%d.img", i)), out: &logbuf.Buffer{}, done: make(chan struct{})}
	f.attach(b.ns, b.ip, rate)
	return b
}

// start runs rpi-agent for b with extra flags.
func (f *fleet) start(b *board, extra ...string) {
	mac := "2c:cf:67:" + b.serial[10:12] + ":" + b.serial[12:14] + ":" + b.serial[14:16]
	args := append([]string{"--server", f.url, "--target", b.target, "--serial", b.serial, "--mac", mac,
		"--retry-budget", "2m"}, extra...)
	b.cmd = b.ns.Command(context.Background(), f.agent, args...)
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	start := time.Now()
	if err := b.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() {
		b.err = b.cmd.Wait()
		b.took = time.Since(start)
		if st := b.cmd.ProcessState; st != nil {
			b.cpu = st.UserTime() + st.SystemTime() // ip netns exec execs the agent: same process
		}
		close(b.done)
	}()
	f.t.Cleanup(func() {
		b.cmd.Process.Kill()
		<-b.done
	})
}

func (b *board) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(timeout):
		b.cmd.Process.Kill()
		<-b.done
		t.Fatalf("board %s still running after %v:\n%s", b.serial, timeout, tail(b.out.String(), 40))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// verifyCard reads b's card back from outside the agent (image-tools/readback, as
// rpi-image verify does) and compares every chunk that first-boot naming does not
// touch (chunk 0 and the boot partition's) with the manifest's data hashes.
func (f *fleet) verifyCard(b *board) {
	f.t.Helper()
	boot, _ := f.m.Bootfs()
	n, err := readback.Verify(context.Background(), b.target, f.m, readback.Options{Skip: func(i int) bool {
		r := f.m.ChunkRange(i)
		return i == 0 || (r.Offset < boot.Start+boot.Size && r.End() > boot.Start)
	}})
	if err != nil || n == 0 {
		f.t.Errorf("card of board %s: %d chunks read back: %v", b.serial, n, err)
	}
}

// finish waits for every board and checks that each one verified its card (its own
// read-back, and readback from outside the agent), that none banned an honest board,
// and returns the bytes the boards report from peers and the bytes of blocks they
// received from peers while already holding them (wasted).
func (f *fleet) finish(t *testing.T, boards []*board, liar *board) (fromPeers, wasted int64) {
	t.Helper()
	for _, b := range boards {
		b.wait(t, 5*time.Minute)
	}
	for _, b := range boards {
		out := b.out.String()
		if b.err != nil || !strings.Contains(out, "verified ") {
			t.Errorf("board %s: %v\n%s", b.serial, b.err, tail(out, 30))
			continue
		}
		f.verifyCard(b)
		for _, o := range boards {
			if o != liar && strings.Contains(out, "peer banned") && strings.Contains(out, "peer="+o.ip+" ") {
				t.Errorf("board %s banned the honest board %s:\n%s", b.serial, o.serial, tail(out, 30))
			}
		}
		if m := regexp.MustCompile(`from_peers=(\d+)`).FindAllStringSubmatch(out, -1); len(m) > 0 {
			v, _ := strconv.ParseInt(m[len(m)-1][1], 10, 64)
			fromPeers += v
		}
		if m := regexp.MustCompile(`peer_bytes_wasted=(-?\d+)`).FindStringSubmatch(out); m != nil {
			v, _ := strconv.ParseInt(m[1], 10, 64)
			wasted += v
		}
	}
	return fromPeers, wasted
}

// TestFleetSharesPieces: five boards flash one image through a server link slower
// than each board's own (16 and 40 Mbit/s, tc: the server's link is the one the
// fleet shares); with P2P the server sends well under five images' worth, every card verifies (the agent's read-back, and a read-back from
// outside), and the boards report bytes from peers, of which at most a tenth came
// twice (it pins stealAfter: with the engine's own request moves the twenty boards of
// the fleet bench received a third more than they needed).
func TestFleetSharesPieces(t *testing.T) {
	zst := fleetImage(t, 20)
	const n = 5
	f := newFleet(t, zst, "on", "16mbit", n)
	var boards []*board
	for i := range n {
		boards = append(boards, f.addBoard(i+1, "40mbit"))
	}
	for _, b := range boards {
		f.start(b)
	}
	fromPeers, wasted := f.finish(t, boards, nil)
	served := f.served()
	t.Logf("compressed image %d bytes; server sent %d bytes for %d boards (%.2f images); boards got %d bytes from peers, and %d bytes of blocks they already held",
		f.m.CompressedSize, served, n, float64(served)/float64(f.m.CompressedSize), fromPeers, wasted)
	if fromPeers == 0 {
		t.Errorf("no board reports bytes from peers")
	}
	if wasted > fromPeers/10 {
		t.Errorf("boards received %d bytes of blocks they already held, more than a tenth of the %d bytes from peers", wasted, fromPeers)
	}
	if limit := int64(n) * f.m.CompressedSize / 2; served > limit {
		t.Errorf("server sent %d bytes: not well below %d boards × %d compressed bytes (limit %d)", served, n, f.m.CompressedSize, limit)
	}
}

// TestLiarIsBanned: a board that serves corrupted pieces (rpi-agent
// --p2p-test-corrupt-uploads) starts first with a slow card, so that it holds pieces
// the others still need and lies about every one its flasher has passed. No card gets
// a bad chunk, every board verifies, the boards ban and name it (address and serial),
// none bans an honest board, and the server's log names it by serial.
func TestLiarIsBanned(t *testing.T) {
	zst := fleetImage(t, 20)
	const n = 3
	f := newFleet(t, zst, "on", "40mbit", n+1)
	liar := f.addBoard(100, "40mbit")
	var boards []*board
	for i := range n {
		boards = append(boards, f.addBoard(i+1, "40mbit"))
	}
	f.start(liar, "--p2p-test-corrupt-uploads", "--write-rate-limit", "1.5")
	if !liar.out.WaitFor("joined the swarm", 60*time.Second) {
		t.Fatalf("the liar never joined the swarm:\n%s", liar.out.String())
	}
	time.Sleep(3 * time.Second)
	for _, b := range boards {
		f.start(b)
	}
	f.finish(t, append(boards, liar), liar)
	named := false
	for _, b := range boards {
		if strings.Contains(b.out.String(), "peer="+liar.ip+" serial="+liar.serial) {
			named = true
		}
	}
	if !named {
		t.Errorf("no board named the liar (%s, serial %s) in its log", liar.ip, liar.serial)
	}
	if !strings.Contains(f.srvOut.String(), "peer_serial="+liar.serial) {
		t.Errorf("the server log does not name the liar's serial %s", liar.serial)
	}
}
