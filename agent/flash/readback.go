package flash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
)

// readBackAll reads back every chunk with data but chunk 0, after the stream is written
// and synced, through a descriptor of its own that bypasses the page cache (O_DIRECT;
// where the file system refuses it, the range is dropped from the page cache before
// each read). Options.ReadBackDepth chunks are read at once, each with the requests
// the stream wrote it with (its data ranges, gaps up to Options.MergeGap merged), into
// the stream's raw buffers; the goroutine that read a chunk hashes its data ranges and
// compares the result with the chunk's data_sha256. It returns how many chunks matched
// before the first failing one (by index, whatever order the reads completed in),
// whose error is a *readback.ChunkError.
func (fl *Flasher) readBackAll(ctx context.Context, progress func(done, total int64)) (int, error) {
	rf, err := blockdev.Open(fl.path, os.O_RDONLY)
	if err != nil {
		return 0, fmt.Errorf("open %q for read-back: %w", fl.path, err)
	}
	defer rf.Close()
	m := fl.m
	var jobs []int
	var total int64
	for i, c := range m.Chunks {
		if i == 0 || c.DataSHA256 == "" {
			continue // chunk 0 is read back by Commit; free space is not written
		}
		jobs = append(jobs, i)
		for _, r := range m.DataIn(m.ChunkRange(i)) {
			total += r.Length
		}
	}
	depth := min(fl.opt.ReadBackDepth, max(len(jobs), 1))
	bufs := fl.readBackBuffers(depth)
	defer func() {
		for _, b := range bufs {
			fl.rawFree <- b // never blocks: they came from there
		}
	}()

	var (
		next   atomic.Int64 // index into jobs of the next chunk to read
		firstK atomic.Int64 // index into jobs of the first failing chunk so far
		done   atomic.Int64 // bytes matched
		mu     sync.Mutex   // orders the progress calls and guards bad
		bad    error        // the error of jobs[firstK]
		wg     sync.WaitGroup
	)
	firstK.Store(int64(len(jobs)))
	for _, buf := range bufs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := next.Add(1) - 1
				// Jobs are taken in order: past the first failure nothing more is needed.
				if k >= firstK.Load() || ctx.Err() != nil {
					return
				}
				n, err := fl.checkChunk(rf, buf, jobs[k])
				if err != nil {
					mu.Lock()
					if k < firstK.Load() {
						firstK.Store(k)
						bad = err
					}
					mu.Unlock()
					continue
				}
				fl.readBack.Store(done.Add(n))
				if progress != nil {
					mu.Lock()
					progress(done.Load(), total)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	switch {
	case ctx.Err() != nil:
		return 0, ctx.Err() // chunks taken may have been left unread
	case bad != nil:
		// Every chunk before it was taken earlier, read and matched: a failure there
		// would have lowered firstK.
		return int(firstK.Load()), bad
	}
	return len(jobs), nil
}

// readBackBuffers takes n chunk buffers for the read-back from the stream's pool
// (they are all back once the stream is done) or, without one, allocates them.
func (fl *Flasher) readBackBuffers(n int) [][]byte {
	if fl.rawFree == nil {
		fl.rawFree = make(chan []byte, n)
		for range n {
			fl.rawFree <- blockdev.AlignedBuffer(int(fl.m.ChunkSize))
		}
	}
	n = min(n, cap(fl.rawFree))
	bufs := make([][]byte, n)
	for k := range bufs {
		bufs[k] = <-fl.rawFree
	}
	return bufs
}

// checkChunk reads chunk i's data back into buf (placed as in the chunk) with the
// requests the stream wrote it with, and compares the SHA256 of its data ranges with
// the manifest's data_sha256. It returns the data bytes checked or a
// *readback.ChunkError.
func (fl *Flasher) checkChunk(rf *blockdev.File, buf []byte, i int) (int64, error) {
	m := fl.m
	cr := m.ChunkRange(i)
	fail := func(err error) error { return &readback.ChunkError{Chunk: i, Offset: cr.Offset, Err: err} }
	for _, r := range writeRanges(m, i, fl.opt.MergeGap) {
		if err := readSpan(rf, buf, cr, r); err != nil {
			return 0, fail(err)
		}
	}
	h := sha256.New()
	var n int64
	for _, r := range m.DataIn(cr) {
		h.Write(buf[r.Offset-cr.Offset : r.End()-cr.Offset])
		n += r.Length
	}
	want := m.Chunks[i].DataSHA256
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return n, &readback.ChunkError{Chunk: i, Offset: cr.Offset, Want: want, Got: got, Err: readback.ErrMismatch}
	}
	return n, nil
}

// readSpan reads r (inside chunk cr) into buf at r's place in the chunk, widened to
// blockdev.Align at both ends so that the read can bypass the page cache; at the end
// of a file whose size is not a multiple of it, the read is short, which is fine as
// long as it covers r.
func readSpan(rf *blockdev.File, buf []byte, cr, r manifest.Range) error {
	from := cr.Offset + (r.Offset-cr.Offset)&^(blockdev.Align-1)
	to := min(cr.Offset+(r.End()-cr.Offset+blockdev.Align-1)&^(blockdev.Align-1), cr.Offset+int64(len(buf)))
	p := buf[from-cr.Offset : to-cr.Offset]
	direct := rf.Direct()
	if !direct {
		// The page cache could answer instead of the medium: forget this range first.
		_ = blockdev.DropCache(rf.File, from, to-from)
	}
	got, err := rf.ReadAt(p, from)
	if direct && !rf.Direct() {
		// The kernel refused this direct read and blockdev read it buffered: read it
		// again from the medium.
		_ = blockdev.DropCache(rf.File, from, to-from)
		got, err = rf.ReadAt(p, from)
	}
	if from+int64(got) >= r.End() {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read [%d,+%d): got %d bytes: %w", from, to-from, got, err)
}
