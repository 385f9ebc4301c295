package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// agentBin is rpi-agent, built once for this test binary by TestMain.
var agentBin string

func TestMain(m *testing.M) {
	var err error
	if agentBin, err = servertest.Build(servertest.AgentPkg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// fleetServer starts a real rpi-deployd with a packed Raspberry Pi OS-shaped image
// (about 56 MiB raw) and an active KXP2 batch of count boards.
func fleetServer(t *testing.T, count int) (*servertest.Server, *manifest.Manifest) {
	t.Helper()
	if err := testimg.RequireTools(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	raw := filepath.Join(dir, "master.img")
	if _, err := testimg.Build(raw, testimg.Options{BootSize: testimg.MinBootSize, RootData: 8 << 20, RootFree: 4 << 20, Seed: 8}); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "fleet.img.zst")
	if _, err := pack.Pack(context.Background(), pack.Options{Input: raw, Output: img, ChunkSize: 1 << 20, Concurrency: 2}); err != nil {
		t.Fatal(err)
	}
	os.Remove(raw)
	// Every virtual board says hello from 127.0.0.1: the per-address limits are off.
	srv := servertest.Start(t, servertest.Options{NoSourceLimits: true})
	info := srv.Setup(t, servertest.Fleet{Venue: "FLET", Product: "KXP2", Count: count, Image: img})
	return srv, info.Manifest
}

func newFleet(t *testing.T, srv *servertest.Server, m *manifest.Manifest, cfg Config) *Fleet {
	t.Helper()
	cfg.Server, cfg.Agent, cfg.Manifest = srv.URL, agentBin, m
	cfg.View = &APIView{Server: srv.URL, Token: srv.Token}
	if cfg.WorkDir == "" {
		cfg.WorkDir = t.TempDir()
	}
	cfg.Interval = 200 * time.Millisecond
	cfg.Log = testWriter{t}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestScenarios runs one board of every scenario against a real server: each ends
// as its scenario expects, checked against the server's deployments and the card;
// then a card the server calls verified is damaged, and the check must call it
// verified-but-bad.
func TestScenarios(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the badcard scenario needs root (tmpfs + loop device); CI runs as root")
	}
	srv, m := fleetServer(t, 5)
	f := newFleet(t, srv, m, Config{
		Boards: 5, Mix: Mix{Normal: 20, Slow: 20, Flaky: 20, BadCard: 20, Reboot: 20}, Seed: 5,
		SlowRate: 15e6, RebootAt: 0.3, RebootWait: 200 * time.Millisecond, Timeout: 2 * time.Minute,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := f.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	rep.WriteTable(&buf)
	t.Logf("report:\n%s", buf.String())

	views, err := f.cfg.View.Boards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range rep.Boards {
		if b.Outcome != b.Scenario.Expect() {
			t.Errorf("board %d (%s): %s %q, want %s", b.Index, b.Scenario, b.Outcome, b.Cause, b.Scenario.Expect())
		}
		sb := views[b.Serial]
		switch b.Scenario {
		case Reboot:
			if b.Reboots != 1 || b.Runs != 2 {
				t.Errorf("reboot board: %d power cuts in %d runs, want 1 in 2", b.Reboots, b.Runs)
			}
		case Flaky:
			if b.Cuts == 0 {
				t.Errorf("flaky board: the network cut no connection")
			}
		case BadCard:
			if sb.Phase != "failed" || sb.Error == "" || b.Cause == "" {
				t.Errorf("bad card: server shows %q %q, cause %q; want failed with the write error", sb.Phase, sb.Error, b.Cause)
			}
		}
		if b.Outcome == Verified && (sb.Phase != "verified" || !strings.HasPrefix(sb.Hostname, "KXP2-FLET-")) {
			t.Errorf("board %d verified, but the server shows %+v", b.Index, sb)
		}
	}
	if !rep.OK() || rep.Count(Verified) != 4 || rep.Count(Failed) != 1 {
		t.Errorf("report: OK %v, %d verified, %d failed; want OK, 4 verified, 1 failed", rep.OK(), rep.Count(Verified), rep.Count(Failed))
	}

	// Damage a verified card where no first-boot file goes (the last data chunk, in
	// rootfs): the same check must now refuse it.
	var victim *Board
	for _, b := range rep.Boards {
		if b.Outcome == Verified && b.Scenario == Normal {
			victim = b
		}
	}
	last := m.Ranges[len(m.Ranges)-1]
	card, err := os.OpenFile(victim.Target, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	card.ReadAt(one, last.End()-1)
	one[0] ^= 0x5a
	if _, err := card.WriteAt(one, last.End()-1); err != nil {
		t.Fatal(err)
	}
	card.Close()
	for _, b := range rep.Boards {
		if b.Outcome == Verified {
			b.Cause = ""
		}
	}
	f.check(ctx)
	if victim.Outcome != BadVerified || !strings.Contains(victim.Cause, "card does not hold the image") {
		t.Errorf("damaged card: %s %q, want %s", victim.Outcome, victim.Cause, BadVerified)
	}
	for _, b := range rep.Boards {
		if b != victim && b.Outcome == BadVerified {
			t.Errorf("board %d: %s %q after re-checking undamaged cards", b.Index, b.Outcome, b.Cause)
		}
	}
}

// TestStuckBoard: a board that does not end within the timeout is killed and called
// stuck, and the run says so — a simulator that waited forever, or called it failed
// without saying why, would hide exactly the boards an operator must look at.
func TestStuckBoard(t *testing.T) {
	srv, m := fleetServer(t, 1)
	f := newFleet(t, srv, m, Config{Boards: 1, Mix: Mix{Slow: 100}, SlowRate: 1e6, Timeout: 2 * time.Second})
	start := time.Now()
	rep, err := f.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b := rep.Boards[0]
	if b.Outcome != Stuck || !strings.Contains(b.Cause, "agent killed") {
		t.Errorf("slow board past its timeout: %s %q, want stuck", b.Outcome, b.Cause)
	}
	if rep.OK() {
		t.Error("report OK with a stuck board")
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("run took %v after a 2 s board timeout", d)
	}
}
