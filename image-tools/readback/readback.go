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
	"sync"
	"sync/atomic"

	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
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
// manifest. It returns how many chunks matched; the error of the first failure found
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

// VerifyFile is Verify on an open file.
func VerifyFile(ctx context.Context, f io.ReaderAt, m *manifest.Manifest, opt Options) (int, error) {
	type job struct {
		chunk  int
		ranges []manifest.Range
		want   string
	}
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
	workers := opt.Workers
	if workers <= 0 {
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	workers = min(workers, max(len(jobs), 1))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next, matched atomic.Int64
		mu            sync.Mutex
		done          int64
		firstErr      *ChunkError
		wg            sync.WaitGroup
	)
	fail := func(e *ChunkError) {
		mu.Lock()
		if firstErr == nil || e.Chunk < firstErr.Chunk {
			firstErr = e
		}
		mu.Unlock()
		cancel()
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := blockdev.AlignedBuffer(int(m.ChunkSize))
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= len(jobs) {
					return
				}
				j := jobs[k]
				h := sha256.New()
				var n int64
				for _, r := range j.ranges {
					if err := readRange(f, buf, r, opt.Offset); err != nil {
						fail(&ChunkError{Chunk: j.chunk, Offset: m.ChunkRange(j.chunk).Offset, Err: err})
						return
					}
					h.Write(buf[:r.Length])
					n += r.Length
				}
				if got := hex.EncodeToString(h.Sum(nil)); got != j.want {
					fail(&ChunkError{Chunk: j.chunk, Offset: m.ChunkRange(j.chunk).Offset, Want: j.want, Got: got, Err: ErrMismatch})
					return
				}
				matched.Add(1)
				if opt.Progress != nil {
					mu.Lock()
					done += n
					opt.Progress(done, total)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return int(matched.Load()), firstErr
	}
	if err := ctx.Err(); err != nil {
		return int(matched.Load()), err
	}
	return int(matched.Load()), nil
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
