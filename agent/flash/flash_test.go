package flash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/retry"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
)

// synthImage is a raw image of size bytes with data regions (random and repetitive
// text) separated by free space of zeros, like a file system image.
func synthImage(t *testing.T, size int) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	fill := rand.NewChaCha8([32]byte{1})
	text := bytes.Repeat([]byte("line of some config file = value\n"), 64<<10)
	raw := make([]byte, size)
	for off := 0; off < size; {
		n := min((1+rng.IntN(64))*4096, size-off)
		switch rng.IntN(3) {
		case 0: // random
			fill.Read(raw[off : off+n])
		case 1: // text
			copy(raw[off:off+n], text[off%4096:])
		}
		off += n
	}
	copy(raw, "MBR-NEW-IMAGE")
	return raw
}

// packed packs raw with image-tools/pack (1 MiB chunks) and returns the manifest and
// the compressed bytes.
func packed(t *testing.T, raw []byte) (*manifest.Manifest, []byte, error) {
	t.Helper()
	packedMu.Lock()
	defer packedMu.Unlock()
	if p, ok := packedCache[len(raw)]; ok {
		return p.m, bytes.Clone(p.zst), nil
	}
	dir, err := os.MkdirTemp("", "flash-test-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "raw.img")
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		return nil, nil, err
	}
	out := filepath.Join(dir, "synth.img.zst")
	m, err := pack.Pack(context.Background(), pack.Options{Input: in, Output: out, ChunkSize: 1 << 20, Raw: true})
	if err != nil {
		return nil, nil, err
	}
	zst, err := os.ReadFile(out)
	if err != nil {
		return nil, nil, err
	}
	packedCache[len(raw)] = packedImage{m, zst}
	return m, bytes.Clone(zst), nil
}

// packedCache holds the images packed so far by size (synthImage is deterministic).
var (
	packedMu    sync.Mutex
	packedCache = map[int]packedImage{}
)

type packedImage struct {
	m   *manifest.Manifest
	zst []byte
}

// server serves zst at /img.zst through handler tweaks.
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/img.zst"
}

func plain(zst []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "img.zst", time.Time{}, bytes.NewReader(zst))
	}
}

// oldTarget makes a target file that holds a previous image (non-zero everywhere).
func oldTarget(t *testing.T, size int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "card.img")
	if err := os.WriteFile(p, bytes.Repeat([]byte("OLD!"), size/4), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var fastRetry = retry.Policy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Attempts: 4}

func flash(t *testing.T, m *manifest.Manifest, target, url string, opt Options) (*Flasher, error) {
	t.Helper()
	fl, err := Open(target, m, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Close() })
	src := &HTTPSource{URL: url, Size: m.CompressedSize}
	if err := fl.Stream(context.Background(), src); err != nil {
		return fl, err
	}
	if _, err := fl.Verify(context.Background(), nil); err != nil {
		return fl, err
	}
	return fl, fl.Commit()
}

func checkData(t *testing.T, m *manifest.Manifest, raw []byte, target string) {
	t.Helper()
	got, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range m.Ranges {
		if !bytes.Equal(got[r.Offset:r.End()], raw[r.Offset:r.End()]) {
			t.Fatalf("range [%d,+%d) differs from the source", r.Offset, r.Length)
		}
	}
}

func checkUnbootable(t *testing.T, target string) {
	t.Helper()
	got, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:4096], make([]byte, 4096)) {
		t.Fatalf("first block of the target is not zero after a failure: %q", got[:16])
	}
}

func TestStreamWritesDataRanges(t *testing.T) {
	raw := synthImage(t, 24<<20+8192) // size not a multiple of the chunk size
	m, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	target := oldTarget(t, len(raw))
	fl, err := flash(t, m, target, serve(t, plain(zst)), Options{Decoders: 3, Buffers: 4})
	if err != nil {
		t.Fatal(err)
	}
	checkData(t, m, raw, target)
	st := fl.Stats()
	if st.SHA256 != m.SHA256 || st.Fetched != m.CompressedSize || st.Streamed != m.Size {
		t.Errorf("stats %+v; want sha %s, fetched %d, streamed %d", st, m.SHA256, m.CompressedSize, m.Size)
	}
	t.Logf("stats %+v", st)
}

