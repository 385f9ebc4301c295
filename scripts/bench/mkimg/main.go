// Command mkimg builds a Raspberry Pi OS-shaped test image with image-tools/testimg and
// packs it with image-tools/pack, for the benchmarks:
//
//	go run ./scripts/bench/mkimg -o DIR/NAME.img.zst -root-data 700 -root-free 300
//
// It keeps the raw image beside the packed one (DIR/NAME.img).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
)

func main() {
	out := flag.String("o", "", "packed image to write (NAME.img.zst)")
	kind := flag.String("kind", string(testimg.BookwormFirstrun), "image kind")
	rootData := flag.Int64("root-data", 700, "MiB of file data in rootfs")
	rootFree := flag.Int64("root-free", 300, "MiB of free space in rootfs")
	bootSize := flag.Int64("boot", 256, "MiB of bootfs")
	flag.Parse()
	if !strings.HasSuffix(*out, ".img.zst") {
		fmt.Fprintln(os.Stderr, "mkimg: -o NAME.img.zst required")
		os.Exit(2)
	}
	raw := strings.TrimSuffix(*out, ".zst")
	if _, err := testimg.Build(raw, testimg.Options{Kind: testimg.Kind(*kind), RootData: *rootData << 20,
		RootFree: *rootFree << 20, BootSize: *bootSize << 20, Seed: 7}); err != nil {
		fmt.Fprintln(os.Stderr, "mkimg:", err)
		os.Exit(1)
	}
	m, err := pack.Pack(context.Background(), pack.Options{Input: raw, Output: *out, Force: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimg:", err)
		os.Exit(1)
	}
	fmt.Printf("mkimg: %s: %d bytes raw, %d data, %d compressed, %d chunks\n", *out, m.Size, m.DataBytes, m.CompressedSize, len(m.Chunks))
}
