package mailbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Device is the vcio character device of the Raspberry Pi kernel.
const Device = "/dev/vcio"

// ioctlMboxProperty is IOCTL_MBOX_PROPERTY = _IOWR(100, 0, char *): direction
// read|write, the size of a pointer, type 100, number 0.
const ioctlMboxProperty = (3 << 30) | (uintptr(unsafe.Sizeof(uintptr(0))) << 16) | (100 << 8) | 0

// SetRebootOrder asks the firmware to boot with order on the next reboot only. When
// there is no /dev/vcio it returns an error wrapping ErrNoMailbox.
func SetRebootOrder(order uint32) error {
	f, err := os.OpenFile(Device, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", Device, ErrNoMailbox)
		}
		return err
	}
	defer f.Close()
	msg := RebootOrderMessage(order)
	// Words, so that the buffer is 4-byte aligned as the firmware expects.
	buf := make([]uint32, len(msg)/4)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), len(msg)), msg)
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if cerr := conn.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, ioctlMboxProperty, uintptr(unsafe.Pointer(&buf[0])))
	}); cerr != nil {
		return cerr
	}
	if errno != 0 {
		// The kernel's firmware driver turns a response code other than success into EINVAL.
		return fmt.Errorf("%s: ioctl IOCTL_MBOX_PROPERTY tag %#08x: %w", Device, uint32(TagSetRebootOrder), errno)
	}
	got, err := ParseRebootOrderResponse(unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), len(msg)))
	if err != nil {
		return err
	}
	if got != order {
		return fmt.Errorf("set reboot order %#x: the firmware reports %#x: %w", order, got, ErrRejected)
	}
	return nil
}
