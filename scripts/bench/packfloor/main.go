// Command packfloor measures what each pass of `rpi-image pack` costs on one core, on
// the bytes pack really processes (the image with its free space as zeros), and the
// zstd CLI's cost on the same bytes, so that the floor of the pack-time ratio on N
// cores can be written down:
//
//	packfloor [-cpuprofile FILE] [-j N] [-n RUNS] IMAGE
//
// Each pass runs alone on one locked OS thread and is timed with that thread's CPU
// clock (CLOCK_THREAD_CPUTIME_ID), so the figures hold on a machine that others share;
// each runs -n times and the fastest run counts.
// The zstd CLI runs with -T1 and is timed by its user+system time. With -cpuprofile,
// it also packs IMAGE (into a temporary directory) under the CPU profiler.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/rpi-deploy/rpi-deploy/image-tools/layout"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/zstimg"
	"github.com/rpi-deploy/rpi-deploy/internal/sha256x2"
)

func main() {
	profile := flag.String("cpuprofile", "", "also pack IMAGE under the CPU profiler and write the profile to `FILE`")
	jobs := flag.Int("j", 0, "concurrency of the profiled pack (default: GOMAXPROCS)")
	flag.IntVar(&repeats, "n", repeats, "runs of each pass; the fastest counts")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: packfloor [-cpuprofile FILE] [-j N] [-n RUNS] IMAGE")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *profile, *jobs); err != nil {
		fmt.Fprintln(os.Stderr, "packfloor:", err)
		os.Exit(1)
	}
}

// image is the input as pack sees it: chunks of manifest.DefaultChunkSize with the
// bytes outside the data ranges zeroed; nil for a chunk without data.
type image struct {
	m           *manifest.Manifest
	chunks      [][]byte
	zero        []byte // an all-zero chunk
	partialData int64  // data bytes in the chunks that are partly data
}

func run(path, profile string, jobs int) error {
	im, err := load(path)
	if err != nil {
		return err
	}
	hashPasses(im)
	packed, err := encodePasses(im)
	if err != nil {
		return err
	}
	show("sha256 of the packed file (compressed_sha256)", onThread(func() int64 {
		sha256.Sum256(packed)
		return int64(len(packed))
	}))
	dir, err := os.MkdirTemp("", "packfloor")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := cliPasses(im, path, dir); err != nil {
		return err
	}
	if profile != "" {
		return profilePack(path, profile, dir, jobs)
	}
	return nil
}

// load reads the layout of the image at path and its data chunks into memory, timing
// the read pass (the second and later runs read from the page cache).
func load(path string) (*image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	lay, err := layout.Analyze(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("layout of %q: %w", path, err)
	}
	im := &image{m: &manifest.Manifest{Size: st.Size(), ChunkSize: manifest.DefaultChunkSize, Ranges: lay.Ranges}}
	im.zero = make([]byte, im.m.ChunkSize)
	for _, r := range lay.Ranges {
		im.m.DataBytes += r.Length
	}
	n := manifest.NumChunks(im.m.Size, im.m.ChunkSize)
	im.chunks = make([][]byte, n)
	var full, partial int
	for i := range n {
		cr := im.m.ChunkRange(i)
		data := im.m.DataIn(cr)
		switch {
		case len(data) == 0:
			continue
		case len(data) == 1 && data[0] == cr:
			full++
		default:
			partial++
			for _, d := range data {
				im.partialData += d.Length
			}
		}
		im.chunks[i] = make([]byte, cr.Length)
	}
	var readErr error
	read := onThread(func() int64 {
		for i, b := range im.chunks {
			cr := im.m.ChunkRange(i)
			for _, d := range im.m.DataIn(cr) {
				if k, err := f.ReadAt(b[d.Offset-cr.Offset:d.End()-cr.Offset], d.Offset); k < int(d.Length) {
					readErr = fmt.Errorf("read %q at %d: %w", path, d.Offset, err)
				}
			}
		}
		return im.m.DataBytes
	})
	if readErr != nil {
		return nil, readErr
	}
	fmt.Printf("image: %d bytes, %d data bytes; %d chunks: %d all data, %d partly data (%d data bytes), %d without data; %d CPUs\n",
		im.m.Size, im.m.DataBytes, n, full, partial, im.partialData, n-full-partial, runtime.NumCPU())
	show("read data ranges (page cache)", read)
	return im, nil
}

// hashPasses times the SHA-256 passes over raw bytes that pack makes.
func hashPasses(im *image) {
	show("sha256 of data chunks (chunk sha256)", onThread(func() int64 {
		var b int64
		for _, c := range im.chunks {
			if c != nil {
				sha256.Sum256(c)
				b += int64(len(c))
			}
		}
		return b
	}))
	show("sha256 of partly-data chunks' data (data_sha256)", onThread(func() int64 {
		for i, c := range im.chunks {
			cr := im.m.ChunkRange(i)
			if data := im.m.DataIn(cr); c != nil && !(len(data) == 1 && data[0] == cr) {
				zstimg.DataSHA256(c, cr.Offset, data)
			}
		}
		return im.partialData
	}))
	show("sha256 of the whole image (sha256, chain)", onThread(func() int64 {
		h := sha256.New()
		for i := range im.chunks {
			h.Write(im.bytes(i))
		}
		h.Sum(nil)
		return im.m.Size
	}))
	show("two lanes over the data chunks (sha256x2.Blocks; bytes counted once)", onThread(func() int64 {
		var b int64
		for _, c := range im.chunks {
			if n := len(c) &^ (sha256x2.BlockSize - 1); c != nil {
				x, y := sha256x2.New(), sha256x2.New()
				sha256x2.Blocks(&x, &y, c[:n])
				b += int64(n)
			}
		}
		return b
	}))
	show("two-lane: chunk sha256 and whole image at once (sha256x2)", onThread(func() int64 {
		whole := sha256x2.New()
		var tail []byte // of the last chunk, if its length is not a multiple of 64
		for i, c := range im.chunks {
			b := im.bytes(i)
			n := len(b) &^ (sha256x2.BlockSize - 1)
			tail = b[n:]
			if c == nil {
				whole.Block(b[:n])
				continue
			}
			chunk := sha256x2.New()
			sha256x2.Blocks(&whole, &chunk, b[:n])
			chunk.Sum(tail)
		}
		whole.Sum(tail)
		return im.m.Size
	}))
}

