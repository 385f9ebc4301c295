// Package bootfiles copies what a Raspberry Pi 5 needs to boot over the network out of
// the boot partition of an image into a TFTP root: kernel_2712.img, the bcm2712 device
// trees, overlays/, config.txt, cmdline.txt and initramfs_2712 if there is one. It
// reads the FAT file system directly (package fat): no mounting, no root rights, and it
// works on raw, packed (.img.zst with its manifest) and compressed images alike.
//
// Left out on purpose: kernels and device trees of other models, the firmware files the
// Pi 5 keeps in its EEPROM (start*.elf, fixup*.dat, bootcode.bin), and the per-image
// first-boot files (firstrun.sh, user-data, meta-data, network-config, custom.toml).
package bootfiles

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/image-tools/fat"
	"github.com/rpi-deploy/rpi-deploy/image-tools/imgfile"
	"github.com/rpi-deploy/rpi-deploy/image-tools/layout"
	"github.com/rpi-deploy/rpi-deploy/internal/atomicfile"
)

// Kernel is the Pi 5 kernel's file name.
const Kernel = "kernel_2712.img"

// ErrNotPi5 is returned when the boot partition lacks the Pi 5 kernel or device tree.
var ErrNotPi5 = errors.New("boot partition has no Raspberry Pi 5 kernel or device tree")

// Wanted reports whether the boot partition file at p (slash-separated, relative to
// the partition root, as "overlays/README") belongs in a Pi 5 TFTP root.
func Wanted(p string) bool {
	name := strings.ToLower(p)
	if strings.HasPrefix(name, "overlays/") {
		return true
	}
	if strings.Contains(name, "/") {
		return false
	}
	switch {
	case name == Kernel, name == "config.txt", name == "cmdline.txt", name == "initramfs_2712":
		return true
	case strings.HasPrefix(name, "bcm2712") && strings.HasSuffix(name, ".dtb"):
		return true
	}
	return false
}

// Options tune Extract. The zero value is ready to use.
type Options struct {
	// TempDir holds the decompressed copy of an xz/gzip/zstd input without manifest;
	// default os.TempDir().
	TempDir string
	// Progress, if set, receives progress of such a decompression.
	Progress io.Writer
}

// Extract copies the Pi 5 netboot files of the image at imagePath into dir (created if
// needed) and returns their paths relative to dir, sorted.
func Extract(ctx context.Context, imagePath, dir string, opt Options) ([]string, error) {
	im, err := imgfile.Open(ctx, imagePath, imgfile.Options{TempDir: opt.TempDir, Progress: opt.Progress})
	if err != nil {
		return nil, err
	}
	defer im.Close()
	files, err := Copy(im, im.Size, dir)
	if err != nil {
		return nil, fmt.Errorf("boot files of %q: %w", imagePath, err)
	}
	return files, nil
}

// Copy copies the Pi 5 netboot files of the image r (size bytes) into dir. Each file is
// written under a temporary name and renamed into place; on error the files this call
// created are removed again and files it would have replaced are left as they were.
func Copy(r io.ReaderAt, size int64, dir string) (files []string, err error) {
	boot, _, err := layout.OpenBoot(r, size)
	if err != nil {
		return nil, err
	}
	items, err := wantedItems(boot)
	if err != nil {
		return nil, err
	}

	var created []string // files and directories this call made, to undo on error
	defer func() {
		if err != nil {
			for i := len(created) - 1; i >= 0; i-- {
				os.Remove(created[i])
			}
			files = nil
		}
	}()
	var mkdir func(d string) error
	mkdir = func(d string) error {
		if _, err := os.Stat(d); err == nil {
			return nil
		}
		if err := mkdir(filepath.Dir(d)); err != nil {
			return err
		}
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		created = append(created, d)
		return nil
	}
	if err := mkdirAll(dir, mkdir); err != nil {
		return nil, err
	}
	for _, it := range items {
		dst := filepath.Join(dir, filepath.FromSlash(it.path))
		if it.dir {
			if err := mkdirAll(dst, mkdir); err != nil {
				return nil, err
			}
			continue
		}
		data, err := boot.ReadFile(it.path)
		if err != nil {
			return nil, err
		}
		if err := mkdirAll(filepath.Dir(dst), mkdir); err != nil {
			return nil, err
		}
		_, existed := os.Stat(dst)
		if err := atomicfile.WriteBytes(dst, atomicfile.DefaultMode, data); err != nil {
			return nil, err
		}
		if existed != nil {
			created = append(created, dst)
		}
		files = append(files, path.Clean(it.path))
	}
	slices.Sort(files)
	return files, nil
}

// item is a file or directory of the boot partition that Copy copies.
type item struct {
	path string
	dir  bool
}

// wantedItems lists the netboot files and directories of boot (see Wanted); the
// partition must hold the Pi 5 kernel and a device tree, else ErrNotPi5.
func wantedItems(boot *fat.FS) ([]item, error) {
	var items []item
	err := boot.Walk(func(p string, e fat.Entry) error {
		if !Wanted(p) && !(e.IsDir && strings.EqualFold(p, "overlays")) {
			if e.IsDir {
				return fs.SkipDir
			}
			return nil
		}
		if !filepath.IsLocal(filepath.FromSlash(p)) {
			return fmt.Errorf("boot partition entry %q is not a plain relative path", p)
		}
		items = append(items, item{p, e.IsDir})
		return nil
	})
	if err != nil {
		return nil, err
	}
	hasKernel := slices.ContainsFunc(items, func(it item) bool { return strings.EqualFold(it.path, Kernel) })
	hasDTB := slices.ContainsFunc(items, func(it item) bool {
		return !strings.Contains(it.path, "/") && strings.HasSuffix(strings.ToLower(it.path), ".dtb")
	})
	if !hasKernel || !hasDTB {
		return nil, fmt.Errorf("%w (kernel %s: %v, bcm2712*.dtb: %v)", ErrNotPi5, Kernel, hasKernel, hasDTB)
	}
	return items, nil
}

func mkdirAll(d string, mkdir func(string) error) error {
	if err := mkdir(filepath.Clean(d)); err != nil {
		return fmt.Errorf("create directory %q: %w", d, err)
	}
	return nil
}
