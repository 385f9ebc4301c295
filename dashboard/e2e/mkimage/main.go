// Command mkimage builds the browser tests' master image: a small Raspberry Pi
// OS-shaped disk image (image-tools/testimg: MBR, FAT32 bootfs, ext4 rootfs) packed
// as NAME.img.zst + NAME.manifest.json (image-tools/pack), as `rpi-image pack` would.
//
//	go run ./dashboard/e2e/mkimage -o DIR/NAME.img.zst
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
)

func main() {
	out := flag.String("o", "", "output `NAME.img.zst` (manifest beside it)")
	rootData := flag.Int64("root-data", 24<<20, "`bytes` of generated file data in rootfs")
	flag.Parse()
	if *out == "" || !strings.HasSuffix(*out, ".img.zst") || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: mkimage -o DIR/NAME.img.zst")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, *out, *rootData)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out string, rootData int64) error {
	if err := testimg.RequireTools(); err != nil {
		return err
	}
	raw := strings.TrimSuffix(out, ".img.zst") + ".img"
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	info, err := testimg.BuildContext(ctx, raw, testimg.Options{
		BootSize: testimg.MinBootSize, RootData: rootData, RootFree: 4 << 20, Seed: 7,
	})
	if err != nil {
		return fmt.Errorf("build test image: %w", err)
	}
	defer os.Remove(raw)
	m, err := pack.Pack(ctx, pack.Options{Input: raw, Output: out, Force: true})
	if err != nil {
		return fmt.Errorf("pack %q: %w", raw, err)
	}
	fmt.Printf("%s: %d bytes raw (%s), %d packed, sha256 %s\n", out, info.Size, info.Kind, m.CompressedSize, m.SHA256)
	return nil
}
