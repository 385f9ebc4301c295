// Package pack turns a master image into a packed image: NAME.img.zst, one independent
// zstd frame per chunk, and NAME.manifest.json beside it (see package manifest and
// docs/manifest.md).
//
// Chunks are read, hashed and compressed on several goroutines and written in order;
// the hashes that need every byte in order (of the output file and of the whole
// image, with each chunk's) run in one loop on one goroutine, beside the compressors.
// Bytes outside the data ranges (free space of the file systems) are never read: they
// go into the stream as zeros, so deleted data on a used master card costs nothing and
// the hashes describe exactly what a writer of the stream produces.
package pack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
	"github.com/rpi-deploy/rpi-deploy/image-tools/bmap"
	"github.com/rpi-deploy/rpi-deploy/image-tools/imgfile"
	"github.com/rpi-deploy/rpi-deploy/image-tools/internal/ordered"
	"github.com/rpi-deploy/rpi-deploy/image-tools/layout"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/progress"
	"github.com/rpi-deploy/rpi-deploy/image-tools/sha256chain"
	"github.com/rpi-deploy/rpi-deploy/image-tools/zstimg"
	"github.com/rpi-deploy/rpi-deploy/internal/sha256x2"
)

// DefaultLevel is the zstd level used when Options.Level is 0.
const DefaultLevel = 3

// Suffix is the file name ending of a packed image.
const Suffix = ".img.zst"

// ErrExists is returned when the output (or its manifest) exists and Force is not set.
var ErrExists = errors.New("output exists (use --force to replace it)")

// Options say what to pack and how. Input and Output are required; every other zero
// value means the documented default.
type Options struct {
	// Input is a raw image, a block device, or an xz, gzip or zstd compressed image
	// (recognised by content, not name).
	Input string
	// Output is the packed image path; it must end in ".img.zst". The manifest goes
	// beside it (manifest.PathFor).
	Output string
	// Name is the image name in the manifest; default: Output's base name without
	// ".img.zst".
	Name string
	// ChunkSize is the raw bytes per chunk and frame, a multiple of manifest.BlockSize;
	// default manifest.DefaultChunkSize (4 MiB).
	ChunkSize int64
	// Level is the zstd level 1–22 (mapped to the nearest klauspost level: 1–2 fastest,
	// 3–5 default, 6–9 better, 10+ best); default 3.
	Level int
	// Concurrency is the number of chunks compressed at once; default GOMAXPROCS.
	Concurrency int
	// Bmap, if set, is a bmaptool .bmap file whose mapped blocks are used as the data
	// ranges instead of the ranges found from the file systems. Its range checksums
	// (sha256) must match the input.
	Bmap string
	// Progress, if set, receives a progress bar (on a terminal) or periodic lines.
	Progress io.Writer
	// Force replaces an existing output and manifest.
	Force bool
	// TempDir holds the decompressed copy of a compressed input; default: the output's
	// directory.
	TempDir string
	// Raw accepts an input without a partition table (a bare file system or opaque
	// data), packed whole as data. Without it such an input is refused with
	// ErrNoTable: a card image always has one, so its absence means a wrong file.
	Raw bool
}

// ErrNoTable is returned for an input without a partition table when Options.Raw is
// not set.
var ErrNoTable = errors.New("no partition table (no 0x55AA signature in sector 0); pack it anyway with --raw")

