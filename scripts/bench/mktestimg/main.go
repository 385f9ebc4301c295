// Command mktestimg builds a Raspberry Pi OS-shaped test image with image-tools/testimg,
// for benchmarks and demos: mktestimg -o FILE [-root-data BYTES] [-used] [-kind KIND].
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
)

func main() {
	out := flag.String("o", "", "output image `FILE`")
	var opt testimg.Options
	kind := flag.String("kind", string(testimg.BookwormFirstrun), "image kind")
	flag.Int64Var(&opt.BootSize, "boot-size", 0, "bootfs `bytes` (default 64 MiB)")
	flag.Int64Var(&opt.RootData, "root-data", 0, "generated file `bytes` in rootfs (default 16 MiB)")
	flag.Int64Var(&opt.RootFree, "root-free", 0, "free `bytes` left in rootfs (default 32 MiB)")
	flag.BoolVar(&opt.Used, "used", false, "a used card: random bytes and deleted files in free space")
	flag.Int64Var(&opt.Seed, "seed", 1, "content seed")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	opt.Kind = testimg.Kind(*kind)
	info, err := testimg.Build(*out, opt)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mktestimg:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: %d bytes, %d files\n", info.Path, info.Size, len(info.Files))
}
