package flash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
	"github.com/rpi-deploy/rpi-deploy/image-tools/zstimg"
)

// fsImage is a Raspberry Pi OS-shaped image (FAT bootfs, ext4 rootfs, much free space)
// packed in 1 MiB chunks: raw bytes, manifest, compressed bytes.
type fsImage struct {
	raw []byte
	m   *manifest.Manifest
	zst []byte
}

var (
	fsImageOnce sync.Once
	fsImageVal  fsImage
	fsImageErr  error
)

func freeSpaceImage(t *testing.T) fsImage {
	t.Helper()
	fsImageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flash-dataproof-")
		if err != nil {
			fsImageErr = err
			return
		}
		defer os.RemoveAll(dir)
		in := filepath.Join(dir, "fs.img")
		if _, fsImageErr = testimg.Build(in, testimg.Options{Kind: testimg.BookwormFirstrun,
			BootSize: testimg.MinBootSize, RootData: 6 << 20, RootFree: 24 << 20, Seed: 18}); fsImageErr != nil {
			return
		}
		out := filepath.Join(dir, "fs.img.zst")
		var v fsImage
		if v.m, fsImageErr = pack.Pack(context.Background(), pack.Options{Input: in, Output: out, ChunkSize: 1 << 20}); fsImageErr != nil {
			return
		}
		if v.raw, fsImageErr = os.ReadFile(in); fsImageErr != nil {
			return
		}
		v.zst, fsImageErr = os.ReadFile(out)
		fsImageVal = v
	})
	if fsImageErr != nil {
		t.Fatal(fsImageErr)
	}
	v := fsImageVal
	v.raw, v.zst = bytes.Clone(v.raw), bytes.Clone(v.zst)
	return v
}

// reframe replaces chunk i's frame with the zstd CLI's compression of chunk (the
// chunk's raw bytes, edited), and returns the new compressed file and a manifest whose
// frame offsets and compressed size follow it; every hash of the raw image stays.
func reframe(t *testing.T, img fsImage, i int, chunk []byte) (*manifest.Manifest, []byte) {
	t.Helper()
	in := filepath.Join(t.TempDir(), "chunk")
	if err := os.WriteFile(in, chunk, 0o644); err != nil {
		t.Fatal(err)
	}
	frame, err := exec.Command("zstd", "-q", "-c", "-3", in).Output()
	if err != nil {
		t.Fatalf("zstd: %v", err)
	}
	c := img.m.Chunks[i]
	zst := slices.Concat(img.zst[:c.Frame], frame, img.zst[c.Frame+c.FrameSize:])
	m := withChunks(img.m, func(m *manifest.Manifest) {
		shift := int64(len(frame)) - c.FrameSize
		m.Chunks[i].FrameSize = int64(len(frame))
		for j := i + 1; j < len(m.Chunks); j++ {
			m.Chunks[j].Frame += shift
		}
		m.CompressedSize = int64(len(zst))
		sum := sha256.Sum256(zst)
		m.CompressedSHA256 = hex.EncodeToString(sum[:])
	})
	return m, zst
}

// freeByte returns a chunk index and an offset in the image of a free-space byte in
// it: in a chunk with data ranges too when mixed, else in a chunk without any.
func freeByte(t *testing.T, m *manifest.Manifest, mixed bool) (int, int64) {
	t.Helper()
	for i := 1; i < len(m.Chunks); i++ {
		cr := m.ChunkRange(i)
		rs := m.DataIn(cr)
		switch {
		case !mixed && len(rs) == 0:
			return i, cr.Offset + cr.Length/2
		case mixed && len(rs) > 0 && rs[0].Offset > cr.Offset:
			return i, rs[0].Offset - 1
		case mixed && len(rs) > 0 && rs[len(rs)-1].End() < cr.End():
			return i, cr.End() - 1
		}
	}
	t.Fatalf("no chunk with free space (mixed=%v) in the test image", mixed)
	return 0, 0
}

