package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFile is fdatasync(2): the file's data and the metadata needed to read it
// back (its size), which is what SQLite's own sync of the WAL file makes durable.
func syncFile(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := sc.Control(func(fd uintptr) {
		for {
			serr = unix.Fdatasync(int(fd))
			if serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
