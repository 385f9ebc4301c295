package blockdev

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFallback: after the kernel refuses a direct transfer the file carries on with
// buffered I/O (what happens on file systems without O_DIRECT).
func TestFallback(t *testing.T) {
	p := filepath.Join(t.TempDir(), "card.img")
	if err := os.WriteFile(p, make([]byte, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.fallback(); err != nil {
		t.Fatal(err)
	}
	if f.Direct() {
		t.Fatal("still direct after fallback")
	}
	b := AlignedBuffer(4096)
	copy(b, "after fallback")
	if _, err := f.WriteAt(b, 4096); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if string(got[4096:4096+14]) != "after fallback" {
		t.Errorf("got %q", got[4096:4110])
	}
}
