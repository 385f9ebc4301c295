// Package blockdev opens image targets (regular files or block devices) for direct
// I/O and hands out the aligned buffers O_DIRECT needs. The agent writes and reads back
// cards with it; rpi-image verify reads images with it.
//
// O_DIRECT is refused by some file systems (EINVAL at open or at the first aligned
// transfer). Open falls back to buffered I/O there; callers then end with Sync, and
// readers accept that the page cache is in the way (File.Direct tells which).
//
// Direct I/O, dropping the page cache and the block device size ioctl are Linux's
// (blockdev_linux.go). On macOS files are opened buffered with F_NOCACHE and a disk's
// size comes from DKIOCGETBLOCKCOUNT × DKIOCGETBLOCKSIZE (blockdev_darwin.go); on
// Windows files are buffered and devices have no size here (blockdev_windows.go).
package blockdev

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// Align is the alignment of buffers, offsets and lengths of direct transfers: 4096
// bytes covers devices with 512- and 4096-byte logical blocks.
const Align = 4096

// AlignedBuffer returns a zeroed buffer of n bytes whose first byte is Align-aligned.
func AlignedBuffer(n int) []byte {
	b := make([]byte, n+Align)
	off := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) & (Align - 1))
	if off != 0 {
		off = Align - off
	}
	return b[off : off+n : off+n]
}

// IsAligned reports whether b starts on an Align boundary.
func IsAligned(b []byte) bool {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))&(Align-1) == 0
}

// File is a target opened for direct I/O when the file system allows it.
type File struct {
	*os.File
	path   string
	direct bool
}

// Open opens path with flag (os.O_RDONLY, os.O_RDWR, …) for direct I/O where the OS
// and file system offer it (Linux: O_DIRECT), else buffered.
func Open(path string, flag int) (*File, error) {
	f, direct, err := open(path, flag)
	if err != nil {
		return nil, err
	}
	return &File{File: f, path: path, direct: direct}, nil
}

// Direct reports whether transfers bypass the page cache.
func (f *File) Direct() bool { return f.direct }

// Path is the path f was opened with.
func (f *File) Path() string { return f.path }

// directOK reports whether p at off may go to the kernel as a direct transfer.
func directOK(p []byte, off int64) bool {
	return IsAligned(p) && off%Align == 0 && len(p)%Align == 0
}

// WriteAt writes p at off. Unaligned transfers and transfers the kernel refuses with
// EINVAL on a direct file go through buffered I/O instead (the file stays correct; Sync
// makes it durable). A short write is an error.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if f.direct && !directOK(p, off) {
		return f.bufferedWriteAt(p, off)
	}
	n, err := f.File.WriteAt(p, off)
	if f.direct && n == 0 && errors.Is(err, syscall.EINVAL) {
		if err := f.fallback(); err != nil {
			return 0, err
		}
		return f.File.WriteAt(p, off)
	}
	return n, err
}

// ReadAt reads len(p) bytes at off. Unaligned transfers on a direct file go through a
// buffered descriptor. At the end of the file it returns io.EOF with the bytes there
// were, like os.File.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if f.direct && !directOK(p, off) {
		return f.bufferedReadAt(p, off)
	}
	n, err := f.File.ReadAt(p, off)
	if f.direct && n == 0 && errors.Is(err, syscall.EINVAL) {
		if err := f.fallback(); err != nil {
			return 0, err
		}
		return f.File.ReadAt(p, off)
	}
	return n, err
}

func (f *File) bufferedWriteAt(p []byte, off int64) (int, error) {
	g, err := os.OpenFile(f.path, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	n, err := g.WriteAt(p, off)
	if err == nil {
		err = g.Sync()
	}
	if cerr := g.Close(); err == nil {
		err = cerr
	}
	return n, err
}

func (f *File) bufferedReadAt(p []byte, off int64) (int, error) {
	g, err := os.Open(f.path)
	if err != nil {
		return 0, err
	}
	defer g.Close()
	return g.ReadAt(p, off)
}

// Size returns the size of the file or block device in bytes.
func (f *File) Size() (int64, error) { return Size(f.File) }

// Size returns the size of a regular file or a block device in bytes.
func Size(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Mode()&os.ModeDevice == 0 {
		return st.Size(), nil
	}
	n, err := deviceSize(f)
	if err != nil {
		return 0, fmt.Errorf("size of %q: %w", f.Name(), err)
	}
	return n, nil
}

// IsBlockDevice reports whether path is a block device.
func IsBlockDevice(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0
}
