package pack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/rpi-deploy/rpi-deploy/image-tools/bmap"
	"github.com/rpi-deploy/rpi-deploy/image-tools/imgfile"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/zstimg"
)

// rawImage writes a raw image of n bytes with random, text and zero regions and returns
// its bytes. Its MBR holds one partition of a type no file system reader knows (0xda,
// "non-FS data") from 1 MiB to the end: all of the image is data.
func rawImage(t *testing.T, path string, n int) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := 0; i < n/3; i++ {
		b[i] = byte(rng.Uint32())
	}
	clear(b[446:510])
	b[446+4] = 0xda
	binary.LittleEndian.PutUint32(b[446+8:], 2048)
	binary.LittleEndian.PutUint32(b[446+12:], uint32((n-1<<20)/512))
	b[510], b[511] = 0x55, 0xaa
	text := []byte("the quick brown fox jumps over the lazy raspberry pi\n")
	for i := n / 2; i < n-n/8; i += len(text) {
		copy(b[i:min(i+len(text), n-n/8)], text)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func compress(t *testing.T, tool string, args []string, in, out string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s not installed (scripts/deps/image.apt): %v", tool, err)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(tool, append(args, in)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = f, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v: %s", tool, err, stderr.Bytes())
	}
}

func TestPackFormats(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "master.img")
	data := rawImage(t, raw, 9<<20+4096*3+100) // not a multiple of the chunk size, nor of 4096
	want := sha256.Sum256(data)
	compress(t, "xz", []string{"-T0", "-1", "-c"}, raw, raw+".xz")
	compress(t, "gzip", []string{"-1", "-c"}, raw, raw+".gz")
	compress(t, "zstd", []string{"-q", "-c"}, raw, raw+".zst")

	for _, in := range []string{raw, raw + ".xz", raw + ".gz", raw + ".zst"} {
		t.Run(filepath.Base(in), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "kxp2-test.img.zst")
			var prog bytes.Buffer
			m, err := Pack(context.Background(), Options{Input: in, Output: out, ChunkSize: 1 << 20, Progress: &prog})
			if err != nil {
				t.Fatal(err)
			}
			if m.SHA256 != hex.EncodeToString(want[:]) || m.Size != int64(len(data)) {
				t.Errorf("manifest sha256 %s size %d, want %x %d", m.SHA256, m.Size, want, len(data))
			}
			if !strings.Contains(prog.String(), "packing kxp2-test: done") {
				t.Errorf("progress output %q lacks the final line", prog.String())
			}
			loaded, err := manifest.Load(manifest.PathFor(out))
			if err != nil {
				t.Fatal(err)
			}
			if loaded.Name != "kxp2-test" || len(loaded.Chunks) != 10 {
				t.Errorf("manifest name %q, %d chunks; want kxp2-test, 10", loaded.Name, len(loaded.Chunks))
			}
			if in == raw {
				// The chain values are the states of a sequential SHA-256 of the image
				// at each chunk's end, computed here by a separate implementation.
				for i, st := range chainStates(data, loaded.ChunkSize) {
					if got := loaded.Chunks[i].Chain; got != st {
						t.Errorf("chunk %d: chain %s, want %s", i, got, st)
					}
				}
				if last := loaded.Chunks[len(loaded.Chunks)-1].Chain; last != "" {
					t.Errorf("last chunk has chain %q, want none", last)
				}
			}
			// The real zstd tool decodes the frame sequence as one stream.
			got, err := exec.Command("zstd", "-dc", out).Output()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("zstd -dc of the packed image differs from the input")
			}
			// Every frame decodes on its own to its chunk.
			packed, _ := os.ReadFile(out)
			dec, _ := zstd.NewReader(nil)
			defer dec.Close()
			for i, c := range loaded.Chunks {
				b, err := dec.DecodeAll(packed[c.Frame:c.Frame+c.FrameSize], nil)
				r := loaded.ChunkRange(i)
				if err != nil || !bytes.Equal(b, data[r.Offset:r.End()]) {
					t.Fatalf("frame %d alone: err %v, equal %v", i, err, bytes.Equal(b, data[r.Offset:r.End()]))
				}
			}
			f, _ := os.Open(out)
			defer f.Close()
			if err := zstimg.Verify(context.Background(), f, int64(len(packed)), loaded, zstimg.VerifyOptions{}); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(filepath.Dir(out))
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if diff := slices.Compare(names, []string{"kxp2-test.img.zst", "kxp2-test.manifest.json"}); diff != 0 {
				t.Errorf("output directory holds %q, want only the image and its manifest", names)
			}
		})
	}
}

