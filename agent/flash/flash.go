// Package flash writes a packed image (manifest + .img.zst) onto a target in one
// overlapped pass and proves it there:
//
//	fetch (Range-resumable) → decode frames on N goroutines → per-chunk proof →
//	in order: O_DIRECT writes of the data ranges only
//
// By default each decoder proves its chunk by the SHA256 of the chunk's data ranges
// (manifest.Chunk.DataSHA256) and a comparison of the rest with zeros: free space is
// never hashed, and every chunk passing proves the whole decoded image. With
// Options.HashFreeSpace every byte is hashed instead: with SHA-256 chaining values
// (manifest.Chunk.Chain) each decoder hashes its chunk from the previous chunk's
// chaining value and compares the result with the chunk's own (the last chunk's Sum
// with the whole-image SHA256); without them each chunk is checked against its sha256
// and a sequential whole-image SHA256 runs beside the writes.
//
// With the data proof a chunk without data whose frame is byte for byte one that
// already decoded to zeros is not decoded again: frames are independent, so the same
// bytes decode to the same zeros.
//
// Every Options.SyncEvery bytes written the stream starts an fsync beside its writes,
// so that its closing fsync has little left to flush.
//
// Every written chunk is read back with O_DIRECT: by Verify, after the stream's fsync,
// Options.ReadBackDepth chunks at once, each with the requests it was written with;
// with Options.ReadBackDuringStream on an O_DIRECT target, each chunk once the stream
// is Options.ReadBackLag past it (readback.Follower), the rest after the fsync, and
// Verify waits for it. Chunk 0, which holds the partition table, is held back in
// memory until Commit, so a card is never bootable before it is verified and named;
// Open zeroes the target's first block so an old image stops being bootable too.
//
// Memory is bounded: a fixed set of chunk buffers circulates through bounded channels:
// Options.Buffers raw chunks plus Decoders+2 compressed frames, and chunk 0.
package flash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/rpi-deploy/rpi-deploy/agent/retry"
	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
	"github.com/rpi-deploy/rpi-deploy/image-tools/sha256chain"
	"github.com/rpi-deploy/rpi-deploy/image-tools/zstimg"
	"github.com/rpi-deploy/rpi-deploy/internal/sha256x2"
)

// Errors callers branch on.
var (
	ErrTooSmall  = errors.New("target smaller than the image")
	ErrTruncated = errors.New("image stream ended early")
	ErrWrite     = errors.New("write to target failed")
)

// Options tune a Flasher. The zero value is the documented defaults.
type Options struct {
	// Decoders is the number of frames decoded and hashed at once (default GOMAXPROCS).
	Decoders int
	// Writers is the number of chunk writes in flight (default 4): the queue depth of
	// the stream's writes (an SD card with command queueing, A2, takes several at once;
	// one without queues them in the kernel).
	Writers int
	// Buffers is the most raw chunk buffers in circulation (default: as many as fit in
	// 96 MiB, at least 2 × Decoders + Writers + 2). Each is allocated when the stream
	// first needs it, so a run whose writes keep up uses fewer (Stats.Buffers).
	Buffers int
	// MergeGap: free space gaps up to this many bytes between data ranges of one chunk
	// are written (as the zeros they decode to) to make fewer, larger writes (default
	// 128 KiB; <0: never).
	MergeGap int64
	// WriteRateLimit caps target writes in bytes per second (0 = none). Benchmarks use
	// it to stand in for an SD card.
	WriteRateLimit float64
	// SyncEvery: each time the stream has written this many more bytes, it starts an
	// fsync of the target beside the writes (one at a time), so that the target flushes
	// its write cache while the stream goes on and the stream's closing fsync has only
	// the last writes left (default 128 MiB; <0: never). A failed one fails the stream.
	SyncEvery int64
	// HashFreeSpace proves the image by hashing every byte of it, free space included:
	// from chaining value to chaining value when the manifest has them, else per chunk
	// against chunks[i].sha256 plus a sequential whole-image SHA256. The default (false)
	// hashes only the data ranges, against chunks[i].data_sha256, and checks that the
	// rest of each chunk decodes to zeros: that proves the image the manifest describes
	// (whose sha256 and chain rpi-image pack computed over those bytes) for a quarter
	// of the hashing on a card that is three quarters free space (docs/agent.md, "What
	// the stream proves").
	HashFreeSpace bool
	// ReadBackDepth is the number of chunks read back at once after the stream
	// (default 8): the queue depth of the read-back's O_DIRECT reads. Chunks go two by
	// two to a goroutine, which reads both at once and hashes them in one pass while the
	// reads of the others stay in flight (an odd depth reads one fewer).
	ReadBackDepth int
	// ReadBackLag is how far (bytes of the image) the stream must have gone past a
	// chunk before that chunk is read back during the stream, with
	// ReadBackDuringStream (default 64 MiB): by then
	// the card has taken up to 64 MiB more writes, well beyond the write cache of an SD
	// card, so the read comes from the card's storage rather than from the bytes it has
	// just been given. The chunks closer to the end are read back after the stream, once
	// synced.
	ReadBackLag int64
	// ReadBackDuringStream reads each chunk back once the stream is ReadBackLag past
	// it, while later chunks are written, instead of every chunk after the whole stream
	// is written and synced (the default). Faster where the target reads while it
	// writes (an NVMe drive; an SD card has one bus for both); it gives up catching a
	// counterfeit card whose storage wraps around within the image (a later write
	// overwriting a chunk already read back), which the default catches.
	ReadBackDuringStream bool
	// Retry is the policy for resuming a broken stream.
	Retry retry.Policy
	// Log receives warnings about resumes (nil: discard).
	Log *slog.Logger
}

