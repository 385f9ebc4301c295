package pack

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
)

// TestDirectInput: chunks the page cache does not hold are read with O_DIRECT, those
// it holds and unaligned reads through the page cache; every read returns the file's
// bytes, up to and past its unaligned end. On tmpfs (/dev/shm: everything cached) too.
func TestDirectInput(t *testing.T) {
	dirs := testDirs(t)
	rng := rand.New(rand.NewPCG(5, 6))
	want := make([]byte, 3<<20+1000)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	for _, dir := range dirs {
		path := filepath.Join(dir, "in.img")
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		// Drop the file's (clean) pages: the first megabytes are not cached now.
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
		r, closeDirect := directInput(f)
		defer closeDirect()
		d, isDirect := r.(*directReader)
		if dir == dirs[0] && !isDirect {
			t.Fatalf("%s: directInput gave %T, want the O_DIRECT reader (kernel without cachestat?)", dir, r)
		}

		read := func(off int64, n int, buf []byte) {
			t.Helper()
			k, err := r.ReadAt(buf[:n], off)
			end := min(off+int64(n), int64(len(want)))
			if k != int(end-off) || !bytes.Equal(buf[:k], want[off:end]) {
				t.Fatalf("%s: read %d at %d: %d bytes (%v), not the file's", dir, n, off, k, err)
			}
		}
		buf := blockdev.AlignedBuffer(1 << 20)
		read(0, 1<<20, buf) // not cached, aligned: direct
		if !isDirect {
			continue // tmpfs without O_DIRECT: plain reads, checked above
		}
		direct := d.directBytes.Load()
		if dir == dirs[0] && direct != 1<<20 {
			t.Errorf("%s: %d bytes read with O_DIRECT, want 1 MiB", dir, direct)
		}
		f.ReadAt(make([]byte, 1<<20), 1<<20) // now cached: through the page cache
		read(1<<20, 1<<20, buf)
		read(100, 5000, make([]byte, 5000))                              // unaligned offset
		read(2<<20, 4096+1, make([]byte, 4097))                          // unaligned length
		read(int64(len(want))&^4095, 4096, blockdev.AlignedBuffer(4096)) // past the unaligned end
		unaligned := make([]byte, 8192+1)[1:]
		read(2<<20, 8192, unaligned) // unaligned buffer
		if got := d.directBytes.Load(); got != direct && dir == dirs[0] {
			t.Errorf("%s: cached and unaligned reads went through O_DIRECT (%d bytes more)", dir, got-direct)
		}
	}
}
