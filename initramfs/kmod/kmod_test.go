package kmod

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// debianModules returns the module tree of Debian's arm64 kernel, fetched (once, cached
// under build/kernel) by initramfs/fetch-kernel.sh.
func debianModules(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "initramfs/fetch-kernel.sh"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fetch the arm64 kernel: %v\n%s", err, out)
	}
	return filepath.Join(root, "build/kernel/modules")
}

// copyModule copies module rel of tree src into dst, compressed with tool ("" = as is).
func copyModule(t *testing.T, src, dst, rel, tool string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(src, rel))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dst, rel)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	switch tool {
	case "xz":
		run(t, "xz", "--check=crc32", out)
	case "zstd":
		run(t, "zstd", "-q", "--rm", out)
	case "gzip":
		run(t, "gzip", out)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func TestResolveDebian(t *testing.T) {
	tree, err := Open(debianModules(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tree.Resolve([]string{"virtio_net", "virtio-blk", "virtio_pci", "virtio_net", "af_packet"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel/net/core/failover.ko",
		"kernel/drivers/net/net_failover.ko",
		"kernel/drivers/net/virtio_net.ko",
		"kernel/drivers/block/virtio_blk.ko",
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko",
		"kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
		"kernel/drivers/virtio/virtio_pci.ko",
		// af_packet is built in: nothing to load.
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Resolve (-want +got):\n%s", diff)
	}
}

// TestResolveCompressed builds a module tree like a master image's (compressed
// modules, a modules.builtin) and resolves through it.
func TestResolveCompressed(t *testing.T) {
	src := debianModules(t)
	dst := t.TempDir()
	copyModule(t, src, dst, "kernel/net/core/failover.ko", "xz")
	copyModule(t, src, dst, "kernel/drivers/net/net_failover.ko", "zstd")
	copyModule(t, src, dst, "kernel/drivers/net/virtio_net.ko", "gzip")
	copyModule(t, src, dst, "kernel/drivers/block/virtio_blk.ko", "")
	if err := os.WriteFile(filepath.Join(dst, "modules.builtin"), []byte("kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tree.Resolve([]string{"virtio_net", "virtio_blk", "virtio"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel/net/core/failover.ko.xz",
		"kernel/drivers/net/net_failover.ko.zst",
		"kernel/drivers/net/virtio_net.ko.gz",
		"kernel/drivers/block/virtio_blk.ko",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Resolve (-want +got):\n%s", diff)
	}

	t.Run("missing dependency", func(t *testing.T) {
		if err := os.Remove(filepath.Join(dst, "kernel/net/core/failover.ko.xz")); err != nil {
			t.Fatal(err)
		}
		tree, err := Open(dst)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tree.Resolve([]string{"virtio_net"})
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"failover" (needed by "net_failover")`) {
			t.Errorf("error = %v, want ErrNotFound naming failover and net_failover", err)
		}
	})
	t.Run("unknown module", func(t *testing.T) {
		_, err := tree.Resolve([]string{"no_such_module"})
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("error = %v, want ErrNotFound", err)
		}
	})
}

func TestOpenBad(t *testing.T) {
	if _, err := Open(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no modules there") {
		t.Errorf("empty directory: error = %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Errorf("missing directory: no error")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "junk.ko"), []byte("not ELF"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Resolve([]string{"junk"}); err == nil || !strings.Contains(err.Error(), "junk.ko") {
		t.Errorf("junk module: error = %v", err)
	}
}
