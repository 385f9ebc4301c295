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
	"github.com/rpi-deploy/rpi-deploy/internal/sha256x2"
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
	// Workers is the number of chunks read at once (default 2 × GOMAXPROCS, so that reads
	// wait while other chunks hash). Verify reads and hashes chunks two by two on
	// Workers/2 goroutines (an odd count reads one fewer), one by one with 1.
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
// failing chunk's and the count is of the chunks before it. Chunks go two by two to a
// goroutine, which reads both at once and hashes them in one pass (sha256x2.SumPair:
// where SHA-256 has two lanes, two hashes for little more than the CPU of one); with a
// single worker or buffer, one by one. On a *blockdev.File that does not (or no longer) bypass the page cache,
// each range is dropped from the cache before it is read, so the medium answers.
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
	per := min(workers, 2) // chunks per goroutine, each with a buffer of its own
	matched, done := 0, int64(0)
	err := ordered.Map(ctx, (len(jobs)+per-1)/per, workers/per,
		func(_ context.Context, g int) (checked, error) {
			js := jobs[g*per : min(g*per+per, len(jobs))]
			own := make([][]byte, len(js))
			for k := range own {
				own[k] = <-bufs
			}
			defer func() {
				for _, b := range own {
					bufs <- b
				}
			}()
			return checkGroup(f, js, own, m, opt), nil
		},
		func(_ int, c checked) error {
			for _, n := range c.n {
				matched++
				done += n
				if opt.Progress != nil {
					opt.Progress(done, total)
				}
			}
			return c.err
		})
	return matched, err
}

// checked is the outcome of checkGroup: the bytes hashed of each chunk that matched, in
// order, up to the first that did not, whose *ChunkError is err.
type checked struct {
	n   []int64
	err error
}

// checkGroup checks the chunks js (one or two), each read into its buffer, the reads
// at once, and hashed together (sha256x2.SumPair) when both were read.
func checkGroup(f io.ReaderAt, js []job, bufs [][]byte, m *manifest.Manifest, opt Options) checked {
	errs := make([]error, len(js))
	if len(js) == 2 {
		second := make(chan struct{})
		go func() { defer close(second); errs[1] = js[1].read(f, bufs[1], m, opt) }()
		errs[0] = js[0].read(f, bufs[0], m, opt)
		<-second
	} else {
		for k, j := range js {
			errs[k] = j.read(f, bufs[k], m, opt)
		}
	}
	sums := make([][sha256.Size]byte, len(js))
	switch {
	case len(js) == 2 && errs[0] == nil && errs[1] == nil:
		sums[0], sums[1] = sha256x2.SumPair(js[0].pieces(bufs[0], m), js[1].pieces(bufs[1], m))
	case errs[0] == nil:
		sums[0] = sha256x2.Sum(js[0].pieces(bufs[0], m))
	}
	var c checked
	for k, j := range js {
		if errs[k] != nil {
			c.err = errs[k]
			return c
		}
		if err := j.judge(sums[k], m); err != nil {
			c.err = err
			return c
		}
		c.n = append(c.n, j.bytes())
	}
	return c
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
	if err := j.read(f, buf, m, opt); err != nil {
		return 0, err
	}
	if err := j.judge(sha256x2.Sum(j.pieces(buf, m)), m); err != nil {
		return j.bytes(), err
	}
	return j.bytes(), nil
}

// read reads chunk j into buf (each byte at its place in the chunk) with opt.Requests,
// or its ranges; a failure is a *ChunkError.
func (j job) read(f io.ReaderAt, buf []byte, m *manifest.Manifest, opt Options) error {
	cr := m.ChunkRange(j.chunk)
	reqs := j.ranges
	if opt.Requests != nil {
		reqs = opt.Requests(j.chunk)
	}
	for _, r := range reqs {
		if err := readSpan(f, buf, cr, r, opt.Offset); err != nil {
			return &ChunkError{Chunk: j.chunk, Offset: cr.Offset, Err: err}
		}
	}
	return nil
}

// pieces are the bytes of j's ranges in buf, where read put them: what is hashed.
func (j job) pieces(buf []byte, m *manifest.Manifest) [][]byte {
	cr := m.ChunkRange(j.chunk)
	ps := make([][]byte, len(j.ranges))
	for k, r := range j.ranges {
		ps[k] = buf[r.Offset-cr.Offset : r.End()-cr.Offset]
	}
	return ps
}

// bytes is how many bytes j hashes.
func (j job) bytes() int64 {
	var n int64
	for _, r := range j.ranges {
		n += r.Length
	}
	return n
}

// judge compares the SHA-256 of j's pieces with the one it must have; a mismatch is a
// *ChunkError.
func (j job) judge(sum [sha256.Size]byte, m *manifest.Manifest) error {
	if got := hex.EncodeToString(sum[:]); got != j.want {
		return &ChunkError{Chunk: j.chunk, Offset: m.ChunkRange(j.chunk).Offset, Want: j.want, Got: got, Err: ErrMismatch}
	}
	return nil
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
