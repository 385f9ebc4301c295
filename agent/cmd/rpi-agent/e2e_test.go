package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/flash/flashtest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
	"github.com/rpi-deploy/rpi-deploy/internal/logbuf"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// These tests drive the real rpi-agent binary against a real rpi-deployd
// (server/servertest), flashing Raspberry Pi OS-shaped images built by testimg and
// packed by pack into files, and check the result with fsck.fat, e2fsck and mtools.

var agentBin string

func TestMain(m *testing.M) {
	var err error
	if agentBin, err = servertest.Build(servertest.AgentPkg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(filepath.Join(os.TempDir(), "rpi-agent-images-"+strconv.Itoa(os.Getpid())))
	os.Exit(code)
}

// image is a built and packed test image.
type image struct {
	raw, zst string
	info     *testimg.Info
	m        *manifest.Manifest
}

var (
	imagesMu sync.Mutex
	images   = map[string]*imageOnce{}
)

type imageOnce struct {
	once sync.Once
	im   *image
	err  error
}

// buildImage builds (once per test binary) a small image of kind and packs it with
// 1 MiB chunks.
func buildImage(t *testing.T, kind testimg.Kind) *image { return buildImageData(t, kind, 24) }

// buildImageData is buildImage with rootMiB MiB of file data in the rootfs. Tests
// running in parallel build different images at the same time.
func buildImageData(t *testing.T, kind testimg.Kind, rootMiB int64) *image {
	t.Helper()
	key := fmt.Sprintf("%s-%d", kind, rootMiB)
	imagesMu.Lock()
	e, ok := images[key]
	if !ok {
		e = &imageOnce{}
		images[key] = e
	}
	imagesMu.Unlock()
	e.once.Do(func() { e.im, e.err = makeImage(kind, rootMiB, key) })
	if e.err != nil {
		t.Fatal(e.err)
	}
	return e.im
}

func makeImage(kind testimg.Kind, rootMiB int64, name string) (*image, error) {
	dir := filepath.Join(os.TempDir(), "rpi-agent-images-"+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	raw := filepath.Join(dir, name+".img")
	info, err := testimg.Build(raw, testimg.Options{Kind: kind, BootSize: testimg.MinBootSize, RootData: rootMiB << 20, RootFree: 8 << 20, Used: true, Seed: 5})
	if err != nil {
		return nil, err
	}
	zst := filepath.Join(dir, name+".img.zst")
	m, err := pack.Pack(context.Background(), pack.Options{Input: raw, Output: zst, ChunkSize: 1 << 20, Force: true})
	if err != nil {
		return nil, err
	}
	return &image{raw: raw, zst: zst, info: info, m: m}, nil
}

// agentRun is one rpi-agent process.
type agentRun struct {
	cmd    *exec.Cmd
	out    *logbuf.Buffer
	target string
}

// startAgent runs rpi-agent in host mode as board serial against server url.
func startAgent(t *testing.T, url, serial string, args ...string) *agentRun {
	t.Helper()
	return startAgentOn(t, url, serial, filepath.Join(t.TempDir(), "card.img"), args...)
}

// startAgentOn is startAgent with the card at target (a file or a block device).
func startAgentOn(t *testing.T, url, serial, target string, args ...string) *agentRun {
	t.Helper()
	// A card that held an older image: its first sector must not survive a failure.
	if err := os.WriteFile(target, bytes.Repeat([]byte("OLD-CARD"), 1<<16), 0o644); err != nil {
		t.Fatal(err)
	}
	mac := "2c:cf:67:" + serial[10:12] + ":" + serial[12:14] + ":" + serial[14:16]
	cmd := exec.Command(agentBin, append([]string{"--server", url, "--target", target, "--serial", serial, "--mac", mac,
		"--root", t.TempDir(), "--retry-budget", "20s"}, args...)...)
	out := &logbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return &agentRun{cmd: cmd, out: out, target: target}
}

func (a *agentRun) wait(t *testing.T) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- a.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		a.cmd.Process.Kill()
		t.Fatalf("rpi-agent still running after 60 s:\n%s", a.out)
		return nil
	}
}

var deploymentRE = regexp.MustCompile(`rpi-agent: deployment (\d+):`)

// deployment fetches the server's record of the agent's deployment.
func (a *agentRun) deployment(t *testing.T, s *servertest.Server) deploymentView {
	t.Helper()
	mm := deploymentRE.FindStringSubmatch(a.out.String())
	if mm == nil {
		t.Fatalf("no deployment in the agent's output:\n%s", a.out)
	}
	id, _ := strconv.ParseInt(mm[1], 10, 64)
	var d deploymentView
	if err := s.Do(context.Background(), http.MethodGet, "/api/v1/deployments/"+mm[1], nil, &d); err != nil {
		t.Fatalf("deployment %d: %v", id, err)
	}
	return d
}

