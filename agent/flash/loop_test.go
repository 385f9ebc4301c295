package flash

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// loopOnTinyTmpfs returns a loop device of size bytes whose backing file sits on a
// tmpfs of tmpfsSize bytes: writes past what the tmpfs holds fail, as a card that
// dies or fills up does. Everything is undone in t.Cleanup.
func loopOnTinyTmpfs(t *testing.T, size, tmpfsSize int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for mount and losetup")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Fatalf("losetup not installed (scripts/deps/agent.apt lists mount): %v", err)
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(tmpfsSize, 10), "rpi-agent-test", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	backing := filepath.Join(dir, "card")
	f, err := os.Create(backing)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command("losetup", "--find", "--show", backing).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

func TestTargetFailsWrites(t *testing.T) {
	raw := synthImage(t, 16<<20)
	m, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	dev := loopOnTinyTmpfs(t, 32<<20, 4<<20)
	// A previous image on the card: its first block must not survive the failure.
	if err := os.WriteFile(dev, bytes.Repeat([]byte("OLD!"), 1024), 0); err != nil {
		t.Fatal(err)
	}
	fl, err := Open(dev, m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	err = fl.Stream(context.Background(), &HTTPSource{URL: serve(t, plain(zst)), Size: m.CompressedSize})
	if !errors.Is(err, ErrWrite) || !(errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EIO)) {
		t.Fatalf("err = %v, want ErrWrite with ENOSPC or EIO", err)
	}
	t.Logf("stream failed as it should: %v", err)
	checkUnbootable(t, dev)
}