func (o *Options) setDefaults() error {
	if o.Input == "" {
		return errors.New("no input image given")
	}
	if !strings.HasSuffix(o.Output, Suffix) || len(filepath.Base(o.Output)) == len(Suffix) {
		return fmt.Errorf("output %q: want a name ending in %s", o.Output, Suffix)
	}
	if o.Name == "" {
		o.Name = strings.TrimSuffix(filepath.Base(o.Output), Suffix)
	}
	if !manifest.ValidName(o.Name) {
		return fmt.Errorf("image name %q: want lower-case letters, digits, '.', '_' or '-', at most 64", o.Name)
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = manifest.DefaultChunkSize
	}
	if o.ChunkSize < manifest.BlockSize || o.ChunkSize%manifest.BlockSize != 0 || o.ChunkSize > 256<<20 {
		return fmt.Errorf("chunk size %d: want a multiple of %d up to 256 MiB", o.ChunkSize, manifest.BlockSize)
	}
	if o.Level == 0 {
		o.Level = DefaultLevel
	}
	if o.Level < 1 || o.Level > 22 {
		return fmt.Errorf("zstd level %d: want 1–22", o.Level)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = runtime.GOMAXPROCS(0)
	}
	if o.TempDir == "" {
		o.TempDir = filepath.Dir(o.Output)
	}
	return nil
}

// Pack packs opt.Input into opt.Output and its manifest and returns the manifest.
// Output files appear only when complete (written under temporary names, synced, then
// renamed); on any error nothing new is left behind.
func Pack(ctx context.Context, opt Options) (*manifest.Manifest, error) {
	if err := opt.setDefaults(); err != nil {
		return nil, err
	}
	manPath := manifest.PathFor(opt.Output)
	if err := checkOutputs(opt, manPath); err != nil {
		return nil, err
	}
	im, err := imgfile.Open(ctx, opt.Input, imgfile.Options{TempDir: opt.TempDir, Progress: opt.Progress, NoManifest: true})
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	defer im.Close()

	m, err := describe(im, opt)
	if err != nil {
		return nil, err
	}
	in, closeDirect := directInput(im.ReaderAt)
	defer closeDirect()
	if err := writeImage(ctx, in, m, opt); err != nil {
		return nil, err
	}
	if err := m.Save(manPath); err != nil {
		os.Remove(opt.Output)
		return nil, fmt.Errorf("write manifest %q: %w", manPath, err)
	}
	return m, nil
}

// checkOutputs refuses to overwrite the output or its manifest at manPath without
// opt.Force, an output directory that is not one, and an input that is also an output.
func checkOutputs(opt Options, manPath string) error {
	if !opt.Force {
		for _, p := range []string{opt.Output, manPath} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%q: %w", p, ErrExists)
			}
		}
	}
	if st, err := os.Stat(filepath.Dir(opt.Output)); err != nil || !st.IsDir() {
		return fmt.Errorf("output directory %q: does not exist or is not a directory", filepath.Dir(opt.Output))
	}
	if same(opt.Input, opt.Output) || same(opt.Input, manPath) {
		return fmt.Errorf("input %q is also the output", opt.Input)
	}
	return nil
}

// describe reads the layout of im (partitions, data ranges, first-boot mechanism; the
// ranges of opt.Bmap instead when set) and returns the manifest of the image to pack,
// without its chunks. Layout warnings go to opt.Progress.
func describe(im *imgfile.Image, opt Options) (*manifest.Manifest, error) {
	if !opt.Raw && !layout.HasTable(im, im.Size) {
		return nil, fmt.Errorf("input %q: %w", opt.Input, ErrNoTable)
	}
	lay, err := layout.Analyze(im, im.Size)
	if err != nil {
		return nil, fmt.Errorf("read layout of %q: %w", opt.Input, err)
	}
	if opt.Progress != nil {
		for _, w := range lay.Warnings {
			fmt.Fprintf(opt.Progress, "warning: %s\n", w)
		}
	}
	source := filepath.Base(opt.Input)
	if opt.Bmap != "" {
		if lay.Ranges, err = bmapRanges(im, opt); err != nil {
			return nil, err
		}
		source += " (bmap " + filepath.Base(opt.Bmap) + ")"
	}
	m := &manifest.Manifest{
		Version:     manifest.Version,
		Name:        opt.Name,
		Size:        im.Size,
		ChunkSize:   opt.ChunkSize,
		Compression: "zstd",
		Ranges:      lay.Ranges,
		Partitions:  lay.Partitions,
		FirstBoot:   lay.FirstBoot,
		OSRelease:   lay.OSRelease,
		Created:     time.Now().UTC().Format(time.RFC3339),
		Source:      source,
	}
	if m.Ranges == nil {
		m.Ranges = []manifest.Range{}
	}
	if m.Partitions == nil {
		m.Partitions = []manifest.Partition{}
	}
	for _, r := range m.Ranges {
		m.DataBytes += r.Length
	}
	return m, nil
}