// TestPackFreeSpaceIsZeros pins that bytes outside the data ranges are never read and
// go into the stream as zeros, with DataSHA256 over the data bytes only.
func TestPackFreeSpaceIsZeros(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "used.img")
	data := rawImage(t, raw, 4<<20)
	bm := filepath.Join(dir, "used.bmap")
	// Map blocks 0–15 and 300–301 only (bmaptool's block numbers, 4096 bytes each).
	writeBmap(t, bm, raw, int64(len(data)), []manifest.Range{{Offset: 0, Length: 16 * 4096}, {Offset: 300 * 4096, Length: 2 * 4096}})
	out := filepath.Join(dir, "used.img.zst")
	m, err := Pack(context.Background(), Options{Input: raw, Output: out, ChunkSize: 1 << 20, Bmap: bm})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, len(data))
	copy(want[:16*4096], data)
	copy(want[300*4096:302*4096], data[300*4096:])
	sum := sha256.Sum256(want)
	if m.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("sha256 %s, want that of the image with free space zeroed %x", m.SHA256, sum)
	}
	if m.DataBytes != 18*4096 || len(m.Ranges) != 2 {
		t.Errorf("data %d bytes in %d ranges, want %d in 2", m.DataBytes, len(m.Ranges), 18*4096)
	}
	d0 := sha256.Sum256(data[:16*4096])
	if m.Chunks[0].DataSHA256 != hex.EncodeToString(d0[:]) || m.Chunks[2].DataSHA256 != "" {
		t.Errorf("data sha256 of chunk 0 %q (want %x), chunk 2 %q (want empty)", m.Chunks[0].DataSHA256, d0, m.Chunks[2].DataSHA256)
	}
	if m.CompressedSize > 200<<10 {
		t.Errorf("packed %d bytes: free space of random bytes was not zeroed", m.CompressedSize)
	}
}

func TestPackBadInput(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "m.img")
	rawImage(t, raw, 3<<20)
	compress(t, "xz", []string{"-T1", "-0", "-c"}, raw, raw+".xz")
	compress(t, "gzip", []string{"-1", "-c"}, raw, raw+".gz")
	compress(t, "zstd", []string{"-q", "-c"}, raw, raw+".zst")
	truncate := func(name string, keep float64) string {
		b, _ := os.ReadFile(name)
		p := filepath.Join(dir, "cut-"+filepath.Base(name))
		os.WriteFile(p, b[:int(float64(len(b))*keep)], 0o644)
		return p
	}
	empty := filepath.Join(dir, "empty.img")
	os.WriteFile(empty, nil, 0o644)
	existing := filepath.Join(dir, "out", "taken.img.zst")
	os.MkdirAll(filepath.Dir(existing), 0o755)
	os.WriteFile(existing, []byte("old"), 0o644)

	for _, tc := range []struct {
		name   string
		opt    Options
		want   string
		wantIs error
	}{
		{"truncated xz", Options{Input: truncate(raw+".xz", 0.6)}, "Unexpected end of input", nil},
		{"truncated gzip", Options{Input: truncate(raw+".gz", 0.6)}, "truncated", nil},
		{"truncated zstd", Options{Input: truncate(raw+".zst", 0.6)}, "truncated", nil},
		{"empty", Options{Input: empty}, "empty", nil},
		{"missing", Options{Input: filepath.Join(dir, "nope.img")}, "no such file", nil},
		{"bad name", Options{Input: raw, Output: filepath.Join(dir, "out", "Bad Name.img.zst")}, "image name", nil},
		{"bad suffix", Options{Input: raw, Output: filepath.Join(dir, "out", "x.zst")}, "ending in .img.zst", nil},
		{"bad chunk", Options{Input: raw, ChunkSize: 1000}, "chunk size", nil},
		{"bad level", Options{Input: raw, Level: 40}, "level", nil},
		{"exists", Options{Input: raw, Output: existing}, "exists", ErrExists},
		{"no output directory", Options{Input: raw, Output: filepath.Join(dir, "nope", "x.img.zst")}, "output directory", nil},
		{"bmap for another image", Options{Input: raw, Bmap: writeBmapFor(t, dir, 8<<20)}, "is for an image of", nil},
		{"bmap of other content", Options{Input: raw, Bmap: writeBmapFor(t, dir, 3<<20)}, "does not match the bmap", bmap.ErrChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opt.Output == "" {
				tc.opt.Output = filepath.Join(dir, "out", "fresh.img.zst")
			}
			_, err := Pack(context.Background(), tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one mentioning %q", err, tc.want)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("err %v is not %v", err, tc.wantIs)
			}
			entries, _ := os.ReadDir(filepath.Join(dir, "out"))
			if len(entries) != 1 || entries[0].Name() != "taken.img.zst" {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("output directory holds %q after the error, want only taken.img.zst", names)
			}
			if b, _ := os.ReadFile(existing); string(b) != "old" {
				t.Error("existing output was changed")
			}
		})
	}
}

