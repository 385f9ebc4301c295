package pack

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestWriteOutput: the O_DIRECT writer gives exactly the bytes written, in pieces of
// any size, for lengths around the 4096-byte alignment and its 1 MiB buffer, with
// atomicfile's mode; on a file system whose O_DIRECT status differs (tmpfs in
// /dev/shm) too. A failed write leaves nothing behind.
func TestWriteOutput(t *testing.T) {
	dirs := testDirs(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, dir := range dirs {
		for _, n := range []int{0, 1, 4095, 4096, 4097, 1 << 20, 1<<20 + 4097, 3<<20 + 123} {
			want := make([]byte, n)
			for i := range want {
				want[i] = byte(rng.Uint32())
			}
			path := filepath.Join(dir, "o.img.zst")
			err := writeOutput(path, func(w io.Writer) error {
				for rest := want; len(rest) > 0; {
					k := min(len(rest), 1+rng.IntN(700<<10))
					if m, err := w.Write(rest[:k]); m != k || err != nil {
						return errors.Join(err, io.ErrShortWrite)
					}
					rest = rest[k:]
				}
				return nil
			})
			if err != nil {
				t.Fatalf("%s, %d bytes: %v", dir, n, err)
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s, %d bytes: read back %d bytes (%v), not what was written", dir, n, len(got), err)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
				t.Errorf("%s: mode %v, want 0644", dir, st.Mode().Perm())
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("%s: %d files, want only the output", dir, len(ents))
			}
		}

		boom := errors.New("boom")
		path := filepath.Join(dir, "failed.img.zst")
		err := writeOutput(path, func(w io.Writer) error {
			w.Write(make([]byte, 3<<20))
			return boom
		})
		if !errors.Is(err, boom) {
			t.Errorf("%s: err %v, want boom", dir, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Errorf("%s: %d files after a failed write, want only the earlier output", dir, len(ents))
		}
	}
}

// TestWriteOutputDiskError: a write that fails on its way to the disk (here EFBIG
// past RLIMIT_FSIZE, a real refusal of the kernel) is reported, by a later Write or
// at the end, and nothing is left behind.
func TestWriteOutputDiskError(t *testing.T) {
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	limit := old
	limit.Cur = 2 << 20
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &limit); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_FSIZE, &old)
	dir := t.TempDir()
	for _, n := range []int{5 << 20, 2<<20 + 100} {
		err := writeOutput(filepath.Join(dir, "big.img.zst"), func(w io.Writer) error {
			_, err := w.Write(make([]byte, n))
			return err
		})
		if !errors.Is(err, unix.EFBIG) {
			t.Errorf("%d bytes past a 2 MiB limit: err %v, want EFBIG", n, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%d bytes: %s left behind", n, ents[0].Name())
		}
	}
}

// testDirs is a test's directories to write files in: one on the disk and, where
// there is one, one on tmpfs (/dev/shm), whose O_DIRECT and page-cache behaviour differ.
func testDirs(t *testing.T) []string {
	t.Helper()
	dirs := []string{t.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "packtest")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(shm) })
		dirs = append(dirs, shm)
	}
	return dirs
}