// bmapRanges returns the mapped ranges of the bmap file opt.Bmap after checking that it
// describes im: the same size, and every range's sha256 matching im's bytes.
func bmapRanges(im *imgfile.Image, opt Options) ([]manifest.Range, error) {
	bm, err := bmap.Load(opt.Bmap)
	if err != nil {
		return nil, err
	}
	if bm.ImageSize != im.Size {
		return nil, fmt.Errorf("bmap %q is for an image of %d bytes, %q has %d", opt.Bmap, bm.ImageSize, opt.Input, im.Size)
	}
	if err := bm.Check(im); err != nil {
		return nil, fmt.Errorf("bmap %q: %w", opt.Bmap, err)
	}
	return bm.Ranges(), nil
}

// chunk is one compressed chunk on its way to the writer and the whole-image hash.
// sha is set beforehand only for the shared zero chunks; data is set by the worker
// for a chunk that is partly data, and left for the whole-image hash (as sha) when
// the chunk is all data.
type chunk struct {
	raw, frame []byte
	sha, data  string
	allData    bool
	pooled     bool
}

// writeImage compresses the chunks of r into opt.Output (via a temporary file) and
// fills m's chunk list, sizes and hashes.
func writeImage(ctx context.Context, r io.ReaderAt, m *manifest.Manifest, opt Options) (err error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(opt.Level)),
		zstd.WithEncoderConcurrency(opt.Concurrency),
		zstd.WithEncoderCRC(true))
	if err != nil {
		return err
	}
	defer enc.Close()

	return writeOutput(opt.Output, func(out io.Writer) error {
		return encodeChunks(ctx, r, m, opt, enc, out)
	})
}

