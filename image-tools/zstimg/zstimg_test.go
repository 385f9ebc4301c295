package zstimg_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/zstimg"
)

// TestReaderAt reads the raw image back through the frame index at random offsets and
// lengths, across chunk boundaries and past the end.
func TestReaderAt(t *testing.T) {
	dir := t.TempDir()
	raw := make([]byte, 5<<20+1234)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range raw {
		if i%3 == 0 {
			raw[i] = byte(rng.Uint32())
		}
	}
	in := filepath.Join(dir, "raw.img")
	os.WriteFile(in, raw, 0o644)
	out := filepath.Join(dir, "r.img.zst")
	m, err := pack.Pack(context.Background(), pack.Options{Input: in, Output: out, ChunkSize: 256 << 10, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(out)
	defer f.Close()
	r, err := zstimg.NewReader(f, m)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for range 200 {
		off := rng.Int64N(int64(len(raw)))
		n := rng.IntN(600 << 10)
		buf := make([]byte, n)
		got, err := r.ReadAt(buf, off)
		want := min(n, len(raw)-int(off))
		if got != want || !bytes.Equal(buf[:got], raw[off:off+int64(got)]) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d bytes equal to the image", n, off, got, err, want)
		}
		if (err == io.EOF) != (want < n) {
			t.Fatalf("ReadAt(%d bytes at %d): err %v", n, off, err)
		}
	}
	// A frame whose bytes were damaged fails its chunk's hash check.
	b, _ := os.ReadFile(out)
	c := m.Chunks[3]
	b[c.Frame+c.FrameSize/2] ^= 1
	r2, _ := zstimg.NewReader(bytes.NewReader(b), m)
	defer r2.Close()
	_, err = r2.ReadAt(make([]byte, 10), 3*m.ChunkSize)
	if err == nil {
		t.Fatal("damaged frame read without error")
	}
	if err := zstimg.Verify(context.Background(), bytes.NewReader(b), int64(len(b)), m, zstimg.VerifyOptions{}); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("Verify of a damaged file: %v", err)
	}
}

// TestVerifyChain: Verify accepts a packed file with its chain values and names the
// chunk whose chain value the whole-image hash does not pass through.
func TestVerifyChain(t *testing.T) {
	dir := t.TempDir()
	raw := make([]byte, 2<<20+100)
	rand.NewChaCha8([32]byte{3}).Read(raw[:1<<20])
	in := filepath.Join(dir, "raw.img")
	os.WriteFile(in, raw, 0o644)
	out := filepath.Join(dir, "c.img.zst")
	m, err := pack.Pack(context.Background(), pack.Options{Input: in, Output: out, ChunkSize: 256 << 10, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if err := zstimg.Verify(context.Background(), bytes.NewReader(b), int64(len(b)), m, zstimg.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := *m
	bad.Chunks = slices.Clone(m.Chunks)
	bad.Chunks[5].Chain = bad.Chunks[4].Chain
	err = zstimg.Verify(context.Background(), bytes.NewReader(b), int64(len(b)), &bad, zstimg.VerifyOptions{})
	if !errors.Is(err, zstimg.ErrMismatch) || !strings.Contains(err.Error(), "chunk 5: sha256 chain") {
		t.Fatalf("Verify with a wrong chain value at chunk 5: %v", err)
	}
}
