package pack

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteOutput: the O_DIRECT writer gives exactly the bytes written, in pieces of
// any size, for lengths around the 4096-byte alignment and its 1 MiB buffer, with
// atomicfile's mode; on a file system whose O_DIRECT status differs (tmpfs in
// /dev/shm) too. A failed write leaves nothing behind.
func TestWriteOutput(t *testing.T) {
	dirs := []string{t.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "packtest")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(shm) })
		dirs = append(dirs, shm)
	}
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
