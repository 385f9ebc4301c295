package readback_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
)

func TestVerify(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	raw := make([]byte, 6<<20+4096+100) // tail not block-aligned
	for i := range raw {
		if (i/65536)%3 != 1 {
			raw[i] = byte(rng.Uint32())
		}
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.img")
	if err := os.WriteFile(good, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := pack.Pack(context.Background(), pack.Options{Input: good, Output: filepath.Join(dir, "rb.img.zst"), ChunkSize: 1 << 20, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	var last, total int64
	for _, full := range []bool{false, true} {
		n, err := readback.Verify(context.Background(), good, m, readback.Options{Full: full, Progress: func(d, tot int64) { last, total = d, tot }})
		if err != nil || n != len(m.Chunks) || last != total {
			t.Fatalf("full=%v: %d chunks, progress %d/%d, err %v; want %d chunks", full, n, last, total, err, len(m.Chunks))
		}
	}
	n, err := readback.Verify(context.Background(), good, m, readback.Options{Skip: func(i int) bool { return i == 0 }})
	if err != nil || n != len(m.Chunks)-1 {
		t.Fatalf("skip chunk 0: %d chunks, %v", n, err)
	}

	bad := append([]byte(nil), raw...)
	bad[4<<20+65536+17] ^= 1 // inside a data range (free space is not read back)
	badPath := filepath.Join(dir, "bad.img")
	if err := os.WriteFile(badPath, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = readback.Verify(context.Background(), badPath, m, readback.Options{})
	var ce *readback.ChunkError
	if !errors.As(err, &ce) || ce.Chunk != 4 || ce.Offset != 4<<20 || !errors.Is(err, readback.ErrMismatch) {
		t.Fatalf("err = %v, want a mismatch at chunk 4", err)
	}

	// Two bad chunks, many workers: the later one may be hashed first, but the error is
	// always the first chunk's and the count is of the chunks before it.
	bad[1<<20+65536*2+5] ^= 1
	if err := os.WriteFile(badPath, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		n, err := readback.Verify(context.Background(), badPath, m, readback.Options{Workers: 8})
		if !errors.As(err, &ce) || ce.Chunk != 1 || n != 1 {
			t.Fatalf("two bad chunks: %d matched, err %v; want 1 matched and a mismatch at chunk 1", n, err)
		}
	}

	short := filepath.Join(dir, "short.img")
	if err := os.WriteFile(short, raw[:5<<20], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readback.Verify(context.Background(), short, m, readback.Options{}); err == nil || errors.Is(err, readback.ErrMismatch) {
		t.Fatalf("short file: err = %v, want a read error", err)
	}
}

// TestVerifyPairs pins the paired read-back: chunks are read and hashed two at a time,
// and yet every chunk is judged on its own. Each chunk in turn gets a wrong byte (so it
// is once the first and once the second of a pair, and the last one alone), and at
// every worker count Verify names that chunk and counts the chunks before it; a file
// cut inside a chunk names that chunk with a read error, whatever its place in a pair.
func TestVerifyPairs(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	raw := make([]byte, 7<<20) // 7 chunks with data: an odd count leaves one alone
	for i := range raw {
		raw[i] = byte(rng.Uint32())
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.img")
	if err := os.WriteFile(good, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := pack.Pack(context.Background(), pack.Options{Input: good, Output: filepath.Join(dir, "p.img.zst"), ChunkSize: 1 << 20, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 2, 3, 8} {
		n, err := readback.Verify(context.Background(), good, m, readback.Options{Workers: workers})
		if err != nil || n != len(m.Chunks) {
			t.Fatalf("workers %d, good file: %d chunks, %v", workers, n, err)
		}
		for bad := range m.Chunks {
			img := bytes.Clone(raw)
			img[int64(bad)<<20+int64(rng.IntN(1<<20))] ^= 0x40
			p := filepath.Join(dir, "bad.img")
			if err := os.WriteFile(p, img, 0o644); err != nil {
				t.Fatal(err)
			}
			n, err := readback.Verify(context.Background(), p, m, readback.Options{Workers: workers})
			var ce *readback.ChunkError
			if !errors.As(err, &ce) || ce.Chunk != bad || !errors.Is(err, readback.ErrMismatch) || n != bad {
				t.Errorf("workers %d, chunk %d changed: %d matched, err %v; want %d matched and a mismatch at chunk %d", workers, bad, n, err, bad, bad)
			}
			cut := filepath.Join(dir, "cut.img")
			if err := os.WriteFile(cut, raw[:int64(bad)<<20+1000], 0o644); err != nil {
				t.Fatal(err)
			}
			n, err = readback.Verify(context.Background(), cut, m, readback.Options{Workers: workers})
			if !errors.As(err, &ce) || ce.Chunk != bad || errors.Is(err, readback.ErrMismatch) || n != bad {
				t.Errorf("workers %d, file cut in chunk %d: %d matched, err %v; want %d matched and a read error at chunk %d", workers, bad, n, err, bad, bad)
			}
		}
	}
}
