package blockdev

import (
	"os"

	"golang.org/x/sys/unix"
)

// Disk ioctls of macOS's <sys/disk.h>: _IOR('d', 24, uint32_t) and _IOR('d', 25, uint64_t).
const (
	dkiocGetBlockSize  = 0x40046418
	dkiocGetBlockCount = 0x40086419
)

// open opens path buffered and asks macOS not to cache its data (F_NOCACHE, the
// nearest thing to O_DIRECT there; best effort). Transfers are never "direct".
func open(path string, flag int) (*os.File, bool, error) {
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, false, err
	}
	_, _ = unix.FcntlInt(f.Fd(), unix.F_NOCACHE, 1)
	return f, false, nil
}

// fallback is never needed: files are not opened direct on macOS.
func (f *File) fallback() error {
	f.direct = false
	return nil
}

// deviceSize is a disk's block count times its block size (/dev/diskN or /dev/rdiskN).
// IoctlGetInt reads into a 64-bit int, which holds either answer.
func deviceSize(f *os.File) (int64, error) {
	bs, err := unix.IoctlGetInt(int(f.Fd()), dkiocGetBlockSize)
	if err != nil {
		return 0, err
	}
	n, err := unix.IoctlGetInt(int(f.Fd()), dkiocGetBlockCount)
	if err != nil {
		return 0, err
	}
	return int64(n) * int64(uint32(bs)), nil
}

// DropCache turns caching off for f (F_NOCACHE): later reads through f do not fill the
// cache. macOS has no call that evicts a range, so pages cached before stay; the
// readback of a file written buffered may be served from them.
func DropCache(f *os.File, off, n int64) error {
	_, err := unix.FcntlInt(f.Fd(), unix.F_NOCACHE, 1)
	return err
}
