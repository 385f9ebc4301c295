//go:build linux

// Command rootinit is the /init of the small initrd that boots an osimg master image
// in QEMU (image-tools/osimg): it loads the kernel modules of /modules/load.list in
// order, finds the partition named by root=PARTUUID=<disk id>-<nn> on the kernel
// command line (the MBR disk signature, as the kernel itself matches it), mounts it
// (rootfstype=, default ext4; read-write unless "ro" is given) and switch_roots into
// init= (default /sbin/init), passing the rest of the command line on to it as the
// kernel would. A real Raspberry Pi boots the card's own kernel without an initrd; QEMU's
// virt machine cannot, and Debian's generic kernel has virtio and ext4 as modules.
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/initenv"
	"github.com/u-root/u-root/pkg/kmodule"
	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"
)

const (
	modulesDir = "/modules"
	newRoot    = "/root"
	rootWait   = 30 * time.Second
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "rootinit: %v\n", err)
		// An init that returns panics the kernel; panic=-1 on the command line makes
		// that a reboot, which -no-reboot turns into a QEMU exit.
		time.Sleep(time.Second)
		os.Exit(1)
	}
}

func run() error {
	for _, m := range []struct{ src, dir, fstype string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dir, m.fstype, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	if err := loadModules(); err != nil {
		return err
	}
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	args := strings.Fields(string(b))
	root, fstype, init, flags := "", "ext4", "/sbin/init", uintptr(0)
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "root":
			root = v
		case "rootfstype":
			fstype = v
		case "init":
			init = v
		case "ro":
			flags |= unix.MS_RDONLY
		}
	}
	disk, part, err := parsePartUUID(root)
	if err != nil {
		return err
	}
	var dev string
	for deadline := time.Now().Add(rootWait); ; time.Sleep(100 * time.Millisecond) {
		if dev, err = findPartition(disk, part); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("root %s: %w", root, err)
		}
	}
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, newRoot, fstype, flags, ""); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", dev, fstype, newRoot, err)
	}
	fmt.Fprintf(os.Stderr, "rootinit: root %s is %s, switching to %s\n", root, dev, init)
	// The kernel passes init the arguments it does not know as key=value environment
	// and the rest as arguments; systemd reads its own settings from /proc/cmdline.
	return mount.SwitchRoot(newRoot, init)
}

func loadModules() error {
	f, err := os.Open(filepath.Join(modulesDir, "load.list"))
	if err != nil {
		return err
	}
	mods, err := initenv.ParseModuleList(f)
	f.Close()
	if err != nil {
		return err
	}
	for _, m := range mods {
		f, err := os.Open(filepath.Join(modulesDir, m.File))
		if err != nil {
			return err
		}
		err = kmodule.FileInit(f, m.Params, 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("load module %s: %w", m.File, err)
		}
	}
	return nil
}

// parsePartUUID splits an MBR "PARTUUID=xxxxxxxx-nn" root into disk signature and
// partition number.
func parsePartUUID(root string) (uint32, int, error) {
	id, ok := strings.CutPrefix(root, "PARTUUID=")
	sig, num, ok2 := strings.Cut(id, "-")
	if !ok || !ok2 || len(sig) != 8 {
		return 0, 0, fmt.Errorf("root=%q: want PARTUUID=xxxxxxxx-nn", root)
	}
	s, err := strconv.ParseUint(sig, 16, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("root=%q: %w", root, err)
	}
	n, err := strconv.ParseUint(num, 16, 8)
	if err != nil || n == 0 {
		return 0, 0, fmt.Errorf("root=%q: bad partition number", root)
	}
	return uint32(s), int(n), nil
}

// findPartition returns /dev/<disk><n> (or <disk>p<n>) of the whole disk whose MBR
// signature is sig.
func findPartition(sig uint32, n int) (string, error) {
	disks, err := os.ReadDir("/sys/block")
	if err != nil {
		return "", err
	}
	for _, d := range disks {
		f, err := os.Open("/dev/" + d.Name())
		if err != nil {
			continue
		}
		mbr := make([]byte, 512)
		_, err = f.ReadAt(mbr, 0)
		f.Close()
		if err != nil || mbr[510] != 0x55 || mbr[511] != 0xaa || binary.LittleEndian.Uint32(mbr[440:]) != sig {
			continue
		}
		for _, p := range []string{fmt.Sprintf("%s%d", d.Name(), n), fmt.Sprintf("%sp%d", d.Name(), n)} {
			if _, err := os.Stat("/dev/" + p); err == nil {
				return "/dev/" + p, nil
			}
		}
		return "", fmt.Errorf("disk %s has signature %08x but no partition %d", d.Name(), sig, n)
	}
	return "", fmt.Errorf("no disk with MBR signature %08x", sig)
}
