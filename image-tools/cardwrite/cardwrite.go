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
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
)

// ChunkSize is the unit of writing and of read-back comparison.
const ChunkSize = 4 << 20

// ErrRefused: the target is not a card this package will write to.
var ErrRefused = errors.New("refusing to write")

// System is where the package looks at the running system; the zero value means the
// real /proc/self/mountinfo, /proc/swaps and /sys.
type System struct {
	MountInfo string // default /proc/self/mountinfo
	Swaps     string // default /proc/swaps
	Sys       string // default /sys
}

func (s System) path(p, def string) string {
	if p == "" {
		return def
	}
	return p
}

// devInfo is a block device's kernel name and number.
type devInfo struct {
	name     string // sda, loop3, mmcblk0
	majMin   string // "8:0"
	disk     string // the whole disk's name (name itself for a disk)
	partOf   bool   // name is a partition of disk
	holdersN int
}

func (s System) info(path string) (devInfo, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return devInfo{}, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return devInfo{}, fmt.Errorf("%w: %q is not a block device", ErrRefused, path)
	}
	return s.infoOf(fmt.Sprintf("%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))))
}

// infoOf looks a device number up in /sys/dev/block.
func (s System) infoOf(majMin string) (devInfo, error) {
	sys := s.path(s.Sys, "/sys")
	link, err := filepath.EvalSymlinks(filepath.Join(sys, "dev", "block", majMin))
	if err != nil {
		return devInfo{}, fmt.Errorf("device %s in sysfs: %w", majMin, err)
	}
	d := devInfo{name: filepath.Base(link), majMin: majMin, disk: filepath.Base(link)}
	if _, err := os.Stat(filepath.Join(link, "partition")); err == nil {
		d.partOf, d.disk = true, filepath.Base(filepath.Dir(link))
	}
	holders, _ := os.ReadDir(filepath.Join(link, "holders"))
	d.holdersN = len(holders)
	return d, nil
}

// Check refuses a target that is not a whole block device, is the running system's
// disk, is mounted (it or a partition), is swap, or is held by another device.
func (s System) Check(path string) error {
	d, err := s.info(path)
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return err
		}
		return fmt.Errorf("%w: %q: %w", ErrRefused, path, err)
	}
	if d.partOf {
		return fmt.Errorf("%w: %q is partition %s of %s; give the whole card (/dev/%s)", ErrRefused, path, d.name, d.disk, d.disk)
	}
	if d.holdersN > 0 {
		return fmt.Errorf("%w: %q is held by another device (device mapper, RAID)", ErrRefused, path)
	}
	f, err := os.Open(s.path(s.MountInfo, "/proc/self/mountinfo"))
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var mounted []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || strings.HasPrefix(fields[2], "0:") {
			continue // a virtual file system has no block device
		}
		m, err := s.infoOf(fields[2])
		if err != nil || m.disk != d.disk {
			continue
		}
		if fields[4] == "/" {
			return fmt.Errorf("%w: %q holds the running system (mounted at /)", ErrRefused, path)
		}
		mounted = append(mounted, "/dev/"+m.name+" at "+unescape(fields[4]))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	if len(mounted) > 0 {
		return fmt.Errorf("%w: %q is mounted (%s); unmount it first", ErrRefused, path, strings.Join(mounted, ", "))
	}
	swaps, _ := os.ReadFile(s.path(s.Swaps, "/proc/swaps"))
	for _, line := range strings.Split(string(swaps), "\n") {
		dev, _, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(dev, "/dev/") {
			continue
		}
		if m, err := s.info(dev); err == nil && m.disk == d.disk {
			return fmt.Errorf("%w: %q is used as swap (%s)", ErrRefused, path, dev)
		}
	}
	return nil
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%3o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
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

func (p *Plan) writeOne(ctx context.Context, target string, opt Options) (err error) {
	src, err := os.Open(p.path)
	if err != nil {
		return err
	}
	defer src.Close()
	// O_EXCL: the kernel refuses (EBUSY) a block device that is mounted or in use.
	f, err := blockdev.Open(target, os.O_RDWR|unix.O_EXCL)
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
	count := func(fn func(int64), n int) {
		if fn != nil {
			fn(int64(n))
		}
	}
	// Unbootable from now on.
	if _, err := f.WriteAt(blockdev.AlignedBuffer(blockdev.Align), 0); err != nil {
		return fmt.Errorf("zero the first block of %q: %w", target, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %q: %w", target, err)
	}
	buf := blockdev.AlignedBuffer(ChunkSize)
	n := len(p.m.Chunks)
	for i := 1; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := p.m.ChunkRange(i)
		if _, err := src.ReadAt(buf[:r.Length], r.Offset); err != nil && err != io.EOF {
			return fmt.Errorf("read image: %w", err)
		}
		if _, err := f.WriteAt(buf[:r.Length], r.Offset); err != nil {
			return fmt.Errorf("write [%d,+%d) to %q: %w", r.Offset, r.Length, target, err)
		}
		count(opt.Written, int(r.Length))
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %q: %w", target, err)
	}
	var last int64
	if _, err := readback.Verify(ctx, target, p.m, readback.Options{
		Full: true,
		Skip: func(i int) bool { return i == 0 },
		Progress: func(done, _ int64) {
			count(opt.ReadBack, int(done-last))
			last = done
		},
	}); err != nil {
		return fmt.Errorf("read back %q: %w", target, err)
	}
	r := p.m.ChunkRange(0)
	head := buf[:r.Length]
	if _, err := src.ReadAt(head, 0); err != nil && err != io.EOF {
		return fmt.Errorf("read image: %w", err)
	}
	if _, err := f.WriteAt(head, 0); err != nil {
		return fmt.Errorf("write the first chunk to %q: %w", target, err)
	}
	count(opt.Written, len(head))
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %q: %w", target, err)
	}
	back := blockdev.AlignedBuffer(len(head))
	if _, err := f.ReadAt(back, 0); err != nil {
		return fmt.Errorf("read back the first chunk of %q: %w", target, err)
	}
	count(opt.ReadBack, len(back))
	if !bytes.Equal(back, head) {
		f.WriteAt(blockdev.AlignedBuffer(blockdev.Align), 0)
		f.Sync()
		return fmt.Errorf("read back %q: %w: the first chunk differs", target, readback.ErrMismatch)
	}
	// Let the kernel see the new partition table; a reader without partitions refuses.
	_ = unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0)
	return nil
}
