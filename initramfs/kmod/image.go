package kmod

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/image-tools/ext4"
	"github.com/rpi-deploy/rpi-deploy/image-tools/imgfile"
	"github.com/rpi-deploy/rpi-deploy/image-tools/mbr"
)

// ErrNoModules is returned for an image whose root file system has no module tree to
// pick.
var ErrNoModules = errors.New("no kernel module tree")

// FromImage copies the module tree of kernel version kver out of the ext4 root file
// system of a master image (raw, .img.zst with its manifest, .xz or .gz) into
// dir/<kver> and returns that directory. An empty kver picks the Raspberry Pi 5's:
// the one tree under lib/modules whose name ends in "2712" (Raspberry Pi OS
// "6.12.47+rpt-rpi-2712") or, for older images, "v8-16k+".
func FromImage(ctx context.Context, image, dir, kver string) (string, error) {
	im, err := imgfile.Open(ctx, image, imgfile.Options{TempDir: dir})
	if err != nil {
		return "", err
	}
	defer im.Close()
	parts, err := mbr.Read(im, im.Size)
	if err != nil {
		return "", fmt.Errorf("partitions of %q: %w", image, err)
	}
	var root *ext4.FS
	for _, p := range parts {
		if fsys, err := ext4.Open(im, p.Start, p.Size); err == nil {
			if _, err := fsys.Stat("lib/modules"); err == nil {
				root = fsys
				break
			}
		}
	}
	if root == nil {
		return "", fmt.Errorf("%q: %w: no ext4 partition with /lib/modules", image, ErrNoModules)
	}
	versions, err := root.ReadDir("lib/modules")
	if err != nil {
		return "", fmt.Errorf("%q: /lib/modules: %w", image, err)
	}
	slices.Sort(versions)
	if kver == "" {
		if kver, err = pickPi5(versions); err != nil {
			return "", fmt.Errorf("%q: %w", image, err)
		}
	} else if !slices.Contains(versions, kver) {
		return "", fmt.Errorf("%q: %w for %q (have %s)", image, ErrNoModules, kver, strings.Join(versions, ", "))
	}
	out := filepath.Join(dir, kver)
	if err := os.RemoveAll(out); err != nil {
		return "", err
	}
	if err := copyTree(root, path.Join("lib/modules", kver), out); err != nil {
		return "", fmt.Errorf("%q: copy /lib/modules/%s: %w", image, kver, err)
	}
	return out, nil
}

// pickPi5 picks the Raspberry Pi 5 kernel's module tree among versions.
func pickPi5(versions []string) (string, error) {
	for _, suffix := range []string{"2712", "v8-16k+"} {
		var found []string
		for _, v := range versions {
			if strings.HasSuffix(v, suffix) {
				found = append(found, v)
			}
		}
		switch len(found) {
		case 0:
			continue
		case 1:
			return found[0], nil
		default:
			return "", fmt.Errorf("several Pi 5 kernels (%s): name one", strings.Join(found, ", "))
		}
	}
	return "", fmt.Errorf("%w for the Pi 5 (no version ending in 2712 or v8-16k+ among %s)", ErrNoModules, strings.Join(versions, ", "))
}

// copyTree copies the regular files and directories under src of fsys into dst. Only
// the files a module tree needs are copied: modules and the modules.* indexes.
func copyTree(fsys *ext4.FS, src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	names, err := fsys.ReadDir(src)
	if err != nil {
		return err
	}
	for _, name := range names {
		if strings.Contains(name, "/") || name == "." || name == ".." {
			return fmt.Errorf("directory entry %q in %s", name, src)
		}
		p := path.Join(src, name)
		fi, err := fsys.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode.IsDir():
			if err := copyTree(fsys, p, filepath.Join(dst, name)); err != nil {
				return err
			}
		case fi.Mode.IsRegular() && (moduleName(name) != "" || strings.HasPrefix(name, "modules.")):
			b, err := fsys.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
				return err
			}
		case fi.Mode&fs.ModeSymlink != 0:
			// build/ and source/ point into the kernel headers; nothing to load there.
		}
	}
	return nil
}