// deploymentView is the part of GET /api/v1/deployments/ID the tests look at.
type deploymentView struct {
	State        string `json:"state"`
	Error        string `json:"error"`
	ErrorPhase   string `json:"error_phase"`
	Hostname     string `json:"hostname"`
	SHA256       string `json:"sha256"`
	BytesFetched int64  `json:"bytes_fetched"`
}

func setup(t *testing.T, im *image, venue string) *servertest.Server {
	t.Helper()
	return setupWith(t, im, venue, servertest.Options{})
}

// setupWith is setup with the server's options (Process for the tests that kill it).
func setupWith(t *testing.T, im *image, venue string, opt servertest.Options) *servertest.Server {
	t.Helper()
	s := servertest.Start(t, opt)
	s.Setup(t, servertest.Fleet{Venue: venue, Product: "KXP2", Count: 1, Image: im.zst})
	return s
}

// checkCard checks a flashed card against its source image: the partition table,
// every data range outside the boot partition byte for byte, both file systems clean,
// the boot files other than the naming ones unchanged.
func checkCard(t *testing.T, im *image, card string) {
	t.Helper()
	ctx := context.Background()
	src, err := os.ReadFile(im.raw)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(card)
	if err != nil {
		t.Fatal(err)
	}
	boot := manifest.Range{Offset: im.info.Boot.Offset, Length: im.info.Boot.Size}
	for _, r := range im.m.Ranges {
		for _, part := range []manifest.Range{{Offset: r.Offset, Length: min(r.End(), boot.Offset) - r.Offset}, {Offset: max(r.Offset, boot.End()), Length: r.End() - max(r.Offset, boot.End())}} {
			if part.Length > 0 && !bytes.Equal(got[part.Offset:part.End()], src[part.Offset:part.End()]) {
				t.Fatalf("card differs from the image in data range [%d,+%d)", part.Offset, part.Length)
			}
		}
	}
	if err := testimg.Fsck(ctx, card); err != nil {
		t.Fatalf("fsck: %v", err)
	}
	for _, name := range []string{"config.txt", "kernel_2712.img"} {
		want, err1 := testimg.MType(ctx, im.raw, boot.Offset, name)
		have, err2 := testimg.MType(ctx, card, boot.Offset, name)
		if err1 != nil || err2 != nil || !bytes.Equal(want, have) {
			t.Errorf("boot file %s changed (errors %v, %v)", name, err1, err2)
		}
	}
}

func mtype(t *testing.T, im *image, card, name string) string {
	t.Helper()
	b, err := testimg.MType(context.Background(), card, im.info.Boot.Offset, name)
	if err != nil {
		t.Fatalf("mtype %s: %v", name, err)
	}
	return string(b)
}

func TestFlashThreeKinds(t *testing.T) {
	for i, tc := range []struct {
		kind  testimg.Kind
		venue string
		files map[string][]string // boot file → what it must hold (HOST = the hostname)
	}{
		{testimg.BookwormFirstrun, "CORO", map[string][]string{
			"firstrun.sh": {"imager_custom set_hostname HOST\n", "echo HOST >/etc/hostname", "rm -f /boot/firmware/firstrun.sh"},
			"cmdline.txt": {" systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target\n"},
		}},
		{testimg.TrixieCloudInit, "ARIA", map[string][]string{
			"user-data":   {"#cloud-config\n", "hostname: HOST\n", "manage_etc_hosts: true\n"},
			"meta-data":   {"instance-id: rpi-deploy-"},
			"cmdline.txt": {" ds=nocloud;i=rpi-deploy-"},
		}},
		{testimg.BookwormCustomToml, "BETA", map[string][]string{
			"custom.toml": {"config_version = 1\n", "[system]\nhostname = \"HOST\"\n"},
			"cmdline.txt": {"init=/usr/lib/raspberrypi-sys-mods/firstboot"},
		}},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			t.Parallel()
			t0 := time.Now()
			im := buildImage(t, tc.kind)
			t1 := time.Now()
			s := setup(t, im, tc.venue)
			t2 := time.Now()
			a := startAgent(t, s.URL, fmt.Sprintf("10000000abcd%04x", i))
			if err := a.wait(t); err != nil {
				t.Fatalf("rpi-agent: %v\n%s", err, a.out)
			}
			t.Logf("image %v, server %v, agent %v", t1.Sub(t0), t2.Sub(t1), time.Since(t2))
			d := a.deployment(t, s)
			if d.State != "verified" || d.SHA256 != im.m.SHA256 {
				t.Fatalf("server has %+v, want verified with sha256 %s", d, im.m.SHA256)
			}
			if want := "KXP2-" + tc.venue + "-001"; d.Hostname != want {
				t.Fatalf("hostname %q, want %q", d.Hostname, want)
			}
			checkCard(t, im, a.target)
			for name, subs := range tc.files {
				got := mtype(t, im, a.target, name)
				for _, sub := range subs {
					if sub = strings.ReplaceAll(sub, "HOST", d.Hostname); !strings.Contains(got, sub) {
						t.Errorf("%s lacks %q:\n%s", name, sub, got)
					}
				}
			}
		})
	}
}

