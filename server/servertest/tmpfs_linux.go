package servertest

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// SmallDataDir returns a directory on a tmpfs of size bytes, for a data directory
// that fills up as a real disk does (writes past it fail with ENOSPC). It is
// unmounted in t.Cleanup. Needs root (mount); the test fails without it.
func SmallDataDir(t testing.TB, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("SmallDataDir: mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10)+",mode=0755",
		"rpi-deployd-test", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount tmpfs on %s: %v: %s", dir, err, out)
	}
	// Registered after t.TempDir's own cleanup, so it runs first (LIFO): unmount, then
	// remove the empty directory.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
