package kmod

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// masterImage builds a disk image with sfdisk and mkfs.ext4 -d: partition 1 FAT32
// type (left unformatted), partition 2 an ext4 root file system holding the module
// trees of kernels kvers, each with Debian's virtio_net and its dependencies
// xz-compressed, as Raspberry Pi OS ships them.
func masterImage(t *testing.T, kvers ...string) string {
	t.Helper()
	src := debianModules(t)
	dir := t.TempDir()
	stage := filepath.Join(dir, "rootfs")
	for _, kver := range kvers {
		tree := filepath.Join(stage, "lib/modules", kver)
		for _, rel := range []string{"kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko", "kernel/drivers/net/virtio_net.ko"} {
			copyModule(t, src, tree, rel, "xz")
		}
		if err := os.WriteFile(filepath.Join(tree, "modules.builtin"), []byte("kernel/drivers/virtio/virtio.ko\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/usr/src/linux-headers-"+kver, filepath.Join(tree, "build")); err != nil {
			t.Fatal(err)
		}
	}
	rootfs := filepath.Join(dir, "rootfs.img")
	run(t, "mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", stage, rootfs, "16M")
	disk := filepath.Join(dir, "master.img")
	run(t, "truncate", "-s", "40M", disk)
	sfdisk := "label: dos\nstart=16384, size=32768, type=c\nstart=49152, size=32768, type=83\n"
	if err := os.WriteFile(filepath.Join(dir, "layout"), []byte(sfdisk), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "sh", "-c", "sfdisk -q "+disk+" < "+filepath.Join(dir, "layout"))
	run(t, "dd", "if="+rootfs, "of="+disk, "bs=1M", "seek=24", "conv=notrunc", "status=none")
	return disk
}

func TestFromImage(t *testing.T) {
	ctx := context.Background()
	disk := masterImage(t, "6.12.47+rpt-rpi-v8", "6.12.47+rpt-rpi-2712")
	out := t.TempDir()
	root, err := FromImage(ctx, disk, out, "")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(root) != "6.12.47+rpt-rpi-2712" {
		t.Errorf("picked %s, want the 2712 kernel's tree", root)
	}
	tree, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tree.Resolve([]string{"virtio_net", "virtio"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kernel/net/core/failover.ko.xz", "kernel/drivers/net/net_failover.ko.xz", "kernel/drivers/net/virtio_net.ko.xz"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Resolve (-want +got):\n%s", diff)
	}
	if _, err := os.Lstat(filepath.Join(root, "build")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the build symlink was copied: %v", err)
	}

	t.Run("named version", func(t *testing.T) {
		root, err := FromImage(ctx, disk, t.TempDir(), "6.12.47+rpt-rpi-v8")
		if err != nil || filepath.Base(root) != "6.12.47+rpt-rpi-v8" {
			t.Errorf("FromImage = %q, %v", root, err)
		}
	})
	t.Run("unknown version", func(t *testing.T) {
		_, err := FromImage(ctx, disk, t.TempDir(), "5.10.0")
		if !errors.Is(err, ErrNoModules) || !strings.Contains(err.Error(), "6.12.47+rpt-rpi-2712") {
			t.Errorf("error = %v, want ErrNoModules listing the versions", err)
		}
	})
	t.Run("no Pi 5 kernel", func(t *testing.T) {
		_, err := FromImage(ctx, masterImage(t, "6.12.47+rpt-rpi-v8"), t.TempDir(), "")
		if !errors.Is(err, ErrNoModules) {
			t.Errorf("error = %v, want ErrNoModules", err)
		}
	})
	t.Run("not a disk image", func(t *testing.T) {
		junk := filepath.Join(t.TempDir(), "junk.img")
		if err := os.WriteFile(junk, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := FromImage(ctx, junk, t.TempDir(), ""); err == nil {
			t.Errorf("no error for an image without partitions")
		}
	})
}
