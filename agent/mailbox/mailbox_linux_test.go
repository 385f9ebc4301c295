package mailbox

import (
	"errors"
	"os"
	"testing"
)

// TestNoVcio: where /dev/vcio does not exist (this host, QEMU) SetRebootOrder says so
// with ErrNoMailbox, and the agent goes on.
func TestNoVcio(t *testing.T) {
	if _, err := os.Stat(Device); err == nil {
		t.Skipf("%s exists: this is a Raspberry Pi; the reboot order would really be set", Device)
	}
	if err := SetRebootOrder(OrderSDThenNetwork); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("SetRebootOrder without %s: %v, want ErrNoMailbox", Device, err)
	}
}

// TestIoctlNumber: IOCTL_MBOX_PROPERTY as the C macro _IOWR(100, 0, char *) gives it
// on a 64-bit kernel (0xc0086400) or a 32-bit one (0xc0046400).
func TestIoctlNumber(t *testing.T) {
	want := uintptr(0xc0086400)
	if ^uintptr(0)>>32 == 0 {
		want = 0xc0046400
	}
	if ioctlMboxProperty != want {
		t.Errorf("ioctlMboxProperty = %#x, want %#x", ioctlMboxProperty, want)
	}
}
