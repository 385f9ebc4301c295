// Package flashtest holds test helpers for code that writes cards: a loop device that
// fails its writes the way a full or dying card does, a byte garbled on a card.
package flashtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// LoopOnTinyTmpfs returns a loop device of size bytes whose backing file sits on a
// tmpfs of tmpfsSize bytes: writes past what the tmpfs holds fail, as a card that
// dies or fills up does. Everything is undone in t.Cleanup.
func LoopOnTinyTmpfs(t testing.TB, size, tmpfsSize int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root for mount and losetup")
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

// FlipByte flips a bit of the byte at off of the file at path (a card or an image) and
// makes that durable, as a card that lost or garbled a write would hold it.
func FlipByte(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x20
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}