// Stats are the counters of a Flasher; all byte counts are raw image bytes unless noted.
type Stats struct {
	Streamed int64 // bytes decoded, verified per chunk and written (or held back)
	// ReadBackInStream is ReadBack at the end of the streaming phase: the bytes read
	// back and matched while later chunks were still being written (0 when the target
	// is not read with O_DIRECT: then Verify reads everything back after the stream).
	ReadBackInStream int64
	Written          int64 // bytes written to the target (data ranges and merged gaps)
	// StreamWritten is Written at the end of the streaming phase (chunk 0 comes later).
	StreamWritten int64
	Fetched       int64  // compressed bytes received, resumes included (HTTPSource only)
	Resumes       int    // how many times the stream was resumed
	ReadBack      int64  // bytes read back and matched
	SHA256        string // the whole-image SHA256 the stream was proven to decode to (the manifest's), once Verify passed
	ChunksMatch   int
	DirectIO      bool // O_DIRECT was accepted by the target
	WritesIssued  int64
	// ZeroFrames is the number of free-space chunks proven without decoding: their
	// frame was byte for byte one that had decoded to zeros (data proof only).
	ZeroFrames int64
	// PairedChunks is the number of chunks whose data the stream hashed two at a time
	// (two chunks' SHA-256 in one pass, sha256x2.SumPair; data proof only).
	PairedChunks int64
	// Buffers is the number of raw chunk buffers the run allocated: the most it needed
	// at once, at most Options.Buffers (the pool makes them as they are first needed).
	Buffers int
	// Syncs is the number of fsyncs the stream started beside its writes
	// (Options.SyncEvery), its closing one not counted.
	Syncs int64

	// The phases' times: OpenTime from Open's start to its return (the first block
	// zeroed and synced), StreamTime from Stream's start to its return, SyncTime the
	// stream's closing fsync (part of StreamTime), VerifyTime Verify's, NameTime from
	// Device to its Close (first-boot naming), CommitTime Commit's.
	OpenTime, StreamTime, SyncTime, VerifyTime, NameTime, CommitTime time.Duration
}

// proof is how Stream proves the decoded image against the manifest.
type proof int

const (
	proofData       proof = iota // data ranges against data_sha256, the rest must be zeros
	proofChained                 // every byte, from chain value to chain value
	proofSequential              // every byte: per chunk sha256, then the whole image in order
)

// Flasher writes one image onto one target.
type Flasher struct {
	proof proof
	m     *manifest.Manifest
	path  string
	f     *blockdev.File
	opt   Options
	log   *slog.Logger
	head  []byte // chunk 0 as decoded, held back until Commit
	src   Source

	streamed, written, readBack, writes atomic.Int64
	zeroFrameHits, paired               atomic.Int64
	resumes                             atomic.Int64
	// The fsyncs beside the stream's writes (Options.SyncEvery): one in flight at most
	// (syncing), the bytes written when the last one started (syncedAt), how many
	// (syncs), all done (syncWG), the first failure (syncErr, guarded by mu: an fsync
	// reports a write-back error once, so the closing fsync may not see it again).
	syncing         atomic.Bool
	syncedAt, syncs atomic.Int64
	syncWG          sync.WaitGroup
	syncErr         error
	syncTarget      func() error // the target's fsync (fl.f.Sync; tests fail it)
	mu              sync.Mutex
	stats           Stats

	rawBufs    *pool // Stream's raw chunk buffers, aligned (the read-back's too)
	streamDone bool  // Stream wrote and synced every chunk (guarded by mu)
	// The read-back during Stream (nil: Verify reads everything back), its descriptor,
	// the cancel of its context; closed once (endFollow).
	follow     atomic.Pointer[readback.Follower]
	followF    *blockdev.File
	stopFollow context.CancelFunc
	followEnd  sync.Once
	followN    int   // endFollow's result: chunks matched
	followErr  error // and error
	followMu   sync.Mutex
	onCard     []bool        // chunks written (or with nothing to write) so far
	onCardN    int           // every chunk below it is on the card
	handedN    int           // every chunk below it went to the read-back
	lagChunks  int           // ReadBackLag in chunks
	hashDone   chan struct{} // closed when the whole-image hash of Stream is done
	wholeSum   string        // its hex result, "" when the stream was incomplete
	wholeOK    bool          // it matched the manifest

	chain [][sha256chain.Size]byte // the manifest's chaining values (proofChained only)

	zeroMu     sync.Mutex
	zeros      []byte           // ChunkSize zero bytes
	zeroSums   map[int64]string // hex SHA256 of n zero bytes
	zeroFrames []zeroFrame      // frames that decoded to zeros only (at most maxZeroFrames)
}

// zeroFrame is a compressed frame that decoded to n zero bytes.
type zeroFrame struct {
	frame []byte
	n     int64
}

// maxZeroFrames bounds the zero frames a Flasher remembers: a packer compresses every
// all-zero chunk of one length to the same frame, so one or two are all there are.
const maxZeroFrames = 4

// Open opens the target for an image described by m: a regular file is created or
// extended to m.Size; a block device must be at least m.Size bytes. The first 4 KiB of
// the target are zeroed and synced at once, so whatever was there stops being bootable.
func Open(path string, m *manifest.Manifest, opt Options) (*Flasher, error) {
	start := time.Now()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if !blockdev.IsBlockDevice(path) {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open target %q: %w", path, err)
		}
		st, err := f.Stat()
		if err == nil && st.Size() < m.Size {
			err = f.Truncate(m.Size)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("size target %q: %w", path, err)
		}
	}
	flag := os.O_RDWR
	if blockdev.IsBlockDevice(path) {
		flag |= os.O_EXCL // the kernel refuses (EBUSY) a device that is mounted or in use
	}
	f, err := blockdev.Open(path, flag)
	if err != nil {
		return nil, fmt.Errorf("open target %q: %w", path, err)
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, err
	}
	if size < m.Size {
		f.Close()
		return nil, fmt.Errorf("%w: %q has %d bytes, image %q needs %d", ErrTooSmall, path, size, m.Name, m.Size)
	}
	opt = opt.withDefaults(m)
	fl := &Flasher{m: m, path: path, f: f, opt: opt, log: opt.Log}
	fl.syncTarget = f.Sync
	defer func() { fl.stats.OpenTime = time.Since(start) }()
	if fl.log == nil {
		fl.log = slog.New(slog.DiscardHandler)
	}
	if err := fl.chooseProof(); err != nil {
		f.Close()
		return nil, err
	}
	fl.head = blockdev.AlignedBuffer(int(m.ChunkRange(0).Length))
	// Unbootable from now on: zero the first block (the MBR) and make it durable.
	zero := blockdev.AlignedBuffer(blockdev.Align)
	if _, err := f.WriteAt(zero, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: zero the first block of %q: %w", ErrWrite, path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: sync %q: %w", ErrWrite, path, err)
	}
	return fl, nil
}