// encodeChunks compresses every chunk of r to out, in order, and fills in m's chunks,
// sizes and hashes.
//
// Three stages run at once: opt.Concurrency workers read and compress chunks (and
// hash the data of a chunk that is partly free space, data_sha256); one goroutine
// writes the frames in order; another feeds the raw chunks in order to the
// whole-image SHA-256, recording its chain value after each, to each chunk's own
// SHA-256 in the same pass (package sha256x2: one message schedule, two states), and
// the frames to the SHA-256 of the output (compressed_sha256) in the same loop (a
// third state with a schedule of its own: sha256x2.BlocksAnd). The ordered hashes
// need every byte in sequence, so they cannot be split across workers; on their own
// goroutine they overlap the compressors.
func encodeChunks(ctx context.Context, r io.ReaderAt, m *manifest.Manifest, opt Options, enc *zstd.Encoder, out io.Writer) (err error) {
	n := manifest.NumChunks(m.Size, m.ChunkSize)
	m.Chunks = make([]manifest.Chunk, n)
	zeros := &zeroChunks{enc: enc, m: map[int64]*chunk{}}
	pool := newChunkPool(opt.Concurrency)
	var off int64
	bar := progress.Start(opt.Progress, "packing "+m.Name, m.Size)
	defer func() { bar.Finish(err == nil) }()

	g, ctx := errgroup.WithContext(ctx)
	written := make(chan *chunk, opt.Concurrency)
	g.Go(func() error {
		whole, comp, err := wholeImage(m, written, pool)
		if err == nil {
			m.SHA256, m.CompressedSHA256 = whole, comp
		}
		return err
	})
	g.Go(func() error {
		defer close(written)
		return ordered.Map(ctx, n, opt.Concurrency,
			func(ctx context.Context, i int) (*chunk, error) {
				return readChunk(r, m, i, enc, zeros, pool)
			},
			func(i int, c *chunk) error {
				if _, err := out.Write(c.frame); err != nil {
					return fmt.Errorf("write %q: %w", opt.Output, err)
				}
				m.Chunks[i] = manifest.Chunk{DataSHA256: c.data, Frame: off, FrameSize: int64(len(c.frame))}
				off += int64(len(c.frame))
				bar.Add(int64(len(c.raw)))
				select { // wholeImage owns c (and m.Chunks[i]'s hashes) from here on
				case written <- c:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
	})
	if err := g.Wait(); err != nil {
		return err
	}
	m.CompressedSize = off
	if err := m.Validate(); err != nil {
		return fmt.Errorf("packed manifest: %w", err)
	}
	return nil
}

// readChunk reads chunk i of r (the bytes outside m's data ranges as zeros) and
// compresses it; when the chunk is partly free space it also hashes its data
// (data_sha256). A chunk without data is the shared, cached zero chunk.
func readChunk(r io.ReaderAt, m *manifest.Manifest, i int, enc *zstd.Encoder, zeros *zeroChunks, pool chunkPool) (*chunk, error) {
	cr := m.ChunkRange(i)
	data := m.DataIn(cr)
	if len(data) == 0 {
		return zeros.get(cr.Length), nil
	}
	c := pool.get(m.ChunkSize)
	c.raw = c.raw[:cr.Length]
	pos := cr.Offset
	for _, d := range data {
		clear(c.raw[pos-cr.Offset : d.Offset-cr.Offset])
		b := c.raw[d.Offset-cr.Offset : d.End()-cr.Offset]
		if k, err := r.ReadAt(b, d.Offset); k < len(b) {
			return nil, fmt.Errorf("read input at %d (%d bytes): %w", d.Offset, len(b), orUnexpectedEOF(err))
		}
		pos = d.End()
	}
	clear(c.raw[pos-cr.Offset:])
	c.allData = len(data) == 1 && data[0] == cr
	if c.allData {
		c.data = "" // the same bytes as the chunk: wholeImage sets it to the chunk's sha256
	} else {
		c.data = zstimg.DataSHA256(c.raw, cr.Offset, data)
	}
	c.frame = enc.EncodeAll(c.raw, c.frame[:0])
	return c, nil
}

// wholeImage hashes the raw bytes of the chunks it receives, which come in order, into
// the whole-image SHA-256 and, in the same pass, into each chunk's own SHA-256 (a zero
// chunk has its hash already) and the frames into the SHA-256 of the packed file; it
// sets each chunk's sha256 (and data_sha256 when the chunk is all data) and chain
// value but the last's, returns pooled chunks to pool, and returns the hex digests of
// the image and of the packed file once chunks is closed ("" if it closed before the
// last chunk: the sender failed and reports why). The chunks arrive after their
// manifest entry is written; the entry's hashes are this goroutine's to set.
//
// One loop (sha256x2.BlocksAnd) runs the three hashes over a chunk: the raw bytes into
// the image's and the chunk's state (one message schedule), as many bytes of the
// packed file into its own (a second schedule); the frame's bytes past the raw ones
// (a chunk stored raw: its frame is a little longer) follow alone, and the end of the
// frame that is not a whole block waits in carry for the next frame.
func wholeImage(m *manifest.Manifest, chunks <-chan *chunk, pool chunkPool) (string, string, error) {
	whole, comp := sha256x2.New(), sha256x2.New()
	var carry [sha256x2.BlockSize]byte
	nc := 0 // bytes of the packed file in carry
	var digest string
	i := 0
	for c := range chunks {
		n := len(c.raw) &^ (sha256x2.BlockSize - 1)
		tail := c.raw[n:] // not empty only for a last chunk of an odd length
		// The packed file's next whole blocks: carry completed from the frame, then
		// the frame's whole blocks from there.
		f := c.frame
		if nc > 0 {
			k := copy(carry[nc:], f)
			nc += k
			f = f[k:]
			if nc == sha256x2.BlockSize {
				comp.Block(carry[:])
				nc = 0
			}
		}
		q := f[:len(f)&^(sha256x2.BlockSize-1)]
		both := min(n, len(q))
		if c.sha != "" { // a zero chunk
			sha256x2.Pair(&whole, &comp, c.raw[:both], q[:both])
			whole.Block(c.raw[both:n])
		} else {
			own := sha256x2.New()
			sha256x2.BlocksAnd(&whole, &own, c.raw[:both], &comp, q[:both])
			sha256x2.Blocks(&whole, &own, c.raw[both:n])
			sum := own.Sum(tail)
			c.sha = hex.EncodeToString(sum[:])
		}
		comp.Block(q[both:])
		if len(f) > 0 { // else the whole frame went into carry
			nc = copy(carry[:], f[len(q):])
		}
		m.Chunks[i].SHA256 = c.sha
		if c.allData {
			m.Chunks[i].DataSHA256 = c.sha // the whole chunk is data: the same bytes, the same hash
		}
		if i < len(m.Chunks)-1 {
			if len(tail) != 0 || whole.Len != uint64(m.ChunkRange(i).End()) {
				return "", "", fmt.Errorf("chunk %d ends at %d, not on a 64-byte block of the whole-image hash", i, whole.Len)
			}
			m.Chunks[i].Chain = sha256chain.Hex(whole.Chain())
		} else { // the last chunk is closed by m.SHA256
			sum := whole.Sum(tail)
			digest = hex.EncodeToString(sum[:])
		}
		if c.pooled {
			c.sha = ""
			pool.put(c)
		}
		i++
	}
	if i != len(m.Chunks) {
		return "", "", nil // the writer stopped early: its error is the one to report
	}
	sum := comp.Sum(carry[:nc])
	return digest, hex.EncodeToString(sum[:]), nil
}

// zeroChunks caches the frame and hash of an all-zero chunk per length (there are at
// most two lengths: ChunkSize and the last chunk's).
type zeroChunks struct {
	enc *zstd.Encoder
	mu  sync.Mutex
	m   map[int64]*chunk
}

func (z *zeroChunks) get(n int64) *chunk {
	z.mu.Lock()
	defer z.mu.Unlock()
	if c, ok := z.m[n]; ok {
		return c
	}
	raw := make([]byte, n)
	sum := sha256.Sum256(raw)
	c := &chunk{raw: raw, frame: z.enc.EncodeAll(raw, nil), sha: hex.EncodeToString(sum[:])}
	z.m[n] = c
	return c
}

// chunkPool keeps the buffers of the chunks in flight for reuse for the whole pack.
// Unlike a sync.Pool it is not emptied by garbage collections: a new 4 MiB buffer
// costs the kernel a page fault per 4 KiB page, and at GiB/s that was ~5 % of a pack's
// CPU time (perf).
type chunkPool chan *chunk

// newChunkPool holds up to the number of chunks that can be in flight at once with
// concurrency workers: ordered.Map's 3×workers, the whole-image hash's queue of
// workers and the one it hashes.
func newChunkPool(concurrency int) chunkPool {
	return make(chunkPool, 4*concurrency+2)
}

// get returns a free chunk whose raw buffer holds chunkSize bytes and whose frame
// buffer the largest frame of as many (stored blocks) without growing.
func (p chunkPool) get(chunkSize int64) *chunk {
	select {
	case c := <-p:
		return c
	default:
		// raw is aligned for O_DIRECT reads (directInput).
		return &chunk{pooled: true, raw: blockdev.AlignedBuffer(int(chunkSize)), frame: make([]byte, 0, frameBound(chunkSize))}
	}
}

func (p chunkPool) put(c *chunk) {
	select {
	case p <- c:
	default: // more in flight than counted: let this one go
	}
}

// frameBound is the largest zstd frame of n bytes: frame header (at most 18 bytes),
// a 3-byte header per block of at most 128 KiB stored raw, the 4-byte checksum; with
// room to spare.
func frameBound(n int64) int64 {
	return n + 3*(n/(128<<10)+1) + 64
}

func orUnexpectedEOF(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// same reports whether paths a and b name the same existing file.
func same(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}
