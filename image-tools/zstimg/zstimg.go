// Package zstimg reads packed images: NAME.img.zst, a sequence of independent zstd
// frames (one per chunk), described by NAME.manifest.json (package manifest).
//
// Reader gives random access to the raw image by decoding only the frames it needs;
// Verify checks a packed file against its manifest frame by frame.
package zstimg

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
)

// ErrMismatch is wrapped by every error that reports bytes disagreeing with a manifest.
var ErrMismatch = errors.New("image does not match its manifest")

// NewDecoder returns a zstd decoder for DecodeAll of chunk frames on up to concurrency
// goroutines at once, refusing output larger than chunkSize.
func NewDecoder(chunkSize int64, concurrency int) (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(max(concurrency, 1)),
		zstd.WithDecoderMaxMemory(uint64(chunkSize)),
		zstd.WithDecoderMaxWindow(max(uint64(chunkSize), zstd.MinWindowSize)))
}

// DecodeChunk decodes frame (the compressed bytes of chunk i) into dst[:0] and checks
// it against the manifest: length and SHA256. It returns the decoded chunk.
func DecodeChunk(dec *zstd.Decoder, m *manifest.Manifest, i int, frame, dst []byte) ([]byte, error) {
	r := m.ChunkRange(i)
	out, err := dec.DecodeAll(frame, dst[:0])
	if err != nil {
		return nil, fmt.Errorf("chunk %d: decode frame at %d (%d bytes): %w", i, m.Chunks[i].Frame, m.Chunks[i].FrameSize, err)
	}
	if int64(len(out)) != r.Length {
		return nil, fmt.Errorf("%w: chunk %d: frame at %d decodes to %d bytes, want %d", ErrMismatch, i, m.Chunks[i].Frame, len(out), r.Length)
	}
	if got := chunkSHA256(out); got != m.Chunks[i].SHA256 {
		return nil, fmt.Errorf("%w: chunk %d (raw [%d,+%d)): sha256 %s, manifest says %s", ErrMismatch, i, r.Offset, r.Length, got, m.Chunks[i].SHA256)
	}
	return out, nil
}

// chunkSHA256 is the hex SHA256 of b. Chunks of free space are all zeros: for those the
// hash is looked up instead of computed (a zero test runs many times faster than SHA256).
func chunkSHA256(b []byte) string {
	if isZero(b) {
		return zeroSHA256(len(b))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

var zeroBlock [64 << 10]byte

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroBlock))
		if !bytes.Equal(b[:n], zeroBlock[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

var zeroSums sync.Map // length → hex SHA256 of that many zero bytes

func zeroSHA256(n int) string {
	if s, ok := zeroSums.Load(n); ok {
		return s.(string)
	}
	h := sha256.New()
	for left := n; left > 0; left -= len(zeroBlock) {
		h.Write(zeroBlock[:min(left, len(zeroBlock))])
	}
	s := hex.EncodeToString(h.Sum(nil))
	zeroSums.Store(n, s)
	return s
}

// Reader is random access to the raw image inside a packed file. It decodes the chunks
// a read touches, checks each against the manifest's chunk SHA256, and keeps the most
// recent few in memory. Safe for concurrent use.
type Reader struct {
	f   io.ReaderAt
	m   *manifest.Manifest
	dec *zstd.Decoder

	mu    sync.Mutex
	cache map[int][]byte
	lru   []int // chunk indices, most recent last
}

const cacheChunks = 8

// NewReader returns a Reader of the packed file f described by m. Close it to stop the
// decoder's goroutines.
func NewReader(f io.ReaderAt, m *manifest.Manifest) (*Reader, error) {
	dec, err := NewDecoder(m.ChunkSize, 1)
	if err != nil {
		return nil, err
	}
	return &Reader{f: f, m: m, dec: dec, cache: map[int][]byte{}}, nil
}

// Size returns the raw image size.
func (r *Reader) Size() int64 { return r.m.Size }

// Close releases the decoder.
func (r *Reader) Close() error {
	r.dec.Close()
	return nil
}

// ReadAt reads raw image bytes; it implements io.ReaderAt.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("zstimg: negative offset %d", off)
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= r.m.Size {
			return n, io.EOF
		}
		i := int(pos / r.m.ChunkSize)
		c, err := r.chunk(i)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], c[pos-int64(i)*r.m.ChunkSize:])
	}
	return n, nil
}

func (r *Reader) chunk(i int) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.cache[i]; ok {
		for k, j := range r.lru {
			if j == i {
				r.lru = append(append(r.lru[:k:k], r.lru[k+1:]...), i)
				break
			}
		}
		return c, nil
	}
	ch := r.m.Chunks[i]
	frame := make([]byte, ch.FrameSize)
	if _, err := r.f.ReadAt(frame, ch.Frame); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("chunk %d: read frame at %d (%d bytes): %w", i, ch.Frame, ch.FrameSize, err)
	}
	var dst []byte
	if len(r.lru) >= cacheChunks {
		old := r.lru[0]
		r.lru = r.lru[1:]
		dst = r.cache[old]
		delete(r.cache, old)
	}
	c, err := DecodeChunk(r.dec, r.m, i, frame, dst)
	if err != nil {
		return nil, err
	}
	r.cache[i] = c
	r.lru = append(r.lru, i)
	return c, nil
}
