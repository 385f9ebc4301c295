package flash

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
	"github.com/rpi-deploy/rpi-deploy/image-tools/zstimg"
)

// withChunks copies m (the packed cache shares it) so that a test may edit its chunks.
func withChunks(m *manifest.Manifest, edit func(m *manifest.Manifest)) *manifest.Manifest {
	c := *m
	c.Chunks = slices.Clone(m.Chunks)
	edit(&c)
	if err := c.Validate(); err != nil {
		panic(err)
	}
	return &c
}

func flipHex(s string) string {
	b := []byte(s)
	if b[10] == '0' {
		b[10] = '1'
	} else {
		b[10] = '0'
	}
	return string(b)
}

// TestWithoutChain: with HashFreeSpace, a manifest of an older rpi-image (no chain
// values) streams on the sequential whole-image hash, and a flipped byte is still named
// by its chunk.
func TestWithoutChain(t *testing.T) {
	raw := synthImage(t, 16<<20+8192)
	pm, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	if !pm.HasChain() {
		t.Fatal("pack wrote no chain values")
	}
	m := withChunks(pm, func(m *manifest.Manifest) {
		for i := range m.Chunks {
			m.Chunks[i].Chain = ""
		}
	})
	target := oldTarget(t, len(raw))
	fl, err := flash(t, m, target, serve(t, plain(zst)), Options{Decoders: 2, HashFreeSpace: true})
	if err != nil {
		t.Fatal(err)
	}
	checkData(t, m, raw, target)
	if st := fl.Stats(); st.SHA256 != m.SHA256 || st.Streamed != m.Size {
		t.Errorf("stats %+v; want sha %s, streamed %d", st, m.SHA256, m.Size)
	}

	const bad = 7
	zst[m.Chunks[bad].Frame+m.Chunks[bad].FrameSize/2] ^= 0x40
	target = oldTarget(t, len(raw))
	_, err = flash(t, m, target, serve(t, plain(zst)), Options{HashFreeSpace: true})
	var ce *readback.ChunkError
	if !errors.As(err, &ce) || ce.Chunk != bad {
		t.Fatalf("err = %v, want a ChunkError for chunk %d", err, bad)
	}
	checkUnbootable(t, target)
}

// TestWrongChainNamesChunk: with HashFreeSpace, a chain value that the stream does not
// reproduce fails at that chunk; a wrong whole-image SHA256 fails at the last chunk.
// Nothing boots.
func TestWrongChainNamesChunk(t *testing.T) {
	raw := synthImage(t, 16<<20)
	pm, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	last := len(pm.Chunks) - 1
	for _, tc := range []struct {
		name  string
		edit  func(m *manifest.Manifest)
		chunk int
		want  string
	}{
		{"chunk 0", func(m *manifest.Manifest) { m.Chunks[0].Chain = flipHex(m.Chunks[0].Chain) }, 0, "sha256 chain"},
		{"chunk 11", func(m *manifest.Manifest) { m.Chunks[11].Chain = flipHex(m.Chunks[11].Chain) }, 11, "sha256 chain"},
		{"whole image", func(m *manifest.Manifest) { m.SHA256 = flipHex(m.SHA256) }, last, "image sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := withChunks(pm, tc.edit)
			target := oldTarget(t, len(raw))
			_, err := flash(t, m, target, serve(t, plain(zst)), Options{HashFreeSpace: true})
			var ce *readback.ChunkError
			if !errors.As(err, &ce) || ce.Chunk != tc.chunk || !errors.Is(err, zstimg.ErrMismatch) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a %q mismatch at chunk %d", err, tc.want, tc.chunk)
			}
			checkUnbootable(t, target)
		})
	}
}