// lastFree is the last chunk without data whose frame repeats the frame of an earlier
// chunk without data (-1: none).
func lastFree(t *testing.T, m *manifest.Manifest, zst []byte) int {
	t.Helper()
	seen := map[string]bool{}
	last := -1
	for i, c := range m.Chunks {
		if len(m.DataIn(m.ChunkRange(i))) > 0 {
			continue
		}
		f := string(zst[c.Frame : c.Frame+c.FrameSize])
		if seen[f] {
			last = i
		}
		seen[f] = true
	}
	return last
}

// TestDataProof pins what the default proof (data ranges against data_sha256, zeros
// elsewhere) accepts and refuses, on a real FAT+ext4 image with much free space: a
// good stream flashes and reports the manifest's image SHA256; a frame (made by the
// zstd CLI) whose free space decodes to a non-zero byte, whose data differs by one
// byte, or a manifest whose data_sha256 is wrong fails at that chunk before anything of
// it is written, and the card stays unbootable. The stream of free space as non-zero
// bytes is refused under both proofs.
func TestDataProof(t *testing.T) {
	img := freeSpaceImage(t)
	if img.m.DataBytes*2 > img.m.Size {
		t.Fatalf("test image has %d data bytes of %d: not much free space", img.m.DataBytes, img.m.Size)
	}
	// Chunks with data whose successor has data too are fetched and hashed in pairs
	// (where SHA-256 has two lanes): each pair counts 2 in Stats.PairedChunks.
	var pairs int64
	for i := 0; i+1 < len(img.m.Chunks); i++ {
		if img.m.Chunks[i].DataSHA256 != "" && img.m.Chunks[i+1].DataSHA256 != "" {
			pairs++
			i++
		}
	}
	if pairs == 0 {
		t.Fatal("the test image has no two neighbouring chunks with data")
	}
	for _, paired := range []bool{true, false} {
		t.Run(fmt.Sprintf("good/paired=%v", paired), func(t *testing.T) {
			defer func(old bool) { pairFrames = old }(pairFrames)
			pairFrames = paired
			target := oldTarget(t, len(img.raw))
			fl, err := flash(t, img.m, target, serve(t, plain(img.zst)), Options{})
			if err != nil {
				t.Fatal(err)
			}
			checkData(t, img.m, img.raw, target)
			st := fl.Stats()
			if st.SHA256 != img.m.SHA256 || st.Streamed != img.m.Size || st.ChunksMatch == 0 {
				t.Errorf("stats %+v; want sha %s, streamed %d, chunks matched", st, img.m.SHA256, img.m.Size)
			}
			if want := map[bool]int64{true: 2 * pairs, false: 0}[paired]; st.PairedChunks != want {
				t.Errorf("%d chunks hashed in pairs, want %d", st.PairedChunks, want)
			}
			if st.Buffers < 1 || st.Buffers > fl.opt.Buffers {
				t.Errorf("%d raw buffers allocated, want 1..%d", st.Buffers, fl.opt.Buffers)
			}
		})
	}

	type tc struct {
		name string
		m    *manifest.Manifest
		zst  []byte
		bad  int
		want string
		both bool // HashFreeSpace refuses it too (the image differs, not only data_sha256)
	}
	var cases []tc
	for _, mixed := range []bool{true, false} {
		i, off := freeByte(t, img.m, mixed)
		cr := img.m.ChunkRange(i)
		chunk := bytes.Clone(img.raw[cr.Offset:cr.End()])
		chunk[off-cr.Offset] = 0x5a
		m, zst := reframe(t, img, i, chunk)
		name := "free byte in a chunk without data"
		if mixed {
			name = "free byte in a chunk with data"
		}
		cases = append(cases, tc{name, m, zst, i, "free-space byte", true})
	}
	// The last chunk without data, after frames of free space that were decoded and
	// proven zero (and are not decoded again when they repeat): a frame that differs
	// from them is decoded and refused all the same.
	if j := lastFree(t, img.m, img.zst); j < 0 {
		t.Fatal("the test image has no repeated frame of free space")
	} else {
		cr := img.m.ChunkRange(j)
		chunk := bytes.Clone(img.raw[cr.Offset:cr.End()])
		chunk[cr.Length/3] = 0x5a
		m, zst := reframe(t, img, j, chunk)
		cases = append(cases, tc{"free byte in a chunk without data after repeated free frames", m, zst, j, "free-space byte", true})
	}
	i, _ := freeByte(t, img.m, true)
	cr := img.m.ChunkRange(i)
	r := img.m.DataIn(cr)[0]
	chunk := bytes.Clone(img.raw[cr.Offset:cr.End()])
	chunk[r.Offset-cr.Offset+r.Length/2] ^= 0x01
	m, zst := reframe(t, img, i, chunk)
	cases = append(cases, tc{"data byte", m, zst, i, "data sha256", true})
	cases = append(cases, tc{"wrong data_sha256", withChunks(img.m, func(m *manifest.Manifest) {
		m.Chunks[i].DataSHA256 = flipHex(m.Chunks[i].DataSHA256)
	}), img.zst, i, "data sha256", false})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := oldTarget(t, len(img.raw))
			_, err := flash(t, c.m, target, serve(t, plain(c.zst)), Options{})
			var ce *readback.ChunkError
			if !errors.As(err, &ce) || ce.Chunk != c.bad || !errors.Is(err, zstimg.ErrMismatch) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want a %q mismatch at chunk %d", err, c.want, c.bad)
			}
			checkUnbootable(t, target)
			got, err := os.ReadFile(target)
			if err != nil {
				t.Fatal(err)
			}
			bad := c.m.ChunkRange(c.bad)
			if !bytes.Equal(got[bad.Offset:bad.End()], bytes.Repeat([]byte("OLD!"), int(bad.Length/4))) {
				t.Errorf("chunk %d was written although it failed its proof", c.bad)
			}
			if !c.both {
				return
			}
			target = oldTarget(t, len(img.raw))
			_, err = flash(t, c.m, target, serve(t, plain(c.zst)), Options{HashFreeSpace: true})
			if !errors.As(err, &ce) || ce.Chunk != c.bad {
				t.Fatalf("HashFreeSpace: err = %v, want a mismatch at chunk %d", err, c.bad)
			}
			checkUnbootable(t, target)
		})
	}
}