// slowStream makes the agent's stream last a few seconds: writes capped at 20 MB/s and
// the fewest buffers, so that the image is not all in flight before the server goes.
var slowStream = []string{"--write-rate-limit", "20", "--buffers", "1"}

// TestServerRestartMidStream kills rpi-deployd while the agent streams and starts it
// again on the same port: the agent resumes with a Range request and succeeds,
// fetching less than 1.2 × the compressed image.
func TestServerRestartMidStream(t *testing.T) {
	t.Parallel()
	im := buildImageData(t, testimg.BookwormFirstrun, 64)
	s := setupWith(t, im, "CORO", servertest.Options{Process: true})
	a := startAgent(t, s.URL, "10000000dead0001", slowStream...)
	waitFor(t, a, "phase=streaming", 20*time.Second)
	waitWritten(t, a, 4<<20, 20*time.Second)
	s.Kill()
	waitFor(t, a, "image stream broke; resuming", 20*time.Second)
	s.Restart(t)
	if err := a.wait(t); err != nil {
		t.Fatalf("rpi-agent: %v\n%s", err, a.out)
	}
	out := a.out.String()
	mm := regexp.MustCompile(`fetched=(\d+) resumes=(\d+)`).FindStringSubmatch(out)
	if mm == nil {
		t.Fatalf("no stats line:\n%s", out)
	}
	fetched, _ := strconv.ParseInt(mm[1], 10, 64)
	resumes, _ := strconv.Atoi(mm[2])
	if resumes < 1 || float64(fetched) >= 1.2*float64(im.m.CompressedSize) {
		t.Fatalf("fetched %d bytes of a %d-byte image with %d resumes; want ≥ 1 resume and < 1.2×\n%s", fetched, im.m.CompressedSize, resumes, out)
	}
	t.Logf("fetched %d of %d compressed bytes (%.3f×), %d resumes", fetched, im.m.CompressedSize, float64(fetched)/float64(im.m.CompressedSize), resumes)
	if d := a.deployment(t, s); d.State != "verified" {
		t.Fatalf("server has %+v, want verified", d)
	}
	checkCard(t, im, a.target)
}

// TestServerGone: the server dies and stays away past the agent's retry budget; the
// agent fails and the card stays unbootable.
func TestServerGone(t *testing.T) {
	t.Parallel()
	im := buildImageData(t, testimg.BookwormFirstrun, 64)
	s := setupWith(t, im, "CORO", servertest.Options{Process: true})
	a := startAgent(t, s.URL, "10000000dead0002", append(slowStream, "--retry-budget", "2s")...)
	waitFor(t, a, "phase=streaming", 20*time.Second)
	waitWritten(t, a, 4<<20, 20*time.Second)
	s.Kill()
	if err := a.wait(t); err == nil {
		t.Fatalf("rpi-agent succeeded without a server:\n%s", a.out)
	}
	if out := a.out.String(); !strings.Contains(out, "FAILED in streaming") || !strings.Contains(out, "retry budget exhausted") {
		t.Errorf("output does not name the phase and cause:\n%s", out)
	}
	checkUnbootable(t, a.target)
}

// TestCorruptImage flips one byte of the image the server stores, in a chunk that
// holds data: the agent fails naming that chunk, the server records the failure, and
// the card's partition table is never written.
func TestCorruptImage(t *testing.T) {
	t.Parallel()
	im := buildImage(t, testimg.TrixieCloudInit)
	s := setup(t, im, "ARIA")
	bad := -1
	for i, c := range im.m.Chunks {
		if c.DataSHA256 != "" && i > 10 {
			bad = i
			break
		}
	}
	stored := filepath.Join(s.DataDir, "images", im.m.Name+".img.zst")
	flashtest.FlipByte(t, stored, im.m.Chunks[bad].Frame+im.m.Chunks[bad].FrameSize/2)
	a := startAgent(t, s.URL, "10000000bad00001")
	if err := a.wait(t); err == nil {
		t.Fatalf("rpi-agent succeeded on a corrupt image:\n%s", a.out)
	}
	want := fmt.Sprintf("chunk %d at byte %d", bad, int64(bad)*im.m.ChunkSize)
	if out := a.out.String(); !strings.Contains(out, want) {
		t.Errorf("output does not name %q:\n%s", want, out)
	}
	d := a.deployment(t, s)
	if d.State != "failed" || !strings.Contains(d.Error, want) {
		t.Errorf("server has %+v, want failed naming %q", d, want)
	}
	checkUnbootable(t, a.target)
}