func writeBmap(t *testing.T, path, image string, size int64, ranges []manifest.Range) {
	t.Helper()
	f, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b bytes.Buffer
	if err := bmap.Write(&b, f, size, ranges); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeBmapFor writes a bmap of an all-zero image of size bytes.
func writeBmapFor(t *testing.T, dir string, size int64) string {
	img := filepath.Join(dir, fmt.Sprintf("other-%d.img", size))
	if err := os.WriteFile(img, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, fmt.Sprintf("other-%d.bmap", size))
	writeBmap(t, p, img, size, []manifest.Range{{Offset: 0, Length: 4096}})
	return p
}

// TestPackCancelled: an interrupted pack (Ctrl-C) leaves nothing behind, not even the
// decompressed copy of a compressed input.
func TestPackCancelled(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "in", "m.img")
	os.Mkdir(filepath.Dir(raw), 0o755)
	rawImage(t, raw, 16<<20)
	compress(t, "gzip", []string{"-1", "-c"}, raw, raw+".gz")
	for _, in := range []string{raw, raw + ".gz"} {
		ctx, cancel := context.WithCancel(context.Background())
		var prog cancelAfter
		prog.cancel = cancel
		out := filepath.Join(dir, "out", "c.img.zst")
		os.MkdirAll(filepath.Dir(out), 0o755)
		_, err := Pack(ctx, Options{Input: in, Output: out, ChunkSize: 1 << 20, Progress: &prog})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err %v, want context.Canceled", filepath.Base(in), err)
		}
		if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
			t.Errorf("%s: %d files left behind, e.g. %s", filepath.Base(in), len(ents), ents[0].Name())
		}
	}
}

// cancelAfter cancels on the first progress line: the job has started.
type cancelAfter struct {
	cancel context.CancelFunc
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.cancel()
	return len(p), nil
}

// chainStates is FIPS 180-4 SHA-256 without padding, written out here (not
// crypto/sha256), returning the hex state after every whole chunk of b but the last.
func chainStates(b []byte, chunk int64) []string {
	k := [64]uint32{
		0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
		0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
		0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
		0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
		0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
		0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
		0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
		0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
	}
	h := [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}
	rotr := func(x uint32, n uint) uint32 { return x>>n | x<<(32-n) }
	var out []string
	var w [64]uint32
	for end := chunk; end < int64(len(b)); end += chunk {
		for off := end - chunk; off < end; off += 64 {
			for i := 0; i < 16; i++ {
				w[i] = binary.BigEndian.Uint32(b[off+int64(4*i):])
			}
			for i := 16; i < 64; i++ {
				s0 := rotr(w[i-15], 7) ^ rotr(w[i-15], 18) ^ w[i-15]>>3
				s1 := rotr(w[i-2], 17) ^ rotr(w[i-2], 19) ^ w[i-2]>>10
				w[i] = w[i-16] + s0 + w[i-7] + s1
			}
			a, bb, c, d, e, f, g, hh := h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]
			for i := 0; i < 64; i++ {
				t1 := hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + (e&f ^ ^e&g) + k[i] + w[i]
				t2 := (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + (a&bb ^ a&c ^ bb&c)
				hh, g, f, e, d, c, bb, a = g, f, e, d+t1, c, bb, a, t1+t2
			}
			h[0], h[1], h[2], h[3] = h[0]+a, h[1]+bb, h[2]+c, h[3]+d
			h[4], h[5], h[6], h[7] = h[4]+e, h[5]+f, h[6]+g, h[7]+hh
		}
		var st []byte
		for _, x := range h {
			st = binary.BigEndian.AppendUint32(st, x)
		}
		out = append(out, hex.EncodeToString(st))
	}
	return out
}