// TestZeroFrames pins the shortcut for free-space chunks: a frame that is byte for
// byte one that already decoded to zeros is not decoded again (Stats.ZeroFrames), and
// any other frame of a chunk without data is decoded and checked as before: the last
// free-space chunk (after others whose frame was seen) compressed by the zstd CLI —
// another frame — is taken when it decodes to zeros and refused, named, when one of its
// bytes is not zero. One decoder, so that the frames before it are seen first.
func TestZeroFrames(t *testing.T) {
	img := freeSpaceImage(t)
	var free []int
	for i := 1; i < len(img.m.Chunks); i++ {
		if len(img.m.DataIn(img.m.ChunkRange(i))) == 0 {
			free = append(free, i)
		}
	}
	if len(free) < 3 {
		t.Fatalf("test image has %d free-space chunks, want several", len(free))
	}
	t.Run("packed", func(t *testing.T) {
		target := oldTarget(t, len(img.raw))
		fl, err := flash(t, img.m, target, serve(t, plain(img.zst)), Options{Decoders: 1})
		if err != nil {
			t.Fatal(err)
		}
		if st := fl.Stats(); st.ZeroFrames < 1 || st.ZeroFrames > int64(len(free)-1) {
			t.Errorf("%d free-space chunks proven by a known frame, want 1..%d", st.ZeroFrames, len(free)-1)
		}
		checkData(t, img.m, img.raw, target)
	})
	last := free[len(free)-1]
	cr := img.m.ChunkRange(last)
	for _, tc := range []struct {
		name string
		at   int64 // byte of the chunk set to 0x5a; -1: none
	}{{"zeros by the zstd CLI", -1}, {"one byte not zero", cr.Length / 3}} {
		t.Run(tc.name, func(t *testing.T) {
			chunk := make([]byte, cr.Length)
			if tc.at >= 0 {
				chunk[tc.at] = 0x5a
			}
			m, zst := reframe(t, img, last, chunk)
			if bytes.Equal(zst[m.Chunks[last].Frame:][:m.Chunks[last].FrameSize], img.zst[img.m.Chunks[free[0]].Frame:][:img.m.Chunks[free[0]].FrameSize]) {
				t.Fatal("the zstd CLI made the packer's frame: the case tests nothing")
			}
			target := oldTarget(t, len(img.raw))
			fl, err := flash(t, m, target, serve(t, plain(zst)), Options{Decoders: 1})
			if tc.at < 0 {
				if err != nil {
					t.Fatal(err)
				}
				if st := fl.Stats(); st.ZeroFrames < 1 {
					t.Errorf("no free-space chunk proven by a known frame")
				}
				checkData(t, m, img.raw, target)
				return
			}
			var ce *readback.ChunkError
			if !errors.As(err, &ce) || ce.Chunk != last || !strings.Contains(err.Error(), "free-space byte") {
				t.Fatalf("err = %v, want a free-space byte of chunk %d", err, last)
			}
			checkUnbootable(t, target)
		})
	}
}

