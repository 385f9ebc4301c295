// Package cardwrite writes one image to several cards at once and reads each back,
// with the agent's order and I/O path: the first 4 KiB zeroed and synced first (the
// card stops being bootable), the rest written with O_DIRECT (package blockdev), read
// back with O_DIRECT and compared chunk by chunk (package readback), and only then
// the first chunk (the partition table) written, synced and read back. A card that
// fails anywhere is left unbootable.
//
// Before anything is written, each target must be a whole block device that is not
// mounted (nor any of its partitions), not the disk of the running system, not used
// as swap and held by nothing (device mapper, md); the kernel's O_EXCL open then
// refuses a device that is in use in any other way.
package cardwrite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
)

// ChunkSize is the unit of writing and of read-back comparison.
const ChunkSize = 4 << 20

// ErrRefused: the target is not a card this package will write to.
var ErrRefused = errors.New("refusing to write")

// devInfo is a block device's kernel name and number.
type devInfo struct {
	name     string // sda, loop3, mmcblk0
	majMin   string // "8:0"
	disk     string // the whole disk's name (name itself for a disk)
	partOf   bool   // name is a partition of disk
	holdersN int
}

// Options tune Write.
type Options struct {
	System System
	// Written and ReadBack, if set, are called with byte counts as they pass (from
	// several goroutines at once).
	Written, ReadBack func(n int64)
}

// Result is the outcome for one target.
type Result struct {
	Target string
	Err    error // nil: written and read back identical
}

// Plan describes an image to write: its size and one SHA-256 per chunk.
type Plan struct {
	path string
	m    *manifest.Manifest
}

// Size is the image size in bytes.
func (p *Plan) Size() int64 { return p.m.Size }

// NewPlan reads the image once and hashes its chunks.
func NewPlan(path string) (*Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		return nil, fmt.Errorf("image %q is not a non-empty regular file", path)
	}
	m := &manifest.Manifest{Name: filepath.Base(path), Size: st.Size(), ChunkSize: ChunkSize}
	buf := make([]byte, ChunkSize)
	for i := range manifest.NumChunks(m.Size, ChunkSize) {
		r := m.ChunkRange(i)
		if _, err := f.ReadAt(buf[:r.Length], r.Offset); err != nil {
			return nil, fmt.Errorf("read image %q: %w", path, err)
		}
		sum := sha256.Sum256(buf[:r.Length])
		m.Chunks = append(m.Chunks, manifest.Chunk{SHA256: hex.EncodeToString(sum[:])})
	}
	return &Plan{path: path, m: m}, nil
}

// Write checks every target (Check), then writes the image to all of them at once and
// reads each back. Nothing is written unless every target passes Check. It returns
// one Result per target, in order, and an error if any failed.
func Write(ctx context.Context, p *Plan, targets []string, opt Options) ([]Result, error) {
	res := make([]Result, len(targets))
	seen := map[string]string{}
	var refused []error
	for i, t := range targets {
		res[i].Target = t
		err := opt.System.Check(t)
		if err == nil {
			d, _ := opt.System.info(t)
			if other, dup := seen[d.majMin]; dup {
				err = fmt.Errorf("%w: %q and %q are the same device", ErrRefused, other, t)
			}
			seen[d.majMin] = t
		}
		if err != nil {
			res[i].Err = err
			refused = append(refused, err)
		}
	}
	if len(refused) > 0 {
		return res, errors.Join(refused...)
	}
	var wg sync.WaitGroup
	for i := range targets {
		wg.Go(func() { res[i].Err = p.writeOne(ctx, targets[i], opt) })
	}
	wg.Wait()
	var errs []error
	for _, r := range res {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return res, errors.Join(errs...)
}

// writeOne writes the image to one checked card: the first block zeroed, the other
// chunks written and read back, then the first chunk written and read back.
func (p *Plan) writeOne(ctx context.Context, target string, opt Options) (err error) {
	src, err := os.Open(p.path)
	if err != nil {
		return err
	}
	defer src.Close()
	f, err := openCard(target)
	if err != nil {
		return fmt.Errorf("open target %q: %w", target, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %q: %w", target, cerr)
		}
	}()
	size, err := f.Size()
	if err != nil {
		return err
	}
	if size < p.m.Size {
		return fmt.Errorf("%w: %q has %d bytes, the image needs %d", ErrRefused, target, size, p.m.Size)
	}
	buf := blockdev.AlignedBuffer(ChunkSize)
	if err := p.writeBody(ctx, src, f, buf, opt); err != nil {
		return err
	}
	var last int64
	if _, err := readback.Verify(ctx, target, p.m, readback.Options{
		Full: true,
		Skip: func(i int) bool { return i == 0 },
		Progress: func(done, _ int64) {
			count(opt.ReadBack, done-last)
			last = done
		},
	}); err != nil {
		return fmt.Errorf("read back %q: %w", target, err)
	}
	return p.writeHead(src, f, buf, opt)
}

// writeBody zeroes the card's first block (it is unbootable from then on) and writes
// every chunk but the first, then syncs.
func (p *Plan) writeBody(ctx context.Context, src io.ReaderAt, f *blockdev.File, buf []byte, opt Options) error {
	if _, err := f.WriteAt(blockdev.AlignedBuffer(blockdev.Align), 0); err != nil {
		return fmt.Errorf("zero the first block of %q: %w", f.Path(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %q: %w", f.Path(), err)
	}
	for i := 1; i < len(p.m.Chunks); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := p.m.ChunkRange(i)
		if _, err := src.ReadAt(buf[:r.Length], r.Offset); err != nil && err != io.EOF {
			return fmt.Errorf("read image: %w", err)
		}
		if _, err := f.WriteAt(buf[:r.Length], r.Offset); err != nil {
			return fmt.Errorf("write [%d,+%d) to %q: %w", r.Offset, r.Length, f.Path(), err)
		}
		count(opt.Written, r.Length)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %q: %w", f.Path(), err)
	}
	return nil
}

// writeHead writes the first chunk (the partition table) last, syncs and reads it
// back; a card whose first chunk differs is made unbootable again.
func (p *Plan) writeHead(src io.ReaderAt, f *blockdev.File, buf []byte, opt Options) error {
	r := p.m.ChunkRange(0)
	head := buf[:r.Length]
	if _, err := src.ReadAt(head, 0); err != nil && err != io.EOF {
		return fmt.Errorf("read image: %w", err)
	}
	if _, err := f.WriteAt(head, 0); err != nil {
		return fmt.Errorf("write the first chunk to %q: %w", f.Path(), err)
	}
	count(opt.Written, int64(len(head)))
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %q: %w", f.Path(), err)
	}
	back := blockdev.AlignedBuffer(len(head))
	if _, err := f.ReadAt(back, 0); err != nil {
		return fmt.Errorf("read back the first chunk of %q: %w", f.Path(), err)
	}
	count(opt.ReadBack, int64(len(back)))
	if !bytes.Equal(back, head) {
		f.WriteAt(blockdev.AlignedBuffer(blockdev.Align), 0)
		f.Sync()
		return fmt.Errorf("read back %q: %w: the first chunk differs", f.Path(), readback.ErrMismatch)
	}
	rereadPartitions(f)
	return nil
}

// count calls fn (if set) with n.
func count(fn func(int64), n int64) {
	if fn != nil {
		fn(n)
	}
}
