// Package readback checks a written card (or an image file) against its manifest by
// reading it back with O_DIRECT, never from the page cache, hashing chunks in parallel
// on all cores. rpi-agent runs it after streaming; rpi-image verify runs it on files.
package readback

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
	"github.com/rpi-deploy/rpi-deploy/image-tools/internal/ordered"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
)

// ErrMismatch is wrapped by every *ChunkError that reports wrong bytes.
var ErrMismatch = errors.New("sha256 mismatch")

// ChunkError names the chunk a check failed at.
type ChunkError struct {
	Chunk  int    // index in the manifest
	Offset int64  // raw byte offset of the chunk
	Want   string // expected hex SHA256 (mismatch only)
	Got    string // measured hex SHA256 (mismatch only)
	Err    error  // ErrMismatch or the I/O error
}

func (e *ChunkError) Error() string {
	if errors.Is(e.Err, ErrMismatch) {
		return fmt.Sprintf("chunk %d at byte %d: %v: want %s, got %s", e.Chunk, e.Offset, e.Err, e.Want, e.Got)
	}
	return fmt.Sprintf("chunk %d at byte %d: %v", e.Chunk, e.Offset, e.Err)
}

func (e *ChunkError) Unwrap() error { return e.Err }

// Options tune Verify. The zero value reads every data chunk with GOMAXPROCS workers.
type Options struct {
	// Workers is the number of chunks read and hashed at once (default 2 × GOMAXPROCS, so
	// that reads wait while other chunks hash).
	Workers int
	// Full checks whole chunks against Chunk.SHA256 (free space must read as zeros, as
	// in an image file) instead of the data ranges against Chunk.DataSHA256.
	Full bool
	// Skip, if set, leaves out the chunks it returns true for (the agent holds chunk 0
	// back until the end).
	Skip func(chunk int) bool
	// Progress, if set, is called after each chunk with the bytes read so far and the
	// bytes to read in all. Calls are serialised.
	Progress func(done, total int64)
	// Offset is where the image starts in path (default 0).
	Offset int64
}

// Verify reads back the chunks of m from path and compares their hashes with the
// manifest. It returns how many chunks matched before the first failing one, whose error
// is a *ChunkError (errors.Is(err, ErrMismatch) for wrong bytes).
func Verify(ctx context.Context, path string, m *manifest.Manifest, opt Options) (int, error) {
	f, err := blockdev.Open(path, 0)
	if err != nil {
		return 0, fmt.Errorf("open %q for read-back: %w", path, err)
	}
	defer f.Close()
	if !f.Direct() {
		// The page cache could answer instead of the medium: drop it first.
		_ = blockdev.DropCache(f.File, 0, 0)
	}
	return VerifyFile(ctx, f, m, opt)
}

// VerifyFile is Verify on an open file. Chunks are read and hashed on several
// goroutines and judged in order (package ordered), so the error is always the first
// failing chunk's and the count is of the chunks before it.
func VerifyFile(ctx context.Context, f io.ReaderAt, m *manifest.Manifest, opt Options) (int, error) {
	jobs, total := plan(m, opt)
	workers := opt.Workers
	if workers <= 0 {
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	workers = min(workers, max(len(jobs), 1))
	bufs := make(chan []byte, workers)
	for range workers {
		bufs <- blockdev.AlignedBuffer(int(m.ChunkSize))
	}
	matched, done := 0, int64(0)
	err := ordered.Map(ctx, len(jobs), workers,
		func(_ context.Context, k int) (int64, error) {
			buf := <-bufs
			defer func() { bufs <- buf }()
			return jobs[k].check(f, buf, m, opt.Offset)
		},
		func(_ int, n int64) error {
			matched++
			done += n
			if opt.Progress != nil {
				opt.Progress(done, total)
			}
			return nil
		})
	return matched, err
}

// job is one chunk to check: its ranges (the whole chunk, or its data ranges) and the
// hash they must have.
type job struct {
	chunk  int
	ranges []manifest.Range
	want   string
}

// plan lists the chunks opt asks for and the bytes they cover.
func plan(m *manifest.Manifest, opt Options) ([]job, int64) {
	var jobs []job
	var total int64
	for i, c := range m.Chunks {
		if opt.Skip != nil && opt.Skip(i) {
			continue
		}
		cr := m.ChunkRange(i)
		j := job{chunk: i, want: c.SHA256, ranges: []manifest.Range{cr}}
		if !opt.Full {
			if c.DataSHA256 == "" {
				continue
			}
			j.want, j.ranges = c.DataSHA256, m.DataIn(cr)
		}
		for _, r := range j.ranges {
			total += r.Length
		}
		jobs = append(jobs, j)
	}
	return jobs, total
}

// check reads j's ranges into buf and compares their hash; it returns the bytes read,
// or a *ChunkError.
func (j job) check(f io.ReaderAt, buf []byte, m *manifest.Manifest, base int64) (int64, error) {
	h := sha256.New()
	var n int64
	for _, r := range j.ranges {
		if err := readRange(f, buf, r, base); err != nil {
			return n, &ChunkError{Chunk: j.chunk, Offset: m.ChunkRange(j.chunk).Offset, Err: err}
		}
		h.Write(buf[:r.Length])
		n += r.Length
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != j.want {
		return n, &ChunkError{Chunk: j.chunk, Offset: m.ChunkRange(j.chunk).Offset, Want: j.want, Got: got, Err: ErrMismatch}
	}
	return n, nil
}

// readRange reads r (at most len(buf) bytes) into the start of buf. The length is
// rounded up to blockdev.Align so that the tail of an image whose size is not a
// multiple of it can be read directly too.
func readRange(f io.ReaderAt, buf []byte, r manifest.Range, base int64) error {
	n := (r.Length + blockdev.Align - 1) &^ (blockdev.Align - 1)
	if n > int64(len(buf)) {
		n = int64(len(buf))
	}
	if r.Length > n {
		return fmt.Errorf("range [%d,+%d) larger than the chunk buffer", r.Offset, r.Length)
	}
	got, err := f.ReadAt(buf[:n], base+r.Offset)
	if int64(got) >= r.Length {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read [%d,+%d): got %d bytes: %w", r.Offset, r.Length, got, err)
}
