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
	// Requests, if set, gives the reads chunk i is made with (ranges inside the chunk,
	// each widened to blockdev.Align; the agent reads a chunk with the requests it was
	// written with). Default: the ranges hashed (the chunk's data ranges, or the whole
	// chunk with Full).
	Requests func(chunk int) []manifest.Range
	// Buffers, if set, are the chunk buffers read into (each ChunkSize bytes, aligned
	// for O_DIRECT): at most len(Buffers) chunks are read at once. Default: Workers
	// new ones.
	Buffers [][]byte
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
	return VerifyFile(ctx, f, m, opt)
}

// VerifyFile is Verify on an open file. Chunks are read and hashed on several
// goroutines and judged in order (package ordered), so the error is always the first
// failing chunk's and the count is of the chunks before it. On a *blockdev.File that
// does not (or no longer) bypass the page cache, each range is dropped from the cache
// before it is read, so the medium answers.
func VerifyFile(ctx context.Context, f io.ReaderAt, m *manifest.Manifest, opt Options) (int, error) {
	jobs, total := plan(m, opt)
	workers := opt.Workers
	if workers <= 0 {
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	workers = min(workers, max(len(jobs), 1))
	if opt.Buffers != nil {
		workers = max(min(workers, len(opt.Buffers)), 1)
	}
	bufs := make(chan []byte, workers)
	for k := range workers {
		if opt.Buffers != nil {
			bufs <- opt.Buffers[k]
		} else {
			bufs <- blockdev.AlignedBuffer(int(m.ChunkSize))
		}
	}
	matched, done := 0, int64(0)
	err := ordered.Map(ctx, len(jobs), workers,
		func(_ context.Context, k int) (int64, error) {
			buf := <-bufs
			defer func() { bufs <- buf }()
			return jobs[k].check(f, buf, m, opt)
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

// check reads chunk j into buf (each byte at its place in the chunk) with opt.Requests,
// or its ranges, and compares the hash of its ranges; it returns the bytes hashed, or a
// *ChunkError.
func (j job) check(f io.ReaderAt, buf []byte, m *manifest.Manifest, opt Options) (int64, error) {
	cr := m.ChunkRange(j.chunk)
	reqs := j.ranges
	if opt.Requests != nil {
		reqs = opt.Requests(j.chunk)
	}
	for _, r := range reqs {
		if err := readSpan(f, buf, cr, r, opt.Offset); err != nil {
			return 0, &ChunkError{Chunk: j.chunk, Offset: cr.Offset, Err: err}
		}
	}
	h := sha256.New()
	var n int64
	for _, r := range j.ranges {
		h.Write(buf[r.Offset-cr.Offset : r.End()-cr.Offset])
		n += r.Length
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != j.want {
		return n, &ChunkError{Chunk: j.chunk, Offset: cr.Offset, Want: j.want, Got: got, Err: ErrMismatch}
	}
	return n, nil
}

// readSpan reads r (inside chunk cr) into buf at r's place in the chunk, widened to
// blockdev.Align at both ends so that the read can bypass the page cache (at the end of
// a file whose size is not a multiple of it the read is short, which is fine as long as
// it covers r). base is where the image starts in f. On a *blockdev.File that is not
// direct, or that the kernel made give up O_DIRECT for this read, the range is dropped
// from the page cache and read from the medium.
func readSpan(f io.ReaderAt, buf []byte, cr, r manifest.Range, base int64) error {
	from := (r.Offset - cr.Offset) &^ (blockdev.Align - 1)
	to := min((r.End()-cr.Offset+blockdev.Align-1)&^(blockdev.Align-1), int64(len(buf)))
	if r.End()-cr.Offset > to {
		return fmt.Errorf("range [%d,+%d) larger than the chunk buffer", r.Offset, r.Length)
	}
	p, off := buf[from:to], base+cr.Offset+from
	bf, _ := f.(*blockdev.File)
	direct := bf != nil && bf.Direct()
	if bf != nil && !direct {
		// The page cache could answer instead of the medium: forget this range first.
		_ = blockdev.DropCache(bf.File, off, to-from)
	}
	got, err := f.ReadAt(p, off)
	if direct && !bf.Direct() {
		// The kernel refused this direct read and blockdev read it buffered: read it
		// again from the medium.
		_ = blockdev.DropCache(bf.File, off, to-from)
		got, err = f.ReadAt(p, off)
	}
	if from+int64(got) >= r.End()-cr.Offset {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read [%d,+%d): got %d bytes: %w", cr.Offset+from, to-from, got, err)
}