// withDefaults fills in the documented defaults of the zero fields of opt.
func (opt Options) withDefaults(m *manifest.Manifest) Options {
	if opt.Decoders <= 0 {
		opt.Decoders = runtime.GOMAXPROCS(0)
	}
	if opt.Writers <= 0 {
		opt.Writers = 4
	}
	if opt.ReadBackDepth <= 0 {
		opt.ReadBackDepth = 8
	}
	if opt.Buffers <= 0 {
		opt.Buffers = int((96 << 20) / m.ChunkSize)
	}
	opt.Buffers = max(opt.Buffers, 2*opt.Decoders+opt.Writers+2)
	if opt.MergeGap == 0 {
		opt.MergeGap = 128 << 10
	}
	if opt.ReadBackLag <= 0 {
		opt.ReadBackLag = 64 << 20
	}
	if opt.SyncEvery == 0 {
		opt.SyncEvery = 128 << 20
	}
	return opt
}

// chooseProof picks how Stream proves the image (Options.HashFreeSpace) and reads the
// manifest's chaining values when it needs them.
func (fl *Flasher) chooseProof() error {
	switch {
	case !fl.opt.HashFreeSpace:
		fl.proof = proofData
		return nil
	case !fl.m.HasChain():
		fl.proof = proofSequential
		return nil
	}
	fl.proof = proofChained
	fl.chain = make([][sha256chain.Size]byte, len(fl.m.Chunks)-1)
	for i := range fl.chain {
		var err error
		if fl.chain[i], err = sha256chain.Parse(fl.m.Chunks[i].Chain); err != nil {
			return fmt.Errorf("%w: chunk %d: %w", manifest.ErrInvalid, i, err)
		}
	}
	return nil
}

// Close releases the target. It does not commit.
func (fl *Flasher) Close() error {
	fl.abortFollow()
	fl.syncWG.Wait()
	return fl.f.Close()
}

// Manifest is the image being written.
func (fl *Flasher) Manifest() *manifest.Manifest { return fl.m }

// Stats returns the counters so far; safe to call from any goroutine.
func (fl *Flasher) Stats() Stats {
	fl.mu.Lock()
	s := fl.stats
	fl.mu.Unlock()
	s.Streamed, s.Written, s.ReadBack = fl.streamed.Load(), fl.written.Load(), fl.readBack.Load()
	if fo := fl.follow.Load(); fo != nil {
		s.ReadBack = fo.Done()
	}
	s.WritesIssued, s.Resumes = fl.writes.Load(), int(fl.resumes.Load())
	s.ZeroFrames, s.PairedChunks, s.Syncs = fl.zeroFrameHits.Load(), fl.paired.Load(), fl.syncs.Load()
	if fl.rawBufs != nil {
		s.Buffers = fl.rawBufs.allocated()
	}
	s.DirectIO = fl.f.Direct()
	if hs, ok := fl.src.(interface{ Fetched() int64 }); ok {
		s.Fetched = hs.Fetched()
	}
	return s
}

type work struct {
	i    int
	comp []byte // compressed frame (nil after decoding)
	raw  []byte // decoded chunk, aligned
	err  error  // decode or hash failure of this chunk
	zero bool   // the chunk decoded to zeros (raw is not needed to hash it)
	// data, with the data proof, are the chunk's bytes inside its data ranges, decoded
	// and still to be hashed against data_sha256 (proveData); nil once proven.
	data [][]byte
	// next is the following chunk, fetched with this one so that one decoder hashes
	// both chunks' data in one pass (fetch pairs chunks with data under the data proof).
	next *work
	refs atomic.Int32
}

// Stream fetches, decodes, verifies and writes every chunk but chunk 0 (held back). It
// stops at the first chunk whose bytes do not match the manifest and names it
// (*readback.ChunkError). It returns when every write is done and synced; with
// Options.HashFreeSpace on a manifest without chaining values the whole-image SHA256,
// fed in chunk order beside the writes, may still be finishing: Verify waits for it and
// checks it, and Commit refuses to run before the image was proven.
func (fl *Flasher) Stream(ctx context.Context, src Source) error {
	start := time.Now()
	fl.src = src
	dec, err := newDecoder(fl.m, fl.opt.Decoders)
	if err != nil {
		return err
	}
	defer dec.Close()
	fl.startFollow()
	p := fl.newPipeline()
	err = p.run(ctx, src, dec)
	fl.syncWG.Wait() // the writes are done: so are the fsyncs beside them
	if err == nil {
		fl.mu.Lock()
		if fl.syncErr != nil {
			err = fmt.Errorf("%w: sync %q: %w", ErrWrite, fl.path, fl.syncErr)
		}
		fl.mu.Unlock()
	}
	fl.endStream(err)
	if err != nil {
		fl.abortFollow()
		<-fl.hashDone
		return err
	}
	syncStart := time.Now()
	if err := fl.syncTarget(); err != nil {
		fl.abortFollow()
		return fmt.Errorf("%w: sync %q: %w", ErrWrite, fl.path, err)
	}
	fl.handOverRest()
	fl.mu.Lock()
	fl.streamDone = true
	fl.stats.StreamTime, fl.stats.StreamWritten = time.Since(start), fl.written.Load()
	fl.stats.SyncTime = time.Since(syncStart)
	if fo := fl.follow.Load(); fo != nil {
		fl.stats.ReadBackInStream = fo.Done()
	}
	fl.mu.Unlock()
	return nil
}

