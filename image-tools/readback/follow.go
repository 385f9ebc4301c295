package readback

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
)

// Follower checks chunks while a writer is still writing later ones: the writer hands
// over each chunk once its bytes are on the target (Add), and Follower's goroutines
// read that chunk's data ranges back and compare their SHA256 with the chunk's
// data_sha256, as Verify does. Read through a descriptor that bypasses the page cache
// (O_DIRECT), each check reads what the medium returns, while the writer keeps the
// medium busy with the next chunks. Close waits for the checks and names the first
// bad chunk, as Verify does.
type Follower struct {
	ctx   context.Context
	f     io.ReaderAt
	m     *manifest.Manifest
	opt   Options
	in    chan int
	wg    sync.WaitGroup
	total int64
	done  atomic.Int64 // bytes matched so far

	mu  sync.Mutex
	ok  []bool      // chunks that matched
	bad *ChunkError // the failing chunk of the lowest index so far
	err error       // a failure that is not a chunk's (ctx)
}

// NewFollower starts checking chunks of m on f (Options.Workers goroutines, default
// GOMAXPROCS; Options.Full and Options.Progress are not used, Skip and Offset are).
// Cancelling ctx stops the checks; Close then returns ctx's error.
func NewFollower(ctx context.Context, f io.ReaderAt, m *manifest.Manifest, opt Options) *Follower {
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	opt.Full = false
	_, total := plan(m, opt)
	fo := &Follower{ctx: ctx, f: f, m: m, opt: opt, total: total,
		in: make(chan int, len(m.Chunks)), ok: make([]bool, len(m.Chunks))}
	for range workers {
		fo.wg.Add(1)
		go fo.work()
	}
	return fo
}

// Add hands chunk i over for checking: its bytes are on the target. Chunks without
// data and those Options.Skip leaves out are ignored. It never blocks; it must not be
// called after Close.
func (fo *Follower) Add(i int) {
	if i < 0 || i >= len(fo.m.Chunks) || fo.m.Chunks[i].DataSHA256 == "" || (fo.opt.Skip != nil && fo.opt.Skip(i)) {
		return
	}
	fo.in <- i // buffered for every chunk: each is added at most once
}

// Total is the number of bytes all checks together read: the data ranges of every
// chunk Options.Skip does not leave out.
func (fo *Follower) Total() int64 { return fo.total }

// Done is the number of bytes read back and matched so far.
func (fo *Follower) Done() int64 { return fo.done.Load() }

func (fo *Follower) work() {
	defer fo.wg.Done()
	buf := blockdev.AlignedBuffer(int(fo.m.ChunkSize))
	for i := range fo.in {
		if err := fo.ctx.Err(); err != nil {
			fo.mu.Lock()
			fo.err = err
			fo.mu.Unlock()
			continue
		}
		cr := fo.m.ChunkRange(i)
		j := job{chunk: i, want: fo.m.Chunks[i].DataSHA256, ranges: fo.m.DataIn(cr)}
		n, err := j.check(fo.f, buf, fo.m, fo.opt)
		fo.mu.Lock()
		if err != nil {
			var ce *ChunkError
			if !errors.As(err, &ce) {
				ce = &ChunkError{Chunk: i, Offset: cr.Offset, Err: err}
			}
			if fo.bad == nil || ce.Chunk < fo.bad.Chunk {
				fo.bad = ce
			}
		} else {
			fo.ok[i] = true
			fo.done.Add(n)
		}
		fo.mu.Unlock()
	}
}

// ErrNotChecked is the error of a chunk that was never handed to a Follower.
var ErrNotChecked = errors.New("not read back: the chunk was never written")

// Close stops taking chunks, waits until every chunk added has been checked and returns
// how many matched before the first failing one, whose error is a *ChunkError
// (errors.Is(err, ErrMismatch) for wrong bytes, ErrNotChecked for a chunk with data
// that was never added); with no failure, how many matched.
func (fo *Follower) Close() (int, error) {
	close(fo.in)
	fo.wg.Wait()
	fo.mu.Lock()
	defer fo.mu.Unlock()
	if fo.err != nil && fo.bad == nil {
		return 0, fo.err
	}
	jobs, _ := plan(fo.m, fo.opt)
	n := 0
	for _, j := range jobs {
		switch {
		case fo.bad != nil && j.chunk >= fo.bad.Chunk:
			return n, fo.bad
		case !fo.ok[j.chunk]:
			return n, &ChunkError{Chunk: j.chunk, Offset: fo.m.ChunkRange(j.chunk).Offset, Err: ErrNotChecked}
		}
		n++
	}
	return n, nil
}
