package flash

import (
	"fmt"
	"os"
	"time"
)

// Device is the target as first-boot naming sees it before Commit: reads and writes
// that fall in chunk 0 go to the held-back copy, the rest to the target through the
// page cache (small, unaligned FAT updates). Sync flushes the target.
type Device struct {
	fl    *Flasher
	f     *os.File
	start time.Time // of Device, for Stats.NameTime
}

// Device opens the target for first-boot naming. Close it before Commit.
func (fl *Flasher) Device() (*Device, error) {
	f, err := os.OpenFile(fl.path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open target %q: %w", fl.path, err)
	}
	return &Device{fl: fl, f: f, start: time.Now()}, nil
}

// Size is the image size in bytes.
func (d *Device) Size() int64 { return d.fl.m.Size }

// ReadAt implements io.ReaderAt.
func (d *Device) ReadAt(p []byte, off int64) (int, error) {
	return d.split(p, off, func(b []byte, o int64) (int, error) { return d.f.ReadAt(b, o) }, false)
}

// WriteAt implements io.WriterAt.
func (d *Device) WriteAt(p []byte, off int64) (int, error) {
	return d.split(p, off, func(b []byte, o int64) (int, error) { return d.f.WriteAt(b, o) }, true)
}

func (d *Device) split(p []byte, off int64, io func([]byte, int64) (int, error), write bool) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	head := int64(len(d.fl.head))
	done := 0
	if off < head {
		n := int(min(int64(len(p)), head-off))
		if write {
			copy(d.fl.head[off:], p[:n])
		} else {
			copy(p[:n], d.fl.head[off:])
		}
		done, p, off = n, p[n:], off+int64(n)
	}
	if len(p) == 0 {
		return done, nil
	}
	n, err := io(p, off)
	return done + n, err
}

// Sync flushes the writes outside chunk 0 to the medium.
func (d *Device) Sync() error { return d.f.Sync() }

// Close syncs and closes the target.
func (d *Device) Close() error {
	err := d.f.Sync()
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	d.fl.mu.Lock()
	d.fl.stats.NameTime = time.Since(d.start)
	d.fl.mu.Unlock()
	return err
}
