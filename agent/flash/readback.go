package flash

import (
	"context"
	"fmt"
	"os"

	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
)

// readBackAll reads back every chunk with data but chunk 0, once the stream's writes
// are done, through a descriptor of its own that bypasses the page cache (O_DIRECT;
// where the file system refuses it, readback drops each range from the page cache
// before reading it). Options.ReadBackDepth chunks are read at once, each with the
// requests the stream wrote it with (its data ranges, gaps up to Options.MergeGap
// merged), into the stream's raw buffers, and their data ranges compared with the
// chunk's data_sha256 (readback.VerifyFile). While the stream's closing fsync runs
// (startSync) it reads the chunks written before the stream's last ReadBackLag bytes of
// writes; the others once the fsync has returned. It returns how many chunks matched
// before the first failing one, whose error is a *readback.ChunkError, or the fsync's
// error (ErrWrite).
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
	split := 1 // chunks below split are read back beside the fsync
	if fl.syncDone != nil {
		split = fl.settled()
	}
	before, total := fl.dataBytes(1, split), fl.dataBytes(1, len(fl.m.Chunks))
	verify := func(from, to int, base int64) (int, error) {
		return readback.VerifyFile(ctx, rf, fl.m, readback.Options{
			Workers:  fl.opt.ReadBackDepth,
			Buffers:  bufs,
			Skip:     func(i int) bool { return i < from || i >= to }, // chunk 0 is read back by Commit
			Requests: func(i int) []manifest.Range { return writeRanges(fl.m, i, fl.opt.MergeGap) },
			Progress: func(done, _ int64) {
				fl.readBack.Store(base + done)
				if progress != nil {
					progress(base+done, total)
				}
			},
		})
	}
	n, err := verify(1, split, 0)
	if err != nil {
		return n, err
	}
	if err := fl.waitSync(ctx); err != nil {
		return n, err
	}
	k, err := verify(split, len(fl.m.Chunks), before)
	return n + k, err
}

// settled returns the first chunk of those the stream wrote in its last
// Options.ReadBackLag bytes of writes (in chunk order, as the stream issues them): every
// chunk before it had that many bytes written after it, beyond the write cache of an SD
// card (at least 1: chunk 0 is written by Commit).
func (fl *Flasher) settled() int {
	var tail int64
	for i := len(fl.m.Chunks) - 1; i > 1; i-- {
		for _, r := range writeRanges(fl.m, i, fl.opt.MergeGap) {
			tail += r.Length
		}
		if tail >= fl.opt.ReadBackLag {
			return i
		}
	}
	return 1
}

// dataBytes is the number of bytes in the data ranges of chunks from…to-1 that have
// data: what their read-back hashes.
func (fl *Flasher) dataBytes(from, to int) int64 {
	var n int64
	for i := from; i < to; i++ {
		if fl.m.Chunks[i].DataSHA256 == "" {
			continue
		}
		for _, r := range fl.m.DataIn(fl.m.ChunkRange(i)) {
			n += r.Length
		}
	}
	return n
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
