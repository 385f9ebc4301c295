package netboot_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
)

// TestTftprootCommand runs `rpi-deployd tftproot` on a Raspberry Pi OS-shaped image
// built with mkfs/mtools and checks every file against the image, the initramfs in
// place of the image's own, and the image's config.txt/cmdline.txt left out.
func TestTftprootCommand(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "master.img")
	info, err := testimg.Build(img, testimg.Options{RootData: -1, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	initramfs := filepath.Join(dir, "initramfs.cpio")
	os.WriteFile(initramfs, []byte("070701 our initramfs"), 0o644)
	out := filepath.Join(dir, "tftproot")

	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b, err := exec.CommandContext(ctx, binary, append([]string{"tftproot"}, args...)...).CombinedOutput()
		return string(b), err
	}
	msg, err := run("--image", img, "--initramfs", initramfs, "--out", out)
	if err != nil {
		t.Fatalf("tftproot: %v\n%s", err, msg)
	}
	for _, f := range info.Files {
		if f.FS != "bootfs" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(f.Path)))
		wanted := f.Path == "kernel_2712.img" || strings.HasPrefix(f.Path, "overlays/") ||
			(strings.HasPrefix(f.Path, "bcm2712") && strings.HasSuffix(f.Path, ".dtb"))
		switch {
		case wanted && err != nil:
			t.Errorf("%s missing from the root: %v", f.Path, err)
		case wanted:
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != f.SHA256 {
				t.Errorf("%s differs from the image's", f.Path)
			}
		case f.Path == "config.txt" || f.Path == "cmdline.txt" || f.Path == "initramfs_2712":
		case err == nil:
			t.Errorf("%s copied but not needed for netboot", f.Path)
		}
	}
	for _, gone := range []string{"config.txt", "cmdline.txt"} {
		if _, err := os.Stat(filepath.Join(out, gone)); err == nil {
			t.Errorf("%s kept (rpi-deployd generates it)", gone)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, "initramfs_2712")); string(b) != "070701 our initramfs" {
		t.Errorf("initramfs_2712 = %q, want ours", b)
	}
	if !strings.Contains(msg, "kernel_2712.img") || !strings.Contains(msg, "initramfs_2712") {
		t.Errorf("output does not list the files:\n%s", msg)
	}

	for name, args := range map[string][]string{
		"no initramfs":    {"--image", img, "--initramfs", filepath.Join(dir, "nope"), "--out", out},
		"no image":        {"--image", filepath.Join(dir, "nope.img"), "--initramfs", initramfs, "--out", out},
		"not an image":    {"--image", initramfs, "--initramfs", initramfs, "--out", filepath.Join(dir, "x")},
		"missing --out":   {"--image", img, "--initramfs", initramfs},
		"empty initramfs": {"--image", img, "--initramfs", os.DevNull, "--out", filepath.Join(dir, "y")},
	} {
		if msg, err := run(args...); err == nil || !strings.HasPrefix(msg, "rpi-deployd: ") {
			t.Errorf("%s: %v %q, want a clear error", name, err, msg)
		}
	}
	// The root kept its files through the failed runs.
	if b, _ := os.ReadFile(filepath.Join(out, "initramfs_2712")); string(b) != "070701 our initramfs" {
		t.Errorf("a failed run damaged the root")
	}
}
