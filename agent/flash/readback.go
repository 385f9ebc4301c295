package flash

import (
	"context"
	"fmt"
	"os"

	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
)

// readBackAll reads back every chunk with data but chunk 0, after the stream is written
// and synced, through a descriptor of its own that bypasses the page cache (O_DIRECT;
// where the file system refuses it, readback drops each range from the page cache
// before reading it). Options.ReadBackDepth chunks are read at once, each with the
// requests the stream wrote it with (its data ranges, gaps up to Options.MergeGap
// merged), into the stream's raw buffers, and their data ranges compared with the
// chunk's data_sha256 (readback.VerifyFile). It returns how many chunks matched before
// the first failing one, whose error is a *readback.ChunkError.
func (fl *Flasher) readBackAll(ctx context.Context, progress func(done, total int64)) (int, error) {
	rf, err := blockdev.Open(fl.path, os.O_RDONLY)
	if err != nil {
		return 0, fmt.Errorf("open %q for read-back: %w", fl.path, err)
	}
	defer rf.Close()
	bufs, err := fl.readBackBuffers(ctx, fl.opt.ReadBackDepth)
	defer func() {
		for _, b := range bufs {
			fl.rawBufs.put(b)
		}
	}()
	if err != nil {
		return 0, err
	}
	return readback.VerifyFile(ctx, rf, fl.m, readback.Options{
		Workers:  fl.opt.ReadBackDepth,
		Buffers:  bufs,
		Skip:     func(i int) bool { return i == 0 }, // chunk 0 is read back by Commit
		Requests: func(i int) []manifest.Range { return writeRanges(fl.m, i, fl.opt.MergeGap) },
		Progress: func(done, total int64) {
			fl.readBack.Store(done)
			if progress != nil {
				progress(done, total)
			}
		},
	})
}

// readBackBuffers takes n chunk buffers for the read-back from the stream's pool
// (they are all back once the stream is done; the pool allocates those the stream did
// not need) or, without one, from a pool of its own.
func (fl *Flasher) readBackBuffers(ctx context.Context, n int) ([][]byte, error) {
	if fl.rawBufs == nil {
		fl.rawBufs = newPool(n, func() []byte { return blockdev.AlignedBuffer(int(fl.m.ChunkSize)) })
	}
	n = min(n, cap(fl.rawBufs.free))
	bufs := make([][]byte, 0, n)
	for range n {
		b, err := fl.rawBufs.get(ctx)
		if err != nil {
			return bufs, err
		}
		bufs = append(bufs, b)
	}
	return bufs, nil
}