// TestPackRefusesMisnamedAndTableless pins two findings of issue 13: a file named .xz
// that is not xz was packed as a raw 7-byte image, and an input without a partition
// table was only a warning. The compressed inputs are made by the real xz, gzip and
// zstd programs.
func TestPackRefusesMisnamedAndTableless(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "m.img")
	rawImage(t, raw, 3<<20)
	compress(t, "gzip", []string{"-1", "-c"}, raw, filepath.Join(dir, "gzip-named.img.xz"))
	compress(t, "xz", []string{"-T1", "-0", "-c"}, raw, filepath.Join(dir, "xz-named.img.zst"))
	compress(t, "zstd", []string{"-q", "-c"}, raw, filepath.Join(dir, "zstd-named.img.gz"))
	if err := os.WriteFile(filepath.Join(dir, "seven.img.xz"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A bare file system-like blob: random bytes, no 0x55AA signature, compressed by xz.
	bare := filepath.Join(dir, "bare.img")
	blob := make([]byte, 2<<20)
	rand.NewChaCha8([32]byte{9}).Read(blob)
	blob[510], blob[511] = 0, 0
	if err := os.WriteFile(bare, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	compress(t, "xz", []string{"-T1", "-0", "-c"}, bare, bare+".xz")

	for _, tc := range []struct {
		name, input string
		raw         bool
		wantIs      error
	}{
		{"7 bytes named xz", "seven.img.xz", false, imgfile.ErrNameMismatch},
		{"7 bytes named xz with --raw", "seven.img.xz", true, imgfile.ErrNameMismatch},
		{"gzip named xz", "gzip-named.img.xz", false, imgfile.ErrNameMismatch},
		{"xz named zst", "xz-named.img.zst", false, imgfile.ErrNameMismatch},
		{"zstd named gz", "zstd-named.img.gz", false, imgfile.ErrNameMismatch},
		{"no partition table", "bare.img", false, ErrNoTable},
		{"no partition table, xz", "bare.img.xz", false, ErrNoTable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			in := filepath.Join(dir, tc.input)
			_, err := Pack(context.Background(), Options{Input: in, Output: filepath.Join(out, "x.img.zst"), Raw: tc.raw})
			if !errors.Is(err, tc.wantIs) {
				t.Fatalf("err %v, want %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.input) {
				t.Errorf("err %q does not name the input %q", err, tc.input)
			}
			if ents, _ := os.ReadDir(out); len(ents) != 0 {
				t.Errorf("output directory holds %s after the error", ents[0].Name())
			}
		})
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".rpi-image-raw-*"))
	if len(leftovers) != 0 {
		t.Errorf("decompressed copies left behind: %q", leftovers)
	}

	// --raw packs a table-less input whole, and the name check does not refuse what
	// matches: the real xz output named .xz.
	m, err := Pack(context.Background(), Options{Input: bare + ".xz", Output: filepath.Join(t.TempDir(), "bare.img.zst"), Raw: true})
	if err != nil {
		t.Fatalf("pack --raw: %v", err)
	}
	want := sha256.Sum256(blob)
	if m.SHA256 != hex.EncodeToString(want[:]) || m.Size != int64(len(blob)) {
		t.Errorf("packed sha256 %s size %d, want %x size %d", m.SHA256, m.Size, want, len(blob))
	}
}

// TestPackStageErrors: the writer, the compressors and the whole-image hash run on
// separate goroutines; an error in any stage stops all of them and is the error
// reported (not a missing hash of a stage that was cut short). The failures are real:
// writes to /dev/full (ENOSPC, as on a full disk) and an input file that shrinks after
// its layout was read.
func TestPackStageErrors(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "m.img")
	rawImage(t, raw, 8<<20)
	prepare := func(t *testing.T) (*imgfile.Image, *manifest.Manifest, Options, *zstd.Encoder) {
		opt := Options{Input: raw, Output: filepath.Join(dir, "x.img.zst"), ChunkSize: 64 << 10, Concurrency: 4}
		if err := opt.setDefaults(); err != nil {
			t.Fatal(err)
		}
		im, err := imgfile.Open(context.Background(), raw, imgfile.Options{NoManifest: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { im.Close() })
		m, err := describe(im, opt)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(opt.Concurrency))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { enc.Close() })
		return im, m, opt, enc
	}

	t.Run("output full", func(t *testing.T) {
		im, m, opt, enc := prepare(t)
		full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer full.Close()
		err = encodeChunks(context.Background(), im, m, opt, enc, full)
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "write") {
			t.Fatalf("err %v, want the write's ENOSPC", err)
		}
	})
	t.Run("input shrinks", func(t *testing.T) {
		im, m, opt, enc := prepare(t)
		if err := os.Truncate(raw, 5<<20); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err := encodeChunks(context.Background(), im, m, opt, enc, &out)
		if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), fmt.Sprintf("read input at %d", 5<<20)) {
			t.Fatalf("err %v, want an unexpected EOF reading at %d", err, 5<<20)
		}
		if m.SHA256 != "" || m.CompressedSHA256 != "" {
			t.Errorf("a failed pack has hashes: sha256 %q, compressed %q", m.SHA256, m.CompressedSHA256)
		}
	})
}

