package blockdev

import (
	"errors"
	"os"
)

// ErrNoDevices: on Windows this package opens files, not disks.
var ErrNoDevices = errors.New("block devices are not supported on Windows")

// open opens path buffered: Windows' unbuffered I/O (FILE_FLAG_NO_BUFFERING) is not
// used, so transfers are never "direct".
func open(path string, flag int) (*os.File, bool, error) {
	f, err := os.OpenFile(path, flag, 0)
	return f, false, err
}

// fallback is never needed: files are not opened direct on Windows.
func (f *File) fallback() error {
	f.direct = false
	return nil
}

// deviceSize refuses: os.Stat reports no device mode for \\.\PhysicalDriveN here.
func deviceSize(*os.File) (int64, error) { return 0, ErrNoDevices }

// DropCache is unsupported on Windows: the readback of a file written buffered may be
// served from the cache.
func DropCache(*os.File, int64, int64) error { return errors.ErrUnsupported }
