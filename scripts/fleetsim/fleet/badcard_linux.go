package fleet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// badCard is an SD card that fails its writes part way: a loop device over a sparse
// file of the card's full size that sits on a tmpfs holding only capacity bytes.
// Once the tmpfs is full, every further write to the device fails with an I/O error,
// the way a worn-out card does. Needs root (mount, losetup).
type badCard struct {
	mnt string // the tmpfs
	dev string // /dev/loopN
}

// newBadCard makes the card in dir: size is what the card claims to hold, capacity
// what it can really store.
func newBadCard(dir string, size, capacity int64) (_ *badCard, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("bad card: needs root for mount and losetup")
	}
	losetup, err := exec.LookPath("losetup")
	if err != nil {
		return nil, fmt.Errorf("bad card: %w (install util-linux)", err)
	}
	b := &badCard{mnt: filepath.Join(dir, "badcard")}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	if err := os.MkdirAll(b.mnt, 0o755); err != nil {
		return nil, err
	}
	capacity = (capacity + 4095) &^ 4095
	if err := unix.Mount("tmpfs", b.mnt, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", capacity)); err != nil {
		return nil, fmt.Errorf("bad card: mount tmpfs on %q: %w", b.mnt, err)
	}
	backing := filepath.Join(b.mnt, "card")
	f, err := os.Create(backing)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("bad card: size %q: %w", backing, err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	out, err := exec.Command(losetup, "--find", "--show", backing).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("bad card: losetup %q: %w: %s", backing, err, strings.TrimSpace(string(out)))
	}
	b.dev = strings.TrimSpace(string(out))
	return b, nil
}

// Close detaches the loop device and unmounts the tmpfs.
func (b *badCard) Close() error {
	var errs []error
	if b.dev != "" {
		if out, err := exec.Command("losetup", "--detach", b.dev).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("losetup --detach %s: %w: %s", b.dev, err, strings.TrimSpace(string(out))))
		}
		b.dev = ""
	}
	if b.mnt != "" {
		if err := unix.Unmount(b.mnt, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %q: %w", b.mnt, err))
		}
		os.Remove(b.mnt)
		b.mnt = ""
	}
	return errors.Join(errs...)
}