// startFollow starts the read-back of Stream's chunks as they are written, when both
// the target's descriptor and a second, read-only one bypass the page cache: then every
// check reads what the card returns, while the next chunks are being written. On a
// target without O_DIRECT the read-back waits for Verify (after the stream is synced,
// the page cache dropped).
func (fl *Flasher) startFollow() {
	if !fl.f.Direct() || !fl.opt.ReadBackDuringStream {
		return
	}
	rf, err := blockdev.Open(fl.path, os.O_RDONLY)
	if err != nil {
		fl.log.Warn("no second descriptor for the read-back during the stream; reading back after it", "err", err)
		return
	}
	if !rf.Direct() {
		rf.Close()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	fl.followF, fl.stopFollow = rf, cancel
	fl.onCard = make([]bool, len(fl.m.Chunks))
	fl.lagChunks = int((fl.opt.ReadBackLag + fl.m.ChunkSize - 1) / fl.m.ChunkSize)
	fl.follow.Store(readback.NewFollower(ctx, rf, fl.m, readback.Options{Skip: func(i int) bool { return i == 0 }}))
}

// onCardNow records that chunk i is on the card (written, or held back or free space:
// nothing to write) and hands the chunks that the stream has now gone ReadBackLag past
// to the read-back. Without a read-back during the stream it does nothing.
func (fl *Flasher) onCardNow(i int) {
	fo := fl.follow.Load()
	if fo == nil {
		return
	}
	fl.followMu.Lock()
	defer fl.followMu.Unlock()
	fl.onCard[i] = true
	for fl.onCardN < len(fl.onCard) && fl.onCard[fl.onCardN] {
		fl.onCardN++
	}
	fl.handOver(fo, fl.onCardN-fl.lagChunks)
}

// handOver gives the chunks below end that are on the card to the read-back, in order.
// Called with followMu held.
func (fl *Flasher) handOver(fo *readback.Follower, end int) {
	for ; fl.handedN < min(end, fl.onCardN); fl.handedN++ {
		fo.Add(fl.handedN) // chunk 0 and free space are left out by Add
	}
}

// handOverRest gives every chunk still waiting for the lag to the read-back: the
// stream is written and synced.
func (fl *Flasher) handOverRest() {
	if fo := fl.follow.Load(); fo != nil {
		fl.followMu.Lock()
		fl.handOver(fo, len(fl.onCard))
		fl.followMu.Unlock()
	}
}

// abortFollow stops the read-back of a stream that failed.
func (fl *Flasher) abortFollow() {
	if fl.follow.Load() != nil {
		fl.stopFollow()
		fl.endFollow()
	}
}

// endFollow closes the read-back during the stream (once) and returns its result.
func (fl *Flasher) endFollow() (int, error) {
	fl.followEnd.Do(func() {
		fl.followN, fl.followErr = fl.follow.Load().Close()
		fl.followF.Close()
	})
	return fl.followN, fl.followErr
}

// newDecoder is zstimg.NewDecoder without the frames' xxhash64 checks: every chunk is
// proven by SHA-256, so they would only cost time.
func newDecoder(m *manifest.Manifest, decoders int) (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(decoders),
		zstd.WithDecoderMaxMemory(uint64(m.ChunkSize)),
		zstd.WithDecoderMaxWindow(max(uint64(m.ChunkSize), zstd.MinWindowSize)),
		zstd.IgnoreChecksum(true))
}

// pipeline is one Stream's stages and the channels between them:
//
//	fetch → decCh → decoders → orderCh → order → writeCh → writers
//	                                           ↘ hashCh → hashWhole (sequential proof only)
type pipeline struct {
	fl       *Flasher
	compBufs *pool // compressed frame buffers
	decCh    chan *work
	orderCh  chan *work
	writeCh  chan *work
	hashCh   chan *work // nil unless the sequential whole-image hash runs
}

// newPipeline sets up the buffer pools (buffers are allocated as the stages first need
// them) and, for the sequential proof, starts the whole-image hash (which outlives
// Stream when it lags; Verify collects it).
func (fl *Flasher) newPipeline() *pipeline {
	m, opt := fl.m, fl.opt
	fl.rawBufs = newPool(opt.Buffers, func() []byte { return blockdev.AlignedBuffer(int(m.ChunkSize)) })
	p := &pipeline{
		fl: fl,
		// each decoder takes two frames at a time
		compBufs: newPool(2*(opt.Decoders+1), func() []byte { return make([]byte, 0, m.ChunkSize+m.ChunkSize/64+4096) }),
		decCh:    make(chan *work, opt.Decoders),
		orderCh:  make(chan *work, opt.Buffers),
		writeCh:  make(chan *work, opt.Buffers), // the raw buffers bound these two
	}
	fl.hashDone = make(chan struct{})
	if fl.proof == proofSequential {
		p.hashCh = make(chan *work, len(m.Chunks)) // zero chunks wait here without a buffer
		go fl.hashWhole(p.hashCh, fl.release)
	}
	return p
}

// release drops one reference to w's raw buffer; the last returns it to the pool.
func (fl *Flasher) release(w *work) {
	if w.refs.Add(-1) == 0 {
		fl.rawBufs.put(w.raw)
	}
}

// run runs the stages until every chunk is written or one fails.
func (p *pipeline) run(ctx context.Context, src Source, dec *zstd.Decoder) error {
	fl := p.fl
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { defer close(p.decCh); return fl.fetch(ctx, src, p.compBufs, fl.rawBufs, p.decCh) })
	var decWG sync.WaitGroup
	for range fl.opt.Decoders {
		decWG.Add(1)
		g.Go(func() error { defer decWG.Done(); return p.decodeLoop(ctx, dec) })
	}
	go func() { decWG.Wait(); close(p.orderCh) }()
	g.Go(func() error {
		defer close(p.writeCh)
		if p.hashCh != nil {
			defer close(p.hashCh)
		}
		return fl.order(ctx, p.orderCh, p.writeCh, p.hashCh)
	})
	lim := newLimiter(fl.opt.WriteRateLimit)
	for range fl.opt.Writers {
		g.Go(func() error { return p.writeLoop(ctx, lim) })
	}
	return g.Wait()
}