// TestPairedDataProof pins the stream's paired hashing: a decoder given two chunks
// with data (work.next) hashes both chunks' data in one pass (sha256x2.SumPair), and
// each chunk is still judged against its own data_sha256 — a wrong value names that
// chunk whether it is the first or the second of the pair, and the other passes.
func TestPairedDataProof(t *testing.T) {
	img := freeSpaceImage(t)
	a := -1 // two neighbouring chunks with data, a and a+1
	for i := 1; i+1 < len(img.m.Chunks); i++ {
		if img.m.Chunks[i].DataSHA256 != "" && img.m.Chunks[i+1].DataSHA256 != "" {
			a = i
			break
		}
	}
	if a < 0 {
		t.Fatal("the test image has no two neighbouring chunks with data")
	}
	for _, tc := range []struct {
		name string
		bad  []int
	}{{"both good", nil}, {"first wrong", []int{a}}, {"second wrong", []int{a + 1}}, {"both wrong", []int{a, a + 1}}} {
		t.Run(tc.name, func(t *testing.T) {
			m := withChunks(img.m, func(m *manifest.Manifest) {
				for _, i := range tc.bad {
					m.Chunks[i].DataSHA256 = flipHex(m.Chunks[i].DataSHA256)
				}
			})
			fl, err := Open(oldTarget(t, len(img.raw)), m, Options{Decoders: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer fl.Close()
			p := fl.newPipeline()
			dec, err := newDecoder(m, 2)
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			var ws []*work
			for _, i := range []int{a, a + 1} {
				c := m.Chunks[i]
				comp, err := p.compBufs.get(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				raw, err := fl.rawBufs.get(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				ws = append(ws, &work{i: i, comp: append(comp, img.zst[c.Frame:c.Frame+c.FrameSize]...), raw: raw})
			}
			ws[0].next = ws[1]
			p.decCh <- ws[0]
			close(p.decCh)
			if err := p.decodeLoop(context.Background(), dec); err != nil {
				t.Fatal(err)
			}
			close(p.orderCh)
			var got []int
			for w := range p.orderCh {
				var ce *readback.ChunkError
				switch {
				case w.err == nil:
				case errors.As(w.err, &ce) && ce.Chunk == w.i && errors.Is(w.err, zstimg.ErrMismatch) && strings.Contains(w.err.Error(), "data sha256"):
					got = append(got, w.i)
				default:
					t.Errorf("chunk %d: err = %v, want a data sha256 mismatch naming it", w.i, w.err)
				}
				if w.data != nil {
					t.Errorf("chunk %d passed on with its data not hashed", w.i)
				}
			}
			if !slices.Equal(got, tc.bad) {
				t.Errorf("chunks refused %v, want %v", got, tc.bad)
			}
			if st := fl.Stats(); st.PairedChunks != 2 {
				t.Errorf("%d chunks hashed in pairs, want 2", st.PairedChunks)
			}
		})
	}
}
