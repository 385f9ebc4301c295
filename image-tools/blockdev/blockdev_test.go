package blockdev

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestAlignedBuffer(t *testing.T) {
	for _, n := range []int{0, 1, 4096, 4 << 20, 12345} {
		b := AlignedBuffer(n)
		if len(b) != n || cap(b) != n || (n > 0 && !IsAligned(b)) {
			t.Errorf("AlignedBuffer(%d): len %d cap %d aligned %v", n, len(b), cap(b), IsAligned(b))
		}
	}
}

// TestReadWrite: aligned transfers go direct, unaligned ones (FAT updates, an image's
// odd tail) through the page cache; both land in the file.
func TestReadWrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "card.img")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Logf("direct I/O: %v", f.Direct())
	aligned := AlignedBuffer(8192)
	copy(aligned, bytes.Repeat([]byte("A"), 8192))
	if n, err := f.WriteAt(aligned, 4096); n != 8192 || err != nil {
		t.Fatalf("aligned write: %d, %v", n, err)
	}
	if n, err := f.WriteAt([]byte("odd"), 100); n != 3 || err != nil {
		t.Fatalf("unaligned write: %d, %v", n, err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	got := AlignedBuffer(16384)
	if n, err := f.ReadAt(got, 0); n != len(got) || err != nil {
		t.Fatalf("aligned read: %d, %v", n, err)
	}
	want := make([]byte, 16384)
	copy(want[100:], "odd")
	copy(want[4096:], bytes.Repeat([]byte("A"), 8192))
	if !bytes.Equal(got, want) {
		t.Error("file does not hold what was written")
	}
	small := make([]byte, 5)
	if n, err := f.ReadAt(small, 99); n != 5 || err != nil || string(small) != "\x00odd\x00" {
		t.Errorf("unaligned read: %q, %d, %v", small, n, err)
	}
	if n, err := f.Size(); n != 1<<20 || err != nil {
		t.Errorf("Size = %d, %v", n, err)
	}
	if IsBlockDevice(p) {
		t.Error("a regular file is not a block device")
	}
}
