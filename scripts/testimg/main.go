// Command testimg writes a Raspberry Pi OS-shaped master image (MBR, FAT32 bootfs,
// ext4 rootfs, built with sfdisk, mkfs.vfat, mtools and mkfs.ext4 -d by
// image-tools/testimg) for the demo and the benches:
//
//	go run ./scripts/testimg -o build/demo/master.img -kind bookworm-firstrun -root-data-mib 48
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testimg: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("testimg", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "output image `FILE` (replaced)")
	kind := fs.String("kind", string(testimg.BookwormFirstrun), fmt.Sprintf("image kind, one of %q", testimg.Kinds))
	bootMiB := fs.Int64("boot-mib", 64, "FAT32 bootfs size in MiB (at least 33)")
	dataMiB := fs.Int64("root-data-mib", 16, "generated file data in rootfs, MiB (0 = none)")
	freeMiB := fs.Int64("root-free-mib", 32, "free space left in rootfs, MiB (0 = as little as mkfs allows)")
	used := fs.Bool("used", false, "a used card: deleted-file data in the free space")
	seed := fs.Int64("seed", 1, "content seed (same seed, same image)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("usage: testimg -o FILE [flags]")
	}
	neg := func(mib int64) int64 {
		if mib <= 0 {
			return -1
		}
		return mib * testimg.MiB
	}
	info, err := testimg.BuildContext(ctx, *out, testimg.Options{
		Kind: testimg.Kind(*kind), BootSize: *bootMiB * testimg.MiB,
		RootData: neg(*dataMiB), RootFree: neg(*freeMiB), Used: *used, Seed: *seed,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s, %d MiB (bootfs %d MiB at %d MiB, rootfs %d MiB), %d files\n", info.Path, info.Kind,
		info.Size>>20, info.Boot.Size>>20, info.Boot.Offset>>20, info.Root.Size>>20, len(info.Files))
	return nil
}