// TestPackOddLength pins the hashes of a last chunk whose length is not a multiple of
// 64 (a --raw input of any size): the whole-image hash and the chunk's own hash take
// its whole blocks together and finish the tail each on its own. Every hash is checked
// against crypto/sha256 of the input's bytes, and the packed file with zstimg.Verify
// (chain values included) and the zstd program.
func TestPackOddLength(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{3*4096 + 1000 + 37, 4096 + 63, 2 * 4096, 4096 + 1} {
		blob := make([]byte, n)
		for i := range blob {
			blob[i] = byte(rng.Uint32() % 7) // compressible, not zero
		}
		dir := t.TempDir()
		in := filepath.Join(dir, "odd.img")
		if err := os.WriteFile(in, blob, 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "odd.img.zst")
		m, err := Pack(context.Background(), Options{Input: in, Output: out, Raw: true, ChunkSize: 4096})
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if want := sha256.Sum256(blob); m.SHA256 != hex.EncodeToString(want[:]) {
			t.Errorf("%d bytes: sha256 %s, want %x", n, m.SHA256, want)
		}
		for i, c := range m.Chunks {
			cr := m.ChunkRange(i)
			want := sha256.Sum256(blob[cr.Offset:cr.End()])
			if c.SHA256 != hex.EncodeToString(want[:]) || c.DataSHA256 != c.SHA256 {
				t.Errorf("%d bytes, chunk %d: sha256 %s data_sha256 %s, want %x for both", n, i, c.SHA256, c.DataSHA256, want)
			}
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		err = zstimg.Verify(context.Background(), f, m.CompressedSize, m, zstimg.VerifyOptions{})
		f.Close()
		if err != nil {
			t.Errorf("%d bytes: verify: %v", n, err)
		}
		got, err := exec.Command("zstd", "-dc", out).Output()
		if err != nil || !bytes.Equal(got, blob) {
			t.Errorf("%d bytes: zstd -dc gave %d bytes (%v), not the input", n, len(got), err)
		}
	}
}

// TestPackCompressedSHA256 pins the packed file's hash, which the whole-image goroutine
// computes beside the image's and each chunk's (sha256x2.BlocksAnd): frames of every
// shape follow each other — longer than their chunk by more than a 64-byte block (4 MiB
// of random bytes, stored raw in 32 blocks with their headers), shorter than one block
// (free-space chunks, zeros), and anything between — and compressed_sha256 must be
// crypto/sha256 of the file as written, at three chunk sizes.
func TestPackCompressedSHA256(t *testing.T) {
	for _, cs := range []int64{4096, 64 << 10, 4 << 20} {
		t.Run(fmt.Sprint(cs), func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "m.img")
			data := rawImage(t, in, 13<<20+4096) // random up to 4.3 MiB
			clear(data[5<<20 : 5<<20+300<<10])   // zeros inside the data
			if err := os.WriteFile(in, data, 0o644); err != nil {
				t.Fatal(err)
			}
			// Free space (no data ranges) from 8 to 12 MiB.
			bm := filepath.Join(dir, "m.bmap")
			writeBmap(t, bm, in, int64(len(data)), []manifest.Range{{Offset: 0, Length: 8 << 20}, {Offset: 12 << 20, Length: int64(len(data)) - 12<<20}})
			out := filepath.Join(dir, "m.img.zst")
			m, err := Pack(context.Background(), Options{Input: in, Output: out, ChunkSize: cs, Bmap: bm})
			if err != nil {
				t.Fatal(err)
			}
			packed, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if want := sha256.Sum256(packed); m.CompressedSHA256 != hex.EncodeToString(want[:]) || m.CompressedSize != int64(len(packed)) {
				t.Errorf("compressed_sha256 %s (%d bytes), want %x (%d)", m.CompressedSHA256, m.CompressedSize, want, len(packed))
			}
			var longer, tiny, free bool
			for i, c := range m.Chunks {
				longer = longer || c.FrameSize > m.ChunkRange(i).Length
				tiny = tiny || c.FrameSize < 64
				free = free || len(m.DataIn(m.ChunkRange(i))) == 0
			}
			if cs == 4<<20 {
				longer = m.Chunks[0].FrameSize >= cs+64
				tiny = true // a 4 MiB frame of zeros takes more than 64 bytes
			}
			if !longer || !tiny || !free {
				t.Errorf("frames longer than their chunk %v, shorter than a block %v, chunks without data %v: want all", longer, tiny, free)
			}
		})
	}
}
