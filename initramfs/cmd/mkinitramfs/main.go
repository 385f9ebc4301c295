// Command mkinitramfs builds the rpi-deploy initramfs (`make initramfs`): a linux/arm64
// u-root archive with u-root's init, the agent as uinit (`rpi-agent --uinit`), the
// rescue tools, and the kernel modules named by -modules taken from a kernel's module
// tree, compressed so the Raspberry Pi kernel unpacks it.
//
//	mkinitramfs -o build/initramfs_2712 -modules-from build/kernel/modules \
//	    -modules virtio_pci,virtio_net,virtio_blk
//
// Run it from the module root: u-root builds the Go packages of this module.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/initramfs"
)

func main() {
	var c initramfs.Config
	var modules string
	flag.StringVar(&c.Out, "o", "build/initramfs_2712", "the compressed initramfs to write")
	flag.StringVar(&c.Agent, "agent", "./agent/cmd/rpi-agent", "Go package of the agent (the uinit)")
	flag.StringVar(&c.ModulesFrom, "modules-from", "", "where modules come from: a kernel's lib/modules/<version> directory, or a master image")
	flag.StringVar(&c.KernelVersion, "kernel-version", "", "with an image: the lib/modules/<version> to use (default: the Pi 5 kernel's)")
	flag.StringVar(&modules, "modules", "", "comma-separated kernel modules to include (dependencies are added); default with -modules-from: the Pi 5 drivers the kernel has as modules")
	flag.StringVar(&c.Compress, "compress", "gzip", strings.Join(initramfs.Compressions, ", "))
	flag.StringVar(&c.GOARCH, "goarch", "arm64", "GOARCH of the initramfs")
	flag.Parse()
	for _, m := range strings.Split(modules, ",") {
		if m = strings.TrimSpace(m); m != "" {
			c.Modules = append(c.Modules, m)
		}
	}
	if len(c.Modules) == 0 && c.ModulesFrom != "" {
		c.OptionalModules = initramfs.PiModules
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	res, err := initramfs.Build(ctx, c, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkinitramfs:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "mkinitramfs: %s: %d bytes (%s; cpio %d bytes; %d modules) in %v\n",
		c.Out, res.Size, c.Compress, res.CPIOSize, len(res.Modules), res.Took.Round(100_000_000))
}
