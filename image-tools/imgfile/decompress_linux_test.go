package imgfile

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestDecompressDiskFull pins a hang: when the output's disk filled while xz was still
// writing, Decompress waited for xz, and xz for a reader that had stopped reading, until
// the context ended (then the error was xz's "killed", not the full disk). Now xz is
// stopped at once, the error is ENOSPC, and no temporary file is left behind.
func TestDecompressDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("mounting a tmpfs needs root")
	}
	src := filepath.Join(t.TempDir(), "big.img")
	raw := make([]byte, 24<<20)
	rand.NewChaCha8([32]byte{1}).Read(raw) // incompressible, no holes: every block is written
	if err := os.WriteFile(src, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("xz", "-T1", "-0", "-k", src).CombinedOutput(); err != nil {
		t.Fatalf("xz: %v: %s", err, out)
	}
	out := t.TempDir()
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "imgfile-test", out).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, b)
	}
	t.Cleanup(func() {
		if b, err := exec.Command("umount", out).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", out, err, b)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, _, err := Decompress(ctx, src+".xz", XZ, out, nil)
	if err == nil {
		f.Close()
		t.Fatal("decompressing 24 MiB onto a 4 MiB disk succeeded")
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("err = %v, want ENOSPC", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}
