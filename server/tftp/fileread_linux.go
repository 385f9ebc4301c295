package tftp

import (
	"errors"
	"io"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fileReader reads a boot file in filePiece pieces. A piece that is in the page cache
// (a boot file that boards read again and again nearly always is) is read with
// preadv2(RWF_NOWAIT) as a raw system call: it cannot block, so it needs none of the
// runtime's system call path, whose entersyscall wakes the runtime's sleeping monitor
// thread (sysmon) — in a lock-step transfer, which leaves every P idle between two
// blocks, once per piece, and sysmon then runs at 20 µs intervals for a while,
// switching contexts on the cores the transfer and its client need (docs/netboot.md
// "Per-packet cost"). A piece not in the cache (EAGAIN) is read with an ordinary
// ReadAt, which may block as it must. tmpfs and ramfs have no RWF_NOWAIT (EOPNOTSUPP)
// but hold their files in memory: there a plain pread is the raw call. Any other file
// system without RWF_NOWAIT gets ReadAt only.
type fileReader struct {
	f        *os.File
	rc       syscall.RawConn // nil: ReadAt only
	buf      []byte
	r, w     int   // buf[r:w] is read and not yet returned
	off      int64 // file offset of the next piece
	err      error // the error after buf[r:w]
	raw      int   // pieces read with a raw system call (tests)
	fallback int   // pieces read with ReadAt (tests)

	iov    unix.Iovec
	n      uintptr
	errno  syscall.Errno
	read   func(fd uintptr) // preadv2(RWF_NOWAIT), or memory
	memory func(fd uintptr) // pread64, for tmpfs and ramfs
}

func newFileReader(f *os.File) *fileReader {
	r := &fileReader{f: f, buf: make([]byte, filePiece)}
	nowait := func(fd uintptr) {
		r.n, _, r.errno = syscall.RawSyscall6(unix.SYS_PREADV2, fd, uintptr(unsafe.Pointer(&r.iov)), 1,
			uintptr(r.off), 0, unix.RWF_NOWAIT)
	}
	r.memory = func(fd uintptr) {
		r.n, _, r.errno = syscall.RawSyscall6(unix.SYS_PREAD64, fd, uintptr(unsafe.Pointer(r.iov.Base)), uintptr(r.iov.Len),
			uintptr(r.off), 0, 0)
	}
	// The raw calls pass the offset in one register: 64-bit systems only (on 32-bit
	// ones it takes two, laid out per architecture). Elsewhere ReadAt only.
	if rc, err := f.SyscallConn(); err == nil && unsafe.Sizeof(uintptr(0)) == 8 {
		r.rc, r.read = rc, nowait
	}
	return r
}

// inMemory tells whether f is on tmpfs or ramfs.
func inMemory(f *os.File) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}

func (r *fileReader) Read(p []byte) (int, error) {
	if r.r == r.w {
		if r.err != nil {
			return 0, r.err
		}
		r.fill()
		if r.r == r.w {
			return 0, r.err
		}
	}
	n := copy(p, r.buf[r.r:r.w])
	r.r += n
	return n, nil
}

// fill reads the next piece into buf.
func (r *fileReader) fill() {
	r.r, r.w = 0, 0
	if r.rc != nil {
		r.iov.Base = &r.buf[0]
		r.iov.SetLen(len(r.buf))
		err := r.rc.Control(r.read)
		switch {
		case err != nil:
			r.err = err
			return
		case r.errno == 0 && r.n == 0:
			r.err = io.EOF
			return
		case r.errno == 0:
			r.w = int(r.n)
			r.off += int64(r.n)
			r.raw++
			return
		case r.errno == syscall.EOPNOTSUPP || r.errno == syscall.EINVAL || r.errno == syscall.ENOSYS:
			if inMemory(r.f) {
				r.read = r.memory // no RWF_NOWAIT, but nothing to wait for either
				r.fill()
				return
			}
			r.rc = nil // the file system (or kernel) has no RWF_NOWAIT: ReadAt from now on
		case r.errno != syscall.EAGAIN && r.errno != syscall.EINTR:
			r.err = &os.PathError{Op: "read", Path: r.f.Name(), Err: r.errno}
			return
		}
	}
	r.fallback++
	n, err := r.f.ReadAt(r.buf, r.off)
	r.w = n
	r.off += int64(n)
	if err != nil && (n == 0 || !errors.Is(err, io.EOF)) {
		r.err = err
	}
}
