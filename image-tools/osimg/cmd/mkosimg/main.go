// Command mkosimg builds (or finds in the cache) the osimg master images and prints
// where they are: `go run ./image-tools/osimg/cmd/mkosimg -flavour firstrun,cloud-init`
// (root; docs/osimg.md). -key only prints the cache keys.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/image-tools/osimg"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mkosimg", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flavours := fs.String("flavour", osimg.Firstrun+","+osimg.CloudInit, "comma-separated flavours to build")
	kernel := fs.String("kernel", "build/kernel", "what initramfs/fetch-kernel.sh made")
	cache := fs.String("cache", "", "cache directory (default $XDG_CACHE_HOME/rpi-deploy/osimg)")
	keyOnly := fs.Bool("key", false, "print the cache keys only")
	quiet := fs.Bool("q", false, "no build output")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := stderr
	if *quiet {
		log = nil
	}
	for _, f := range strings.Split(*flavours, ",") {
		o := osimg.Options{Flavour: f, KernelDir: *kernel, CacheDir: *cache, Log: log}
		if *keyOnly {
			key, _, err := o.Key()
			if err != nil {
				fmt.Fprintf(stderr, "mkosimg: %v\n", err)
				return 1
			}
			fmt.Fprintf(stdout, "%s %s\n", f, key)
			continue
		}
		img, err := osimg.Build(ctx, o)
		if err != nil {
			fmt.Fprintf(stderr, "mkosimg: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s %s cached=%v build_seconds=%.0f rootfs_seconds=%.0f\n",
			f, img.Dir, img.Cached, img.Info.Seconds, img.Info.RootfsSeconds)
	}
	return 0
}
