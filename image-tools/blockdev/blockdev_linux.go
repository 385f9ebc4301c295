package blockdev

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// open opens path with O_DIRECT, or buffered when the file system refuses O_DIRECT.
func open(path string, flag int) (*os.File, bool, error) {
	f, err := os.OpenFile(path, flag|unix.O_DIRECT, 0)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return nil, false, err
	}
	f, err = os.OpenFile(path, flag, 0)
	return f, false, err
}

// fallback turns O_DIRECT off on f after the kernel refused a direct transfer.
func (f *File) fallback() error {
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFL, flags&^unix.O_DIRECT); err != nil {
		return fmt.Errorf("turn off O_DIRECT on %q: %w", f.path, err)
	}
	f.direct = false
	return nil
}

// deviceSize asks the kernel for a block device's size in bytes (BLKGETSIZE64).
func deviceSize(f *os.File) (int64, error) {
	n, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	return int64(n), err
}

// DropCache asks the kernel to forget the page cache of f's range [off, off+n) (n = 0:
// to the end). Readers that fell back to buffered I/O call it before reading back.
func DropCache(f *os.File, off, n int64) error {
	return unix.Fadvise(int(f.Fd()), off, n, unix.FADV_DONTNEED)
}
