package pack

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
	"github.com/rpi-deploy/rpi-deploy/internal/atomicfile"
)

// writeOutput writes the packed file at path as atomicfile.Write does (a temporary file
// beside it, synced, then renamed into place; removed on any error), but with O_DIRECT
// where the file system takes it: the frames go from our buffer to the disk without a
// copy into the page cache. On this project's 2-core bench machine, putting 540 MiB
// into the page cache of a new file cost ~0.9 s of system time, a quarter of a pack's
// CPU, and O_DIRECT ~0.1 s (the final sync waits for the disk either way). Where
// O_DIRECT is refused (EINVAL: e.g. a file system without it), it is atomicfile.Write.
func writeOutput(path string, write func(w io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	direct, err := os.OpenFile(tmp.Name(), os.O_WRONLY|unix.O_DIRECT, 0)
	if errors.Is(err, unix.EINVAL) {
		tmp.Close()
		os.Remove(tmp.Name())
		return atomicfile.Write(path, write)
	}
	if err != nil {
		return err
	}
	dw := &directWriter{direct: direct, buf: blockdev.AlignedBuffer(1 << 20)}
	err = write(dw)
	if err == nil {
		err = dw.finish(tmp)
	}
	if cerr := direct.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %q: %w", path, cerr)
	}
	if err != nil {
		return err
	}
	return atomicfile.Commit(tmp, path, atomicfile.DefaultMode)
}

// directWriter collects writes in an aligned buffer and writes it whole to an
// O_DIRECT file; finish writes the rest, the unaligned tail through a normal
// descriptor of the same file.
type directWriter struct {
	direct *os.File
	buf    []byte
	n      int   // bytes in buf
	off    int64 // bytes written to the file
}

func (w *directWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		k := copy(w.buf[w.n:], p)
		w.n += k
		p = p[k:]
		if w.n == len(w.buf) {
			if err := w.flush(w.n); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

// flush writes the first n bytes of buf (a multiple of blockdev.Align) and moves the rest
// to its start.
func (w *directWriter) flush(n int) error {
	if n > 0 {
		if _, err := w.direct.Write(w.buf[:n]); err != nil {
			return err
		}
	}
	w.off += int64(n)
	w.n = copy(w.buf, w.buf[n:w.n])
	return nil
}

// finish writes what is left: the aligned part through O_DIRECT, the unaligned tail
// through plain, a descriptor of the same file opened without O_DIRECT.
func (w *directWriter) finish(plain *os.File) error {
	if err := w.flush(w.n &^ (blockdev.Align - 1)); err != nil {
		return err
	}
	if w.n == 0 {
		return nil
	}
	if _, err := plain.WriteAt(w.buf[:w.n], w.off); err != nil {
		return err
	}
	w.off += int64(w.n)
	w.n = 0
	return nil
}
