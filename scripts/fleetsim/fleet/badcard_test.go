package fleet

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
)

// TestBadCardFailsWrites pins what the badcard scenario relies on: the loop device
// reports the card's full size, takes writes up to the tmpfs's capacity, then fails
// them with an I/O error (or no space), and Close leaves no loop device or mount.
func TestBadCardFailsWrites(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (mount, losetup); CI runs as root")
	}
	const size, capacity = 64 << 20, 4 << 20
	card, err := newBadCard(t.TempDir(), size, capacity)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { card.Close() })
	dev, mnt := card.dev, card.mnt

	f, err := os.OpenFile(dev, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := f.Seek(0, 2); err != nil || n != size {
		t.Fatalf("device size %d (%v), want %d", n, err, size)
	}
	buf := blockdev.AlignedBuffer(1 << 20)
	for i := range buf {
		buf[i] = byte(i)
	}
	var written int64
	var werr error
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, werr = f.WriteAt(buf, off); werr != nil {
			break
		}
		written += int64(len(buf))
	}
	if werr == nil {
		t.Fatalf("wrote all %d bytes of a card that holds %d", size, capacity)
	}
	if !errors.Is(werr, unix.EIO) && !errors.Is(werr, unix.ENOSPC) {
		t.Errorf("write error %v, want EIO or ENOSPC", werr)
	}
	if written < capacity/2 || written > capacity {
		t.Errorf("failed after %d bytes, want about the capacity of %d", written, capacity)
	}
	f.Close()

	if err := card.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mnt); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount point %q left behind (%v)", mnt, err)
	}
	if b, _ := os.ReadFile("/sys/block/" + dev[len("/dev/"):] + "/loop/backing_file"); len(b) > 0 {
		t.Errorf("%s still attached to %s", dev, b)
	}
}