func TestFlippedByteNamesChunk(t *testing.T) {
	raw := synthImage(t, 16<<20)
	m, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	const bad = 9
	zst[m.Chunks[bad].Frame+m.Chunks[bad].FrameSize/2] ^= 0x40
	target := oldTarget(t, len(raw))
	_, err = flash(t, m, target, serve(t, plain(zst)), Options{})
	var ce *readback.ChunkError
	if !errors.As(err, &ce) || ce.Chunk != bad || ce.Offset != bad<<20 {
		t.Fatalf("err = %v, want a ChunkError for chunk %d at byte %d", err, bad, bad<<20)
	}
	checkUnbootable(t, target)
}

func TestTruncated(t *testing.T) {
	raw := synthImage(t, 16<<20)
	m, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	boundary := m.Chunks[5].Frame
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		want error
	}{
		{"short file at a frame boundary", plain(zst[:boundary]), ErrPermanent},
		{"short file inside a frame", plain(zst[:boundary+100]), ErrPermanent},
		{"connection cut at a frame boundary", cutAt(zst, boundary), ErrTruncated},
		{"connection cut inside a frame", cutAt(zst, boundary+100), ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := oldTarget(t, len(raw))
			_, err := flash(t, m, target, serve(t, tc.h), Options{Retry: fastRetry})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			checkUnbootable(t, target)
		})
	}
}

// cutAt serves zst with the full Content-Length but closes the connection after the
// byte at cut (of the file), on every request.
func cutAt(zst []byte, cut int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var start int64
		if rg := r.Header.Get("Range"); rg != "" {
			fmt.Sscanf(rg, "bytes=%d-", &start)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(zst)-1, len(zst)))
			w.Header().Set("Content-Length", strconv.Itoa(len(zst)-int(start)))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(zst)))
		}
		if start < cut {
			w.Write(zst[start:cut])
		}
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}
}

func TestResumeAfterCut(t *testing.T) {
	raw := synthImage(t, 16<<20)
	m, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	cut := cutAt(zst, m.Chunks[7].Frame+m.Chunks[7].FrameSize/2)
	h := func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			cut(w, r)
			return
		}
		plain(zst)(w, r)
	}
	target := oldTarget(t, len(raw))
	fl, err := flash(t, m, target, serve(t, h), Options{Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	checkData(t, m, raw, target)
	st := fl.Stats()
	if st.Resumes != 1 || float64(st.Fetched) > 1.2*float64(m.CompressedSize) {
		t.Fatalf("resumes %d, fetched %d of %d compressed bytes", st.Resumes, st.Fetched, m.CompressedSize)
	}
}

// TestStalledStreamResumes: a server that stops sending without closing the
// connection (a pulled cable) is given up after Stall and the stream resumed.
func TestStalledStreamResumes(t *testing.T) {
	raw := synthImage(t, 16<<20)
	m, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	release := make(chan struct{})
	h := func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Content-Length", strconv.Itoa(len(zst)))
			w.Write(zst[:m.Chunks[3].Frame+10])
			w.(http.Flusher).Flush()
			<-release // hang with the connection open
			return
		}
		plain(zst)(w, r)
	}
	target := oldTarget(t, len(raw))
	fl, err := Open(target, m, Options{Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	url := serve(t, h)
	t.Cleanup(func() { close(release) }) // before the server's Close, which waits for the handler
	src := &HTTPSource{URL: url, Size: m.CompressedSize, Stall: 300 * time.Millisecond}
	if err := fl.Stream(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if st := fl.Stats(); st.Resumes != 1 {
		t.Fatalf("resumes %d, want 1", st.Resumes)
	}
}

// TestOddSizedImage: an image whose size is not a multiple of 4096 ends in a range
// that O_DIRECT cannot write or read as is; the tail goes through the page cache and
// the read-back still checks it.
func TestOddSizedImage(t *testing.T) {
	raw := synthImage(t, 3<<20+1000)
	for i := len(raw) - 1000; i < len(raw); i++ {
		raw[i] = byte(i) | 1 // the tail holds data
	}
	m, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	target := oldTarget(t, len(raw))
	if _, err := flash(t, m, target, serve(t, plain(zst)), Options{}); err != nil {
		t.Fatal(err)
	}
	checkData(t, m, raw, target)
}