// decodeLoop decodes and proves frames from decCh and passes them on to the order
// stage. A work that comes with the next chunk's (w.next: two chunks with data, under
// the data proof) has both chunks' data hashed in one pass (sha256x2.SumPair).
func (p *pipeline) decodeLoop(ctx context.Context, dec *zstd.Decoder) error {
	fl := p.fl
	pass := func(w *work) error {
		select {
		case p.orderCh <- w:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for w := range p.decCh {
		x := w.next
		w.next = nil
		p.decode(dec, w)
		if x != nil {
			p.decode(dec, x)
		}
		switch {
		case w.data != nil && x != nil && x.data != nil:
			fl.proveData(w, x)
		case w.data != nil:
			fl.proveData(w, nil)
		case x != nil && x.data != nil:
			fl.proveData(x, nil)
		}
		if err := pass(w); err != nil {
			return err
		}
		if x != nil {
			if err := pass(x); err != nil {
				return err
			}
		}
	}
	return nil
}

// decode decodes w's frame, unless fetch proved it zeros already, and gives its
// compressed buffer back.
func (p *pipeline) decode(dec *zstd.Decoder, w *work) {
	if !w.zero {
		p.fl.decode(dec, w)
	}
	p.compBufs.put(w.comp[:0])
	w.comp = nil
}

// writeLoop writes the chunks from writeCh to the target.
func (p *pipeline) writeLoop(ctx context.Context, lim *limiter) error {
	fl := p.fl
	for w := range p.writeCh {
		if err := fl.write(ctx, w, lim); err != nil {
			return err
		}
		fl.streamed.Add(fl.m.ChunkRange(w.i).Length)
		fl.release(w)
		fl.onCardNow(w.i)
	}
	return nil
}

// endStream records the whole-image result of a stream that ended with err, unless the
// sequential hash records it itself. The chained and the data proof are complete when
// every chunk passed.
func (fl *Flasher) endStream(err error) {
	if fl.proof == proofSequential {
		return
	}
	if err == nil {
		fl.wholeSum = fl.m.SHA256
	}
	close(fl.hashDone)
}

// hashWhole feeds the chunks from in, in order, to the whole-image SHA256 and records
// its hex result in wholeSum when every chunk came.
func (fl *Flasher) hashWhole(in <-chan *work, release func(*work)) {
	defer close(fl.hashDone)
	m := fl.m
	whole := sha256.New()
	n := 0
	for w := range in {
		if w.zero {
			whole.Write(fl.zeros[:m.ChunkRange(w.i).Length])
		} else {
			whole.Write(w.raw[:m.ChunkRange(w.i).Length])
			release(w)
		}
		n++
	}
	if n == len(m.Chunks) {
		fl.wholeSum = hex.EncodeToString(whole.Sum(nil))
	}
}

// checkWhole waits for the whole-image hash of Stream and compares it with the
// manifest.
func (fl *Flasher) checkWhole(ctx context.Context) error {
	if fl.hashDone == nil {
		return errors.New("image not streamed")
	}
	select {
	case <-fl.hashDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	if fl.wholeSum != fl.m.SHA256 {
		return fmt.Errorf("%w: image sha256 %s, manifest says %s", readback.ErrMismatch, fl.wholeSum, fl.m.SHA256)
	}
	fl.mu.Lock()
	fl.stats.SHA256 = fl.wholeSum
	fl.mu.Unlock()
	fl.wholeOK = true
	return nil
}

// fetch reads frame after frame into compressed buffers, pairing each with a raw
// buffer taken in chunk order (so the chunk the order stage waits for always has
// one). A broken stream is reopened at the frame of the first chunk not yet received.
// A free-space chunk whose frame is one known to decode to zeros (knownZeroFrame) is
// proven here and takes no raw buffer.
// Under the data proof a chunk with data whose successor has data too waits for it, and
// both go out as one work (work.next): one decoder hashes the two in one pass.
func (fl *Flasher) fetch(ctx context.Context, src Source, comps, raws *pool, out chan<- *work) error {
	m := fl.m
	hasData := func(i int) bool { return i < len(m.Chunks) && m.Chunks[i].DataSHA256 != "" }
	var held *work // a chunk waiting for its successor
	var body io.ReadCloser
	defer func() {
		if body != nil {
			body.Close()
		}
	}()
	r := fl.opt.Retry.Start()
	limit := m.ChunkSize + m.ChunkSize/8 + 1<<20 // far above zstd's worst case
	for i, c := range m.Chunks {
		if c.FrameSize > limit {
			return fmt.Errorf("%w: chunk %d: frame of %d bytes for a %d-byte chunk", manifest.ErrInvalid, i, c.FrameSize, m.ChunkSize)
		}
		comp, err := comps.get(ctx)
		if err != nil {
			return err
		}
		if int64(cap(comp)) < c.FrameSize {
			comp = make([]byte, 0, c.FrameSize)
		}
		comp = comp[:c.FrameSize]
		for {
			var err error
			if body == nil {
				body, err = src.Open(ctx, c.Frame)
			}
			if err == nil {
				var n int
				n, err = io.ReadFull(body, comp)
				if err == nil {
					break
				}
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					err = fmt.Errorf("%w at compressed byte %d (chunk %d, %d of its %d frame bytes): %w",
						ErrTruncated, c.Frame+int64(n), i, n, c.FrameSize, err)
				}
				body.Close()
				body = nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, ErrPermanent) {
				return fmt.Errorf("fetch chunk %d: %w", i, err)
			}
			fl.log.Warn("image stream broke; resuming", "chunk", i, "frame", c.Frame, "err", err, "retry", r.Attempts()+1)
			if werr := r.Wait(ctx, 0, err); werr != nil {
				return fmt.Errorf("fetch chunk %d: %w", i, werr)
			}
			fl.resumes.Add(1)
		}
		if r.Attempts() > 0 {
			r.Reset()
		}
		w, err := fl.newWork(ctx, i, comp, raws)
		if err != nil {
			return err
		}
		switch {
		case held != nil:
			held.next, w = w, held
			held = nil
		case pairFrames && fl.proof == proofData && hasData(i) && hasData(i+1):
			held = w
			continue
		}
		select {
		case out <- w:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// newWork pairs chunk i's frame comp with a raw buffer from raws, unless the frame is
// one known to decode to zeros (knownZeroFrame): that chunk is proven and needs none.
func (fl *Flasher) newWork(ctx context.Context, i int, comp []byte, raws *pool) (*work, error) {
	w := &work{i: i, comp: comp}
	if fl.proof == proofData && fl.free(i) && fl.knownZeroFrame(comp, fl.m.ChunkRange(i).Length) {
		fl.zeroFrameHits.Add(1)
		w.zero = true
		return w, nil
	}
	var err error
	w.raw, err = raws.get(ctx)
	return w, err
}

// pairFrames says whether fetch pairs chunks with data for the decoders: where SHA-256
// has a two-lane kernel (sha256x2.TwoLanes), which makes two hashes in one pass cheaper
// than two. Tests turn it off to run the other path.
var pairFrames = sha256x2.TwoLanes()

// decode turns w.comp into w.raw and checks the chunk's length and SHA256; failures
// go in w.err for the order stage to report in chunk order. A chunk with no data
// ranges is free space, all zeros: when the manifest's hash is that of zeros, a
// comparison with zeros stands in for hashing it (the whole-image hash still sees it).
func (fl *Flasher) decode(dec *zstd.Decoder, w *work) {
	cr := fl.m.ChunkRange(w.i)
	switch fl.proof {
	case proofData:
		fl.decodeData(dec, w)
		return
	case proofChained:
		fl.decodeChained(dec, w)
		return
	}
	if c := fl.m.Chunks[w.i]; c.DataSHA256 == "" && c.SHA256 == fl.zeroSHA256(cr.Length) {
		out, err := dec.DecodeAll(w.comp, w.raw[:0])
		if err == nil && int64(len(out)) == cr.Length && &out[0] == &w.raw[0] && bytes.Equal(out, fl.zeros[:cr.Length]) {
			w.zero = true
			return
		}
	}
	out, err := zstimg.DecodeChunk(dec, fl.m, w.i, w.comp, w.raw)
	if err != nil {
		w.err = &readback.ChunkError{Chunk: w.i, Offset: cr.Offset, Err: err}
		return
	}
	if &out[0] != &w.raw[0] {
		copy(w.raw, out)
	}
}

// decodeData decodes chunk w.i for the data proof: every byte outside the data ranges
// must be zero (a comparison, not a hash), and the bytes inside them, in order, are
// left in w.data for proveData to hash against the chunk's data_sha256. A chunk without
// data ranges is zeros only: it is marked zero, so that its buffer returns to the pool
// at once.
func (fl *Flasher) decodeData(dec *zstd.Decoder, w *work) {
	m := fl.m
	cr := m.ChunkRange(w.i)
	c := m.Chunks[w.i]
	fail := func(err error) { w.err = &readback.ChunkError{Chunk: w.i, Offset: cr.Offset, Err: err} }
	free := fl.free(w.i)
	out, err := dec.DecodeAll(w.comp, w.raw[:0])
	if err != nil {
		fail(fmt.Errorf("chunk %d: decode frame at %d (%d bytes): %w", w.i, c.Frame, c.FrameSize, err))
		return
	}
	if int64(len(out)) != cr.Length {
		fail(fmt.Errorf("%w: chunk %d: frame at %d decodes to %d bytes, want %d", zstimg.ErrMismatch, w.i, c.Frame, len(out), cr.Length))
		return
	}
	if &out[0] != &w.raw[0] {
		copy(w.raw, out)
	}
	raw := w.raw[:cr.Length]
	var data [][]byte
	at := cr.Offset // the first byte not yet proven
	for _, r := range m.DataIn(cr) {
		if off, ok := fl.allZero(raw[at-cr.Offset : r.Offset-cr.Offset]); !ok {
			fail(fmt.Errorf("%w: chunk %d: free-space byte %d decodes to non-zero", zstimg.ErrMismatch, w.i, at+off))
			return
		}
		data = append(data, raw[r.Offset-cr.Offset:r.End()-cr.Offset])
		at = r.End()
	}
	if off, ok := fl.allZero(raw[at-cr.Offset:]); !ok {
		fail(fmt.Errorf("%w: chunk %d: free-space byte %d decodes to non-zero", zstimg.ErrMismatch, w.i, at+off))
		return
	}
	if c.DataSHA256 == "" {
		w.zero = true
		if free {
			fl.rememberZeroFrame(w.comp, cr.Length)
		}
		return
	}
	if data == nil {
		data = [][]byte{} // data_sha256 without data ranges: the hash of nothing
	}
	w.data = data
}

// proveData hashes the data that decodeData left in w (and in x, if not nil: both in
// one pass) and compares each with its chunk's data_sha256; a mismatch goes in the
// chunk's err.
func (fl *Flasher) proveData(w, x *work) {
	var sums [2][sha256.Size]byte
	ws := []*work{w}
	if x == nil {
		h := sha256.New()
		for _, p := range w.data {
			h.Write(p)
		}
		h.Sum(sums[0][:0])
	} else {
		ws = append(ws, x)
		sums[0], sums[1] = sha256x2.SumPair(w.data, x.data)
		fl.paired.Add(2)
	}
	for k, w := range ws {
		w.data = nil
		c, cr := fl.m.Chunks[w.i], fl.m.ChunkRange(w.i)
		if got := hex.EncodeToString(sums[k][:]); got != c.DataSHA256 {
			w.err = &readback.ChunkError{Chunk: w.i, Offset: cr.Offset,
				Err: fmt.Errorf("%w: chunk %d (raw [%d,+%d)): data sha256 %s, manifest says %s", zstimg.ErrMismatch, w.i, cr.Offset, cr.Length, got, c.DataSHA256)}
		}
	}
}

// free reports whether chunk i is free space only: no data ranges, no data_sha256.
func (fl *Flasher) free(i int) bool {
	return fl.m.Chunks[i].DataSHA256 == "" && len(fl.m.DataIn(fl.m.ChunkRange(i))) == 0
}

// knownZeroFrame reports whether frame is, byte for byte, a frame that has decoded to
// n zero bytes before. Frames are independent (no dictionary, no shared history), so
// decoding is a function of the frame's bytes alone: the same frame decodes to the same
// zeros again, and the chunk is proven without decoding it. A frame that differs in
// any byte is decoded and checked.
func (fl *Flasher) knownZeroFrame(frame []byte, n int64) bool {
	fl.zeroMu.Lock()
	defer fl.zeroMu.Unlock()
	for _, z := range fl.zeroFrames {
		if z.n == n && bytes.Equal(z.frame, frame) {
			return true
		}
	}
	return false
}

// rememberZeroFrame records a frame that was decoded and found to be n zero bytes.
func (fl *Flasher) rememberZeroFrame(frame []byte, n int64) {
	fl.zeroMu.Lock()
	defer fl.zeroMu.Unlock()
	for _, z := range fl.zeroFrames {
		if z.n == n && bytes.Equal(z.frame, frame) {
			return // two decoders proved the same frame at once
		}
	}
	if len(fl.zeroFrames) < maxZeroFrames && len(frame) <= 64<<10 {
		fl.zeroFrames = append(fl.zeroFrames, zeroFrame{frame: bytes.Clone(frame), n: n})
	}
}

// allZero reports whether p (at most ChunkSize bytes) is all zeros; if not, the offset
// of its first non-zero byte.
func (fl *Flasher) allZero(p []byte) (int64, bool) {
	if bytes.Equal(p, fl.zeroBytes()[:len(p)]) {
		return 0, true
	}
	return int64(slices.IndexFunc(p, func(b byte) bool { return b != 0 })), false
}

// decodeChained decodes chunk w.i and hashes it from the previous chunk's chaining
// value (the SHA-256 initial value for chunk 0): the state it ends in must be the
// chunk's own chaining value, and for the last chunk the Sum must be the whole image's
// SHA256. Free space is hashed like the rest: it is part of the whole-image hash.
func (fl *Flasher) decodeChained(dec *zstd.Decoder, w *work) {
	m := fl.m
	cr := m.ChunkRange(w.i)
	fail := func(err error) { w.err = &readback.ChunkError{Chunk: w.i, Offset: cr.Offset, Err: err} }
	out, err := dec.DecodeAll(w.comp, w.raw[:0])
	if err != nil {
		fail(fmt.Errorf("chunk %d: decode frame at %d (%d bytes): %w", w.i, m.Chunks[w.i].Frame, m.Chunks[w.i].FrameSize, err))
		return
	}
	if int64(len(out)) != cr.Length {
		fail(fmt.Errorf("%w: chunk %d: frame at %d decodes to %d bytes, want %d", zstimg.ErrMismatch, w.i, m.Chunks[w.i].Frame, len(out), cr.Length))
		return
	}
	if &out[0] != &w.raw[0] {
		copy(w.raw, out)
	}
	from := sha256chain.Initial()
	if w.i > 0 {
		from = fl.chain[w.i-1]
	}
	h, err := sha256chain.Resume(from, cr.Offset)
	if err != nil {
		fail(err)
		return
	}
	h.Write(w.raw[:cr.Length])
	if w.i == len(m.Chunks)-1 {
		if got := hex.EncodeToString(h.Sum(nil)); got != m.SHA256 {
			fail(fmt.Errorf("%w: chunk %d (raw [%d,+%d)), the last: image sha256 %s, manifest says %s", zstimg.ErrMismatch, w.i, cr.Offset, cr.Length, got, m.SHA256))
			return
		}
		return
	}
	st, err := sha256chain.State(h, cr.End())
	if err != nil {
		fail(err)
		return
	}
	if st != fl.chain[w.i] {
		fail(fmt.Errorf("%w: chunk %d (raw [%d,+%d)): sha256 chain %s, manifest says %s", zstimg.ErrMismatch, w.i, cr.Offset, cr.Length, sha256chain.Hex(st), m.Chunks[w.i].Chain))
	}
}

// zeroBytes is ChunkSize zero bytes, allocated once.
func (fl *Flasher) zeroBytes() []byte {
	fl.zeroMu.Lock()
	defer fl.zeroMu.Unlock()
	if fl.zeros == nil {
		fl.zeros = make([]byte, fl.m.ChunkSize)
	}
	return fl.zeros
}

// zeroSHA256 is the hex SHA256 of n zero bytes (n ≤ ChunkSize), computed once per n.
func (fl *Flasher) zeroSHA256(n int64) string {
	fl.zeroBytes()
	fl.zeroMu.Lock()
	defer fl.zeroMu.Unlock()
	if fl.zeroSums == nil {
		fl.zeroSums = map[int64]string{}
	}
	s, ok := fl.zeroSums[n]
	if !ok {
		sum := sha256.Sum256(fl.zeros[:n])
		s = hex.EncodeToString(sum[:])
		fl.zeroSums[n] = s
	}
	return s
}

// order releases chunks in sequence, stopping at the first bad one: every chunk goes
// to the whole-image hash (unless toHash is nil: chained chunks were hashed whole by
// their decoder), chunks with data also to the writers (chunk 0 is copied aside
// instead: it is held back). A buffer returns to the pool when both are done.
func (fl *Flasher) order(ctx context.Context, in <-chan *work, toWrite, toHash chan<- *work) error {
	pending := map[int]*work{}
	next := 0
	send := func(ch chan<- *work, w *work) error {
		select {
		case ch <- w:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for w := range in {
		pending[w.i] = w
		for {
			w, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			if w.err != nil {
				return w.err
			}
			n := fl.m.ChunkRange(w.i).Length
			write := w.i != 0 && fl.m.Chunks[w.i].DataSHA256 != ""
			if w.i == 0 {
				copy(fl.head, w.raw[:n])
			}
			refs := int32(1) // the writer
			if toHash != nil {
				refs = 2 // and the whole-image hash
			}
			if !write {
				refs--
				fl.streamed.Add(n) // held back or free space: nothing to write
				fl.onCardNow(w.i)
			}
			w.refs.Store(refs)
			if refs == 0 {
				fl.rawBufs.put(w.raw)
				next++
				continue
			}
			if w.zero {
				// Zeros need no buffer to be hashed: free it now, so that the
				// whole-image hash may lag behind (over trailing free space, say)
				// without holding the stream up.
				fl.rawBufs.put(w.raw)
				w = &work{i: w.i, zero: true}
			}
			if toHash != nil {
				if err := send(toHash, w); err != nil {
					return err
				}
			}
			if write {
				if err := send(toWrite, w); err != nil {
					return err
				}
			}
			next++
		}
	}
	if next != len(fl.m.Chunks) {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fmt.Errorf("%w: %d of %d chunks", ErrTruncated, next, len(fl.m.Chunks))
	}
	return nil
}

// writeRanges returns the writes for chunk i: its data ranges, neighbours merged when
// the free space between them is at most gap bytes.
func writeRanges(m *manifest.Manifest, i int, gap int64) []manifest.Range {
	rs := m.DataIn(m.ChunkRange(i))
	if gap < 0 || len(rs) < 2 {
		return rs
	}
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.Offset-last.End() <= gap {
			last.Length = r.End() - last.Offset
		} else {
			out = append(out, r)
		}
	}
	return out
}

func (fl *Flasher) write(ctx context.Context, w *work, lim *limiter) error {
	cr := fl.m.ChunkRange(w.i)
	for _, r := range writeRanges(fl.m, w.i, fl.opt.MergeGap) {
		if err := lim.wait(ctx, r.Length); err != nil {
			return err
		}
		p := w.raw[r.Offset-cr.Offset : r.End()-cr.Offset]
		n, err := fl.f.WriteAt(p, r.Offset)
		fl.writes.Add(1)
		fl.syncBeside(fl.written.Add(int64(n)))
		if err == nil && n != len(p) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return fmt.Errorf("%w: chunk %d: write [%d,+%d) to %q: %w", ErrWrite, w.i, r.Offset, r.Length, fl.path, err)
		}
	}
	return nil
}

// Verify reads back every written chunk (all but chunk 0) with O_DIRECT and compares
// it with the manifest's data hashes, Options.ReadBackDepth chunks at once; then it
// checks the whole-image SHA256 of the stream. With Options.ReadBackDuringStream on an
// O_DIRECT target the read-back began during Stream: Verify waits for the rest of it.
// It refuses to run before Stream has written and synced every chunk. progress may be
// nil.
func (fl *Flasher) Verify(ctx context.Context, progress func(done, total int64)) (int, error) {
	fl.mu.Lock()
	done := fl.streamDone
	fl.mu.Unlock()
	if !done {
		return 0, errors.New("verify before a complete stream: nothing to read back")
	}
	start := time.Now()
	var n int
	var err error
	if fo := fl.follow.Load(); fo != nil {
		n, err = fl.waitFollow(ctx, fo, progress)
	} else {
		n, err = fl.readBackAll(ctx, progress)
	}
	fl.mu.Lock()
	fl.stats.VerifyTime, fl.stats.ChunksMatch = time.Since(start), n
	fl.mu.Unlock()
	if err != nil {
		return n, fmt.Errorf("read back %q: %w", fl.path, err)
	}
	return n, fl.checkWhole(ctx)
}

// waitFollow waits for the read-back that Stream started and returns its result; if
// its descriptor had to give up O_DIRECT on the way (the kernel refused a direct read),
// some checks may have read the page cache, and everything is read back again.
func (fl *Flasher) waitFollow(ctx context.Context, fo *readback.Follower, progress func(done, total int64)) (int, error) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	total := fo.Total()
	ended := make(chan struct{})
	go func() { fl.endFollow(); close(ended) }()
	cancelled := ctx.Done()
wait:
	for {
		if progress != nil {
			progress(fo.Done(), total)
		}
		select {
		case <-ended:
			break wait
		case <-tick.C:
		case <-cancelled:
			fl.stopFollow()
			cancelled = nil
		}
	}
	n, err := fl.endFollow()
	direct := fl.followF.Direct() // its readers are done
	if err == nil && progress != nil {
		progress(fo.Done(), total)
	}
	if err == nil && !direct {
		return fl.readBackAll(ctx, progress)
	}
	return n, err
}

// Commit writes the held-back chunk 0 (as first-boot naming may have changed it),
// syncs, and reads it back with O_DIRECT to compare. After Commit the target boots.
func (fl *Flasher) Commit() error {
	start := time.Now()
	defer func() {
		fl.mu.Lock()
		fl.stats.CommitTime = time.Since(start)
		fl.mu.Unlock()
	}()
	if !fl.wholeOK {
		return errors.New("commit before Verify: the image is not verified")
	}
	n, err := fl.f.WriteAt(fl.head, 0)
	if err == nil && n != len(fl.head) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("%w: write chunk 0 to %q: %w", ErrWrite, fl.path, err)
	}
	fl.written.Add(int64(n))
	if err := fl.f.Sync(); err != nil {
		return fmt.Errorf("%w: sync %q: %w", ErrWrite, fl.path, err)
	}
	back := blockdev.AlignedBuffer(len(fl.head))
	rf, err := blockdev.Open(fl.path, os.O_RDONLY)
	if err != nil {
		return err
	}
	defer rf.Close()
	if got, err := rf.ReadAt(back, 0); got != len(back) {
		return fmt.Errorf("read back chunk 0 of %q: %d bytes: %w", fl.path, got, err)
	}
	if !bytes.Equal(back, fl.head) {
		return &readback.ChunkError{Chunk: 0, Err: fmt.Errorf("%w: chunk 0 reads back different from what was written", readback.ErrMismatch)}
	}
	return nil
}

// Uncommit zeroes the target's first 4 KiB again and syncs: the card stops being
// bootable (for a result the server never received).
func (fl *Flasher) Uncommit() error {
	if _, err := fl.f.WriteAt(blockdev.AlignedBuffer(blockdev.Align), 0); err != nil {
		return fmt.Errorf("%w: zero the first block of %q: %w", ErrWrite, fl.path, err)
	}
	if err := fl.f.Sync(); err != nil {
		return fmt.Errorf("%w: sync %q: %w", ErrWrite, fl.path, err)
	}
	return nil
}

// syncBeside starts an fsync of the target beside the writes when the stream has
// written Options.SyncEvery bytes since the last one started and none is in flight.
// written is the stream's byte count so far.
func (fl *Flasher) syncBeside(written int64) {
	if fl.opt.SyncEvery < 0 || written-fl.syncedAt.Load() < fl.opt.SyncEvery || !fl.syncing.CompareAndSwap(false, true) {
		return
	}
	fl.syncedAt.Store(written)
	fl.syncs.Add(1)
	fl.syncWG.Add(1)
	go func() {
		defer fl.syncWG.Done()
		if err := fl.syncTarget(); err != nil {
			fl.mu.Lock()
			if fl.syncErr == nil {
				fl.syncErr = err
			}
			fl.mu.Unlock()
		}
		fl.syncing.Store(false)
	}()
}

// limiter spaces writes so that they average at most rate bytes per second.
type limiter struct {
	mu    sync.Mutex
	rate  float64
	start time.Time
	sent  float64
}

func newLimiter(rate float64) *limiter { return &limiter{rate: rate} }

func (l *limiter) wait(ctx context.Context, n int64) error {
	if l.rate <= 0 {
		return nil
	}
	l.mu.Lock()
	if l.start.IsZero() {
		l.start = time.Now()
	}
	l.sent += float64(n)
	at := l.start.Add(time.Duration(l.sent / l.rate * float64(time.Second)))
	l.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
