package benchkit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
)

func TestPercentile(t *testing.T) {
	v := []float64{9, 1, 8, 2, 7, 3, 6, 4, 5, 10}
	for _, tc := range []struct {
		name string
		v    []float64
		p    int
		want float64
	}{
		{"none", nil, 99, 0},
		{"one", []float64{3}, 50, 3},
		{"median of ten", v, 50, 6},
		{"p99 of ten is the largest", v, 99, 10},
		{"p0 is the smallest", v, 0, 1},
		{"p100 stays in range", v, 100, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.v, tc.p); got != tc.want {
				t.Errorf("Percentile(%v, %d) = %v, want %v", tc.v, tc.p, got, tc.want)
			}
		})
	}
	if diff := cmp.Diff([]float64{9, 1, 8, 2, 7, 3, 6, 4, 5, 10}, v); diff != "" {
		t.Errorf("Percentile changed its input (-want +got):\n%s", diff)
	}
}

// TestMakeImage packs data without a partition table (which pack refuses unless
// raw) and checks the manifest describes exactly those bytes.
func TestMakeImage(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("rpi-deploy bench "), 40000) // 680000 bytes, not a block multiple
	img, err := MakeImage(dir, "kit", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "img", "kit.img.zst"); img != want {
		t.Errorf("image at %q, want %q", img, want)
	}
	m, err := manifest.Load(manifest.PathFor(img))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if m.Size != int64(len(data)) || m.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("manifest size %d sha256 %s, want %d %x", m.Size, m.SHA256, len(data), sum)
	}
	if _, err := os.Stat(filepath.Join(dir, "kit.raw")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("raw file left behind: %v", err)
	}
}

// TestMakeImageShortSource pins that a source with fewer bytes than asked is an
// error, not a smaller image.
func TestMakeImageShortSource(t *testing.T) {
	dir := t.TempDir()
	if _, err := MakeImage(dir, "short", bytes.NewReader(make([]byte, 100)), 4096); err == nil {
		t.Fatal("MakeImage from 100 bytes of 4096: no error")
	}
	boom := errors.New("read failed")
	if _, err := MakeImage(dir, "bad", iotest.ErrReader(boom), 4096); !errors.Is(err, boom) {
		t.Errorf("MakeImage from a failing reader: %v, want %v", err, boom)
	}
	if _, err := os.Stat(filepath.Join(dir, "img")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("image directory made after a failed read: %v", err)
	}
}
