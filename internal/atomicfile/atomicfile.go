// Package atomicfile writes files that appear complete or not at all. It is the one
// atomic writer of the module: rpi-image (manifests, boot files, bmaps, packed images),
// rpi-deployd's TFTP root (the initramfs copy) and its TLS key and certificate use it.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultMode is the permission Write gives a file: readable by all, written by the owner.
const DefaultMode fs.FileMode = 0o644

// Write creates or replaces path with what write produces, mode DefaultMode. See
// WriteMode.
func Write(path string, write func(w io.Writer) error) error {
	return WriteMode(path, DefaultMode, write)
}

// WriteMode creates or replaces path with what write produces, with permission mode
// (0600 for a private key): through a temporary file in the same directory, created
// 0600 so no other user can read it while it fills, which is buffered, synced, closed
// and renamed into place only when write and every step succeed. On error the
// temporary file is removed and an existing file at path is left as it was.
func WriteMode(path string, mode fs.FileMode, write func(w io.Writer) error) (err error) {
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
	w := bufio.NewWriterSize(tmp, 1<<20)
	if err := write(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	return Commit(tmp, path, mode)
}

// Commit gives the filled temporary file tmp permission mode, syncs and closes it
// and renames it to path: the last steps of WriteMode, for writers that fill the
// file their own way (pack writes with O_DIRECT). On error the caller removes tmp.
func Commit(tmp *os.File, path string, mode fs.FileMode) error {
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %q: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %q: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

// WriteBytes creates or replaces path with data, with permission mode (see WriteMode).
func WriteBytes(path string, mode fs.FileMode, data []byte) error {
	return WriteMode(path, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Copy creates or replaces dst with the bytes of src, mode DefaultMode (see
// WriteMode). A missing src is an error wrapping fs.ErrNotExist and creates nothing.
func Copy(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return Write(dst, func(w io.Writer) error {
		if _, err := io.Copy(w, in); err != nil {
			return fmt.Errorf("copy %q: %w", src, err)
		}
		return nil
	})
}