// TestTruncatedImage cuts the stored image exactly at a frame boundary (which a zstd
// reader takes for a clean end of file) and inside a frame: the agent fails, never
// reports success, and the card stays unbootable.
func TestTruncatedImage(t *testing.T) {
	t.Parallel()
	im := buildImage(t, testimg.BookwormCustomToml)
	k := len(im.m.Chunks) / 2
	for i, cut := range []int64{im.m.Chunks[k].Frame, im.m.Chunks[k].Frame + 7} {
		t.Run(fmt.Sprintf("cut at %d", cut), func(t *testing.T) {
			s := setup(t, im, "BETA")
			stored := filepath.Join(s.DataDir, "images", im.m.Name+".img.zst")
			if err := os.Truncate(stored, cut); err != nil {
				t.Fatal(err)
			}
			a := startAgent(t, s.URL, fmt.Sprintf("10000000c0de%04x", i), "--retry-budget", "2s")
			if err := a.wait(t); err == nil {
				t.Fatalf("rpi-agent succeeded on a truncated image:\n%s", a.out)
			}
			if d := a.deployment(t, s); d.State == "verified" {
				t.Fatalf("server has %+v", d)
			}
			checkUnbootable(t, a.target)
		})
	}
}

func checkUnbootable(t *testing.T, card string) {
	t.Helper()
	f, err := os.Open(card)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 4096)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, make([]byte, 4096)) {
		t.Fatalf("the card's first block is not zero after a failure: %q", b[:16])
	}
}

// waitWritten waits until the agent has written n bytes of image onto its card: the
// card file's allocated blocks grow past the old card's n bytes beyond it.
func waitWritten(t *testing.T, a *agentRun, n int64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var st syscall.Stat_t
		if err := syscall.Stat(a.target, &st); err != nil {
			t.Fatal(err)
		}
		if st.Blocks*512 >= 512<<10+n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rpi-agent wrote %d bytes within %v, want %d:\n%s", st.Blocks*512-512<<10, d, n, a.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitFor(t *testing.T, a *agentRun, s string, d time.Duration) {
	t.Helper()
	if !a.out.WaitFor(s, d) {
		t.Fatalf("no %q from rpi-agent within %v:\n%s", s, d, a.out)
	}
}

// TestHelloRetryUntilBatch: a board that says hello before there is a batch for it is
// told to retry later; it keeps asking (after the server's delay, with jitter) and
// flashes once the operator has created the batch.
func TestHelloRetryUntilBatch(t *testing.T) {
	t.Parallel()
	im := buildImage(t, testimg.TrixieCloudInit)
	cfg := filepath.Join(t.TempDir(), "rpi-deployd.json")
	if err := os.WriteFile(cfg, []byte(`{"retry_after": "300ms"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := servertest.Start(t, servertest.Options{Args: []string{"--config", cfg}})
	a := startAgent(t, s.URL, "10000000feed0001")
	waitFor(t, a, "server says retry later", 20*time.Second)
	s.Setup(t, servertest.Fleet{Venue: "GAMA", Product: "KXP2", Count: 1, Image: im.zst})
	if err := a.wait(t); err != nil {
		t.Fatalf("rpi-agent: %v\n%s", err, a.out)
	}
	if d := a.deployment(t, s); d.State != "verified" || d.Hostname != "KXP2-GAMA-001" {
		t.Fatalf("server has %+v, want KXP2-GAMA-001 verified", d)
	}
}

// TestCardFailsWrites: the card is a loop device whose backing file sits on a 16 MiB
// tmpfs, so writes fail part-way (ENOSPC/EIO): the agent fails in streaming with the
// cause, the server records it, and the card is left unbootable.
func TestCardFailsWrites(t *testing.T) {
	t.Parallel()
	im := buildImage(t, testimg.TrixieCloudInit)
	dev := flashtest.LoopOnTinyTmpfs(t, im.m.Size+(8<<20), 16<<20)
	s := setup(t, im, "DELT")
	a := startAgentOn(t, s.URL, "10000000d1ed0001", dev)
	if err := a.wait(t); err == nil {
		t.Fatalf("rpi-agent succeeded on a failing card:\n%s", a.out)
	}
	d := a.deployment(t, s)
	if d.State != "failed" || d.ErrorPhase != "streaming" ||
		!(strings.Contains(d.Error, "no space left on device") || strings.Contains(d.Error, "input/output error")) {
		t.Errorf("server has %+v, want failed in streaming with ENOSPC or EIO", d)
	}
	checkUnbootable(t, dev)
}
