// Command mktestimg builds a Raspberry Pi OS-shaped test image with image-tools/testimg
// (MBR, FAT32 bootfs, ext4 rootfs), for benchmarks, the demo and the browser tests, and
// with -pack also packs it with image-tools/pack (NAME.img.zst + NAME.manifest.json, as
// `rpi-image pack` writes them):
//
//	mktestimg -o FILE [-root-data BYTES] [-root-free BYTES] [-used] [-kind KIND] [-pack NAME.img.zst]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
)

func main() {
	out := flag.String("o", "", "output image `FILE`")
	packed := flag.String("pack", "", "also pack the image into `NAME.img.zst` (manifest beside it)")
	var opt testimg.Options
	kind := flag.String("kind", string(testimg.BookwormFirstrun), "image kind")
	flag.Int64Var(&opt.BootSize, "boot-size", 0, "bootfs `bytes` (default 64 MiB)")
	flag.Int64Var(&opt.RootData, "root-data", 0, "generated file `bytes` in rootfs (default 16 MiB)")
	flag.Int64Var(&opt.RootFree, "root-free", 0, "free `bytes` left in rootfs (default 32 MiB)")
	flag.BoolVar(&opt.Used, "used", false, "a used card: random bytes and deleted files in free space")
	flag.Int64Var(&opt.Seed, "seed", 1, "content seed")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 || (*packed != "" && !strings.HasSuffix(*packed, ".img.zst")) {
		flag.Usage()
		os.Exit(2)
	}
	opt.Kind = testimg.Kind(*kind)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, *out, *packed, opt)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mktestimg:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out, packed string, opt testimg.Options) error {
	if err := testimg.RequireTools(); err != nil {
		return err
	}
	info, err := testimg.BuildContext(ctx, out, opt)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %d bytes, %d files\n", info.Path, info.Size, len(info.Files))
	if packed == "" {
		return nil
	}
	m, err := pack.Pack(ctx, pack.Options{Input: out, Output: packed, Force: true})
	if err != nil {
		return fmt.Errorf("pack %q: %w", out, err)
	}
	fmt.Printf("%s: %d bytes raw, %d data, %d packed, %d chunks, sha256 %s\n",
		packed, m.Size, m.DataBytes, m.CompressedSize, len(m.Chunks), m.SHA256)
	return nil
}
