// Package imgfile opens a disk image in any form rpi-image accepts for random access:
// a raw image file or block device is read in place; a packed NAME.img.zst with its
// manifest beside it is read frame by frame (package zstdimg); any other xz, gzip or
// zstd file is first decompressed into a sparse temporary file.
//
// The format is recognised by its magic bytes, never by the file name; a name that
// promises a compression (.xz, .gz, .zst) the bytes do not have is refused.
package imgfile

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/progress"
	"github.com/rpi-deploy/rpi-deploy/image-tools/zstimg"
)

// Format is how a file's bytes are encoded.
type Format string

// Formats Detect recognises.
const (
	Raw  Format = "raw"
	XZ   Format = "xz"
	Gzip Format = "gzip"
	Zstd Format = "zstd"
)

// ErrEmpty is returned for an input of zero bytes.
var ErrEmpty = errors.New("image is empty")

// ErrNameMismatch is returned for a file whose name says one compression (.xz, .gz,
// .zst) and whose first bytes say another: a wrong or damaged download is refused
// instead of being taken for a raw image.
var ErrNameMismatch = errors.New("content does not match the file name")

// nameFormats maps a file name ending to the format it promises.
var nameFormats = []struct {
	suffix string
	f      Format
}{{".xz", XZ}, {".gz", Gzip}, {".zst", Zstd}, {".zstd", Zstd}}

// CheckName returns an error wrapping ErrNameMismatch, naming path, when path ends in
// .xz, .gz, .zst or .zstd and f (the format its content has) is another one. Any other
// name carries no promise: the content alone decides.
func CheckName(path string, f Format) error {
	lower := strings.ToLower(path)
	for _, nf := range nameFormats {
		if strings.HasSuffix(lower, nf.suffix) && f != nf.f {
			return fmt.Errorf("%q: named %s but its first bytes are %s: %w", path, nf.suffix, describe(f), ErrNameMismatch)
		}
	}
	return nil
}

func describe(f Format) string {
	if f == Raw {
		return "not a known compression (raw data)"
	}
	return string(f) + " data"
}

// Detect returns the format of the file whose first bytes are head.
func Detect(head []byte) Format {
	switch {
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return XZ
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return Gzip
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return Zstd
	}
	return Raw
}

// Image is an opened image: random access to its raw bytes.
type Image struct {
	io.ReaderAt
	Size int64
	// Format is the encoding of the file that was opened.
	Format Format
	// Manifest is set when a packed .img.zst was opened with its manifest.
	Manifest *manifest.Manifest
	// Path is the file that was opened.
	Path string

	closers []func() error
}

// Close releases the image and removes any temporary file.
func (im *Image) Close() error {
	var errs []error
	for i := len(im.closers) - 1; i >= 0; i-- {
		errs = append(errs, im.closers[i]())
	}
	im.closers = nil
	return errors.Join(errs...)
}

// Options tune Open. The zero value is ready to use.
type Options struct {
	// TempDir holds the decompressed copy of a compressed input; "" means os.TempDir().
	TempDir string
	// Progress, if set, receives progress of a decompression.
	Progress io.Writer
	// NoManifest makes a packed .img.zst be decompressed like any zstd file, even when
	// its manifest lies beside it (pack uses it: the manifest may be stale).
	NoManifest bool
}

// Open opens path (a raw image, block device, .img.zst, .xz or .gz) for random access.
func Open(ctx context.Context, path string, opt Options) (_ *Image, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	im := &Image{ReaderAt: f, Path: path, closers: []func() error{f.Close}}
	defer func() {
		if err != nil {
			im.Close()
		}
	}()
	size, err := f.Seek(0, io.SeekEnd) // works for block devices too, unlike Stat
	if err != nil {
		return nil, fmt.Errorf("size of %q: %w", path, err)
	}
	if size == 0 {
		return nil, fmt.Errorf("%q: %w", path, ErrEmpty)
	}
	head := make([]byte, 8)
	if _, err := f.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %q: %w", path, err)
	}
	im.Format = Detect(head)
	if err := CheckName(path, im.Format); err != nil {
		return nil, err
	}
	switch im.Format {
	case Raw:
		im.Size = size
		return im, nil
	case Zstd:
		if !opt.NoManifest {
			if m, err := manifest.Load(manifest.PathFor(path)); err == nil && m.CompressedSize == size {
				zr, err := zstimg.NewReader(f, m)
				if err != nil {
					return nil, err
				}
				im.ReaderAt, im.Size, im.Manifest = zr, m.Size, m
				im.closers = append(im.closers, zr.Close)
				return im, nil
			}
		}
	}
	tmp, n, err := Decompress(ctx, path, im.Format, opt.TempDir, opt.Progress)
	if err != nil {
		return nil, err
	}
	im.closers = append(im.closers, func() error { tmp.Close(); return os.Remove(tmp.Name()) })
	if n == 0 {
		return nil, fmt.Errorf("%q: decompressed: %w", path, ErrEmpty)
	}
	im.ReaderAt, im.Size = tmp, n
	return im, nil
}