// encodePasses times klauspost/compress on every chunk, with pack's options and with
// variants, and returns the frames made with pack's options.
func encodePasses(im *image) ([]byte, error) {
	var packed []byte
	for _, v := range []struct {
		name string
		opts []zstd.EOption
	}{
		{"klauspost level 3 EncodeAll (pack's options)", nil},
		{"klauspost level 3, WithAllLitEntropyCompression(false)", []zstd.EOption{zstd.WithAllLitEntropyCompression(false)}},
		{"klauspost level 3, WithNoEntropyCompression(true)", []zstd.EOption{zstd.WithNoEntropyCompression(true)}},
		{"klauspost level 3, WithLowerEncoderMem(true)", []zstd.EOption{zstd.WithLowerEncoderMem(true)}},
		{"klauspost level 1 (fastest)", []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedFastest)}},
	} {
		opts := append([]zstd.EOption{zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(3)), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true)}, v.opts...)
		enc, err := zstd.NewWriter(nil, opts...)
		if err != nil {
			return nil, err
		}
		var out []byte
		d := onThread(func() int64 {
			out = out[:0]
			frame := make([]byte, 0, im.m.ChunkSize)
			for i := range im.chunks {
				frame = enc.EncodeAll(im.bytes(i), frame[:0])
				out = append(out, frame...)
			}
			return im.m.Size
		})
		enc.Close()
		show(fmt.Sprintf("%s → %d bytes", v.name, len(out)), d)
		if packed == nil {
			packed = out
		}
	}
	return packed, nil
}

// cliPasses times the zstd CLI on the bytes pack compresses (written to dir) and on
// the image at path as it is.
func cliPasses(im *image, path, dir string) error {
	zeroed := filepath.Join(dir, "zeroed.img")
	if err := im.writeTo(zeroed); err != nil {
		return err
	}
	for _, in := range []struct{ name, path string }{{"the same bytes", zeroed}, {"the raw image (free space as found)", path}} {
		best := timed{cpu: time.Duration(1<<63 - 1), bytes: im.m.Size}
		var size int64
		for range repeats {
			d, n, err := zstdCLI(in.path, filepath.Join(dir, "out.zst"))
			if err != nil {
				return err
			}
			best.cpu, size = min(best.cpu, d), n
		}
		show(fmt.Sprintf("zstd -T1 -3 CLI, %s → %d bytes", in.name, size), best)
	}
	return nil
}

// bytes returns chunk i as pack compresses it.
func (im *image) bytes(i int) []byte {
	if c := im.chunks[i]; c != nil {
		return c
	}
	return im.zero[:im.m.ChunkRange(i).Length]
}

func (im *image) writeTo(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	for i := range im.chunks {
		if _, err := f.Write(im.bytes(i)); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// zstdCLI compresses in to out with `zstd -T1 -3` and returns its CPU time and the
// output size.
func zstdCLI(in, out string) (time.Duration, int64, error) {
	cmd := exec.Command("zstd", "-q", "-f", "-T1", "-3", in, "-o", out)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("zstd: %w", err)
	}
	st, err := os.Stat(out)
	if err != nil {
		return 0, 0, err
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), st.Size(), nil
}

func profilePack(in, profile, dir string, jobs int) error {
	pf, err := os.Create(profile)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		return err
	}
	start := time.Now()
	_, err = pack.Pack(context.Background(), pack.Options{Input: in, Output: filepath.Join(dir, "p.img.zst"), Concurrency: jobs})
	pprof.StopCPUProfile()
	if cerr := pf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Printf("profiled pack: %.2fs wall; profile in %s\n", time.Since(start).Seconds(), profile)
	return nil
}

type timed struct {
	cpu   time.Duration
	bytes int64
}

// repeats is how often each pass runs; the fastest run counts (others on the machine
// only ever make a run slower).
var repeats = 3

// onThread runs f alone on one locked OS thread, repeats times, and returns its
// smallest CPU time with the bytes f reports it processed.
func onThread(f func() int64) timed {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	best := timed{cpu: time.Duration(1<<63 - 1)}
	for range repeats {
		runtime.GC()
		t0 := threadCPU()
		b := f()
		if d := threadCPU() - t0; d < best.cpu {
			best = timed{d, b}
		}
	}
	return best
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(errors.Join(errors.New("thread CPU clock"), err))
	}
	return time.Duration(ts.Nano())
}

func show(what string, t timed) {
	fmt.Printf("floor: %-70s cpu=%.3fs over %d bytes = %.3f s/GiB (%.0f MB/s)\n",
		what, t.cpu.Seconds(), t.bytes, t.cpu.Seconds()/float64(t.bytes)*(1<<30), float64(t.bytes)/t.cpu.Seconds()/1e6)
}
