//go:build linux

package netboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/rpi-deploy/rpi-deploy/image-tools/bootfiles"
	"github.com/rpi-deploy/rpi-deploy/internal/atomicfile"
	"github.com/rpi-deploy/rpi-deploy/server/tftp"
)

// BuildRoot assembles a TFTP root in out: the Pi 5 boot files of the master image
// (kernel_2712.img, bcm2712*.dtb, overlays/; see image-tools/bootfiles) plus our
// initramfs as initramfs_2712, replacing the image's own. The image's config.txt and
// cmdline.txt are removed: rpi-deployd generates both per board. It returns the files
// of the root, relative to out, sorted. progress (may be nil) sees the decompression
// of a compressed image.
func BuildRoot(ctx context.Context, image, initramfs, out string, progress io.Writer) ([]string, error) {
	st, err := os.Stat(initramfs)
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		return nil, fmt.Errorf("initramfs %q: not a regular, non-empty file", initramfs)
	}
	files, err := bootfiles.Extract(ctx, image, out, bootfiles.Options{Progress: progress})
	if err != nil {
		return nil, err
	}
	for _, gen := range []string{"config.txt", "cmdline.txt"} {
		if err := os.Remove(filepath.Join(out, gen)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		files = slices.DeleteFunc(files, func(f string) bool { return f == gen })
	}
	if err := atomicfile.Copy(initramfs, filepath.Join(out, tftp.InitramfsFile)); err != nil {
		return nil, err
	}
	if !slices.Contains(files, tftp.InitramfsFile) {
		files = append(files, tftp.InitramfsFile)
		slices.Sort(files)
	}
	return files, tftp.CheckRoot(out)
}