// Decompress decodes the compressed file path (of format f) into a new sparse temporary
// file in dir and returns it open, with its length. On error nothing is left behind.
// xz files are decoded by the xz program (xz-utils); gzip and zstd in process.
func Decompress(ctx context.Context, path string, f Format, dir string, prog io.Writer) (tmp *os.File, n int64, err error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer src.Close()
	var total int64
	if st, err := src.Stat(); err == nil {
		total = st.Size()
	}
	counted := &countReader{r: src}
	bar := progress.Start(prog, "decompressing "+filepath.Base(path), total)
	counted.bar = bar
	defer func() { bar.Finish(err == nil) }()

	r, finish, err := decoder(ctx, path, f, counted)
	if err != nil {
		return nil, 0, err
	}
	out, err := os.CreateTemp(dir, ".rpi-image-raw-*")
	if err != nil {
		finish(true)
		return nil, 0, fmt.Errorf("decompress %q: %w", path, err)
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	n, copyErr := copySparse(ctx, out, r)
	waitErr := finish(copyErr != nil)
	switch {
	case waitErr != nil:
		return nil, 0, fmt.Errorf("decompress %q: %s: %w", path, f, waitErr)
	case copyErr != nil:
		if errors.Is(copyErr, io.ErrUnexpectedEOF) {
			return nil, 0, fmt.Errorf("decompress %q: %s stream is truncated: %w", path, f, copyErr)
		}
		return nil, 0, fmt.Errorf("decompress %q: %s: %w", path, f, copyErr)
	}
	return out, n, nil
}

// decoder starts decoding in, the file path of format f. finish ends the decoder and
// returns its own error; failed (the output could not be written) stops it first, and
// then its error is not asked for.
func decoder(ctx context.Context, path string, f Format, in io.Reader) (r io.Reader, finish func(failed bool) error, err error) {
	switch f {
	case Gzip:
		zr, err := gzip.NewReader(bufio.NewReaderSize(in, 1<<20))
		if err != nil {
			return nil, nil, fmt.Errorf("decompress %q: gzip: %w", path, err)
		}
		return zr, func(bool) error { zr.Close(); return nil }, nil // read errors come from Read
	case Zstd:
		zr, err := zstd.NewReader(in, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, err
		}
		return zr, func(bool) error { zr.Close(); return nil }, nil
	case XZ:
		return xzDecoder(ctx, path, in)
	}
	return nil, nil, fmt.Errorf("decompress %q: format %s is not compressed", path, f)
}

// xzDecoder runs the xz program (xz-utils) over in; its error messages name path.
func xzDecoder(ctx context.Context, path string, in io.Reader) (io.Reader, func(failed bool) error, error) {
	cmd := exec.CommandContext(ctx, "xz", "--decompress", "--stdout", "--threads=0")
	cmd.Stdin = in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("decompress %q: start xz (package xz-utils): %w", path, err)
	}
	finish := func(failed bool) error {
		if failed {
			cmd.Process.Kill() // it may be blocked writing to a pipe no one reads
			cmd.Wait()
			return nil
		}
		if err := cmd.Wait(); err != nil {
			msg := strings.TrimPrefix(strings.TrimSpace(strings.ReplaceAll(stderr.String(), "(stdin)", filepath.Base(path))), "xz: ")
			if msg == "" {
				msg = err.Error()
			}
			return errors.New(msg)
		}
		return nil
	}
	return out, finish, nil
}

// copySparse copies r into the empty file w, leaving holes where 64 KiB blocks are all
// zero, and returns the number of bytes copied.
func copySparse(ctx context.Context, w *os.File, r io.Reader) (int64, error) {
	const block = 64 << 10
	buf := make([]byte, 4<<20)
	zero := make([]byte, block)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return off, err
		}
		n, err := fill(r, buf)
		for i := 0; i < n; i += block {
			b := buf[i:min(i+block, n)]
			if !bytes.Equal(b, zero[:len(b)]) {
				if _, err := w.WriteAt(b, off+int64(i)); err != nil {
					return off, err
				}
			}
		}
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return off, err
		}
	}
	if err := w.Truncate(off); err != nil {
		return off, err
	}
	return off, nil
}

// fill reads into buf until it is full or r fails; unlike io.ReadFull it returns r's
// own error unchanged (io.EOF at a clean end), so a decoder's io.ErrUnexpectedEOF keeps
// its meaning: truncated input.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

type countReader struct {
	r   io.Reader
	bar *progress.Bar
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.bar.Add(int64(n))
	return n, err
}
