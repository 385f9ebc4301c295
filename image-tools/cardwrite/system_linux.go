package cardwrite

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
)

// System is where the package looks at the running system; the zero value means the
// real /proc/self/mountinfo, /proc/swaps and /sys.
type System struct {
	MountInfo string // default /proc/self/mountinfo
	Swaps     string // default /proc/swaps
	Sys       string // default /sys
}

func (s System) path(p, def string) string {
	if p == "" {
		return def
	}
	return p
}

func (s System) info(path string) (devInfo, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return devInfo{}, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return devInfo{}, fmt.Errorf("%w: %q is not a block device", ErrRefused, path)
	}
	return s.infoOf(fmt.Sprintf("%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))))
}

// infoOf looks a device number up in /sys/dev/block.
func (s System) infoOf(majMin string) (devInfo, error) {
	sys := s.path(s.Sys, "/sys")
	link, err := filepath.EvalSymlinks(filepath.Join(sys, "dev", "block", majMin))
	if err != nil {
		return devInfo{}, fmt.Errorf("device %s in sysfs: %w", majMin, err)
	}
	d := devInfo{name: filepath.Base(link), majMin: majMin, disk: filepath.Base(link)}
	if _, err := os.Stat(filepath.Join(link, "partition")); err == nil {
		d.partOf, d.disk = true, filepath.Base(filepath.Dir(link))
	}
	holders, _ := os.ReadDir(filepath.Join(link, "holders"))
	d.holdersN = len(holders)
	return d, nil
}

// Check refuses a target that is not a whole block device, is the running system's
// disk, is mounted (it or a partition), is swap, or is held by another device.
func (s System) Check(path string) error {
	d, err := s.info(path)
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return err
		}
		return fmt.Errorf("%w: %q: %w", ErrRefused, path, err)
	}
	if d.partOf {
		return fmt.Errorf("%w: %q is partition %s of %s; give the whole card (/dev/%s)", ErrRefused, path, d.name, d.disk, d.disk)
	}
	if d.holdersN > 0 {
		return fmt.Errorf("%w: %q is held by another device (device mapper, RAID)", ErrRefused, path)
	}
	f, err := os.Open(s.path(s.MountInfo, "/proc/self/mountinfo"))
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var mounted []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || strings.HasPrefix(fields[2], "0:") {
			continue // a virtual file system has no block device
		}
		m, err := s.infoOf(fields[2])
		if err != nil || m.disk != d.disk {
			continue
		}
		if fields[4] == "/" {
			return fmt.Errorf("%w: %q holds the running system (mounted at /)", ErrRefused, path)
		}
		mounted = append(mounted, "/dev/"+m.name+" at "+unescape(fields[4]))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	if len(mounted) > 0 {
		return fmt.Errorf("%w: %q is mounted (%s); unmount it first", ErrRefused, path, strings.Join(mounted, ", "))
	}
	swaps, _ := os.ReadFile(s.path(s.Swaps, "/proc/swaps"))
	for _, line := range strings.Split(string(swaps), "\n") {
		dev, _, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(dev, "/dev/") {
			continue
		}
		if m, err := s.info(dev); err == nil && m.disk == d.disk {
			return fmt.Errorf("%w: %q is used as swap (%s)", ErrRefused, path, dev)
		}
	}
	return nil
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%3o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// openCard opens a checked card for direct writing. O_EXCL: the kernel refuses
// (EBUSY) a block device that is mounted or in use.
func openCard(path string) (*blockdev.File, error) {
	return blockdev.Open(path, os.O_RDWR|unix.O_EXCL)
}

// rereadPartitions lets the kernel see the new partition table; a reader without
// partitions refuses, which is fine.
func rereadPartitions(f *blockdev.File) {
	_ = unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0)
}
