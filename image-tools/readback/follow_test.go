package readback_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
)

// followImage packs a 10-chunk image (1 MiB chunks, data and free space interleaved)
// and returns its manifest and bytes.
func followImage(t *testing.T) (*manifest.Manifest, []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	raw := make([]byte, 10<<20)
	for i := range raw {
		if (i/65536)%3 != 1 {
			raw[i] = byte(rng.Uint32())
		}
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "follow.img")
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := pack.Pack(context.Background(), pack.Options{Input: in, Output: filepath.Join(dir, "follow.img.zst"), ChunkSize: 1 << 20, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	return m, raw
}

// openCard writes b to a file and opens it the way the agent reads a card back.
func openCard(t *testing.T, b []byte) *blockdev.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "card.img")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := blockdev.Open(p, os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestFollower(t *testing.T) {
	m, raw := followImage(t)
	skip0 := readback.Options{Skip: func(i int) bool { return i == 0 }, Workers: 4}
	all := make([]int, len(m.Chunks))
	for i := range all {
		all[i] = i
	}
	reversed := slices.Clone(all)
	slices.Reverse(reversed)

	bad := slices.Clone(raw)
	bad[7<<20+17] ^= 1 // chunk 7, in a data range
	bad[3<<20+5] ^= 0x80

	tests := []struct {
		name      string
		card      []byte
		add       []int
		cancel    bool
		wantN     int
		wantChunk int   // -1: no chunk error
		wantErr   error // errors.Is
	}{
		{name: "good, in order", card: raw, add: all, wantN: len(m.Chunks) - 1, wantChunk: -1},
		{name: "good, out of order", card: raw, add: reversed, wantN: len(m.Chunks) - 1, wantChunk: -1},
		// The later bad chunk may be checked first: the first one is named, and the
		// count is of the good chunks before it (1 and 2: chunk 0 is skipped).
		{name: "two bad chunks, out of order", card: bad, add: reversed, wantN: 2, wantChunk: 3, wantErr: readback.ErrMismatch},
		{name: "chunk 5 never added", card: raw, add: slices.Delete(slices.Clone(all), 5, 6), wantN: 4, wantChunk: 5, wantErr: readback.ErrNotChecked},
		{name: "cancelled", card: raw, add: all, cancel: true, wantChunk: -1, wantErr: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			fo := readback.NewFollower(ctx, openCard(t, tc.card), m, skip0)
			for _, i := range tc.add {
				fo.Add(i)
			}
			n, err := fo.Close()
			var ce *readback.ChunkError
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Close = %d, %v; want no error", n, err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("Close = %d, %v; want %v", n, err, tc.wantErr)
			case tc.wantChunk >= 0 && (!errors.As(err, &ce) || ce.Chunk != tc.wantChunk):
				t.Fatalf("Close = %d, %v; want an error of chunk %d", n, err, tc.wantChunk)
			case !tc.cancel && n != tc.wantN:
				t.Fatalf("Close = %d chunks matched, %v; want %d", n, err, tc.wantN)
			}
			if tc.wantErr == nil && fo.Done() != fo.Total() {
				t.Fatalf("Done = %d of Total %d after a clean read-back", fo.Done(), fo.Total())
			}
		})
	}
}
