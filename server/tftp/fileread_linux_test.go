package tftp

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rpi-deploy/rpi-deploy/server/netnstest"
)

// TestFileReader: a boot file read through fileReader the way pin/tftp reads it (one
// io.ReadFull of a block per DATA packet, blksize 1468 and 512) comes out byte for
// byte — from the page cache with raw preadv2(RWF_NOWAIT) reads only; evicted from the
// cache, through ReadAt for what is not there (some piece of a large file at least); on tmpfs, which has no RWF_NOWAIT,
// with raw pread only — for sizes at, around and between the 64 KiB pieces, and empty.
func TestFileReader(t *testing.T) {
	netnstest.Require(t) // root, for the tmpfs mount
	mem := t.TempDir()
	if err := unix.Mount("rdt-fileread", mem, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mem, 0) })
	disk := t.TempDir()
	sizes := []int{0, 1, 511, 512, 1468, filePiece - 1, filePiece, filePiece + 1, 3*filePiece + 1000, 5_000_003}
	for _, tc := range []struct {
		name    string
		dir     string
		evict   bool
		wantRaw bool // every piece read raw
	}{
		{"page cache", disk, false, true},
		{"evicted", disk, true, false},
		{"tmpfs", mem, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range sizes {
				for _, blk := range []int{1468, 512} {
					want := make([]byte, size)
					rand.Read(want)
					name := filepath.Join(tc.dir, "kernel_2712.img")
					if err := os.WriteFile(name, want, 0o644); err != nil {
						t.Fatal(err)
					}
					f, err := os.Open(name)
					if err != nil {
						t.Fatal(err)
					}
					if tc.evict {
						if err := f.Sync(); err != nil {
							t.Fatal(err)
						}
						if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
							t.Fatal(err)
						}
					}
					r := newFileReader(f)
					got, err := readBlocks(r, blk)
					f.Close()
					if err != nil {
						t.Fatalf("size %d, blocks of %d: %v", size, blk, err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("size %d, blocks of %d: got %d bytes, not the file's", size, blk, len(got))
					}
					pieces := (size + filePiece - 1) / filePiece
					if tc.wantRaw && (r.raw != pieces || r.fallback != 0) {
						t.Errorf("size %d: %d pieces raw, %d through ReadAt; want all %d raw", size, r.raw, r.fallback, pieces)
					}
					// A RWF_NOWAIT read that misses the cache still starts the kernel's
					// read-ahead, and on a fast disk the page may be up to date before the
					// read gives up: a file of one or a few pieces can come out all raw.
					// Across the pieces of a 5 MB file some read falls back every time.
					if tc.evict && size > 16*filePiece && r.fallback == 0 {
						t.Errorf("size %d, evicted from the page cache: no piece read through ReadAt (%d raw)", size, r.raw)
					}
				}
			}
		})
	}
}

// readBlocks reads r as pin/tftp's sender does: io.ReadFull of blk bytes until a
// short block.
func readBlocks(r io.Reader, blk int) ([]byte, error) {
	var out []byte
	b := make([]byte, blk)
	for {
		n, err := io.ReadFull(r, b)
		out = append(out, b[:n]...)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestFileReaderClosed: reading a file closed under the reader is an error (not a
// panic, not an empty file).
func TestFileReaderClosed(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	r := newFileReader(f)
	f.Close()
	if _, err := r.Read(make([]byte, 10)); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("read of a closed file: %v, want an error", err)
	}
}
