//go:build linux

package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/rpi-deploy/rpi-deploy/server/cli"
	"github.com/rpi-deploy/rpi-deploy/server/netboot"
)

// tftproot assembles a TFTP root: `rpi-deployd tftproot --image IMAGE --initramfs FILE --out DIR`.
func tftproot(ctx context.Context, args []string, env cli.Env) error {
	fs := flag.NewFlagSet("tftproot", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	image := fs.String("image", "", "master image (.img, .img.xz/.gz/.zst, or packed .img.zst with its manifest)")
	initramfs := fs.String("initramfs", "", "the rpi-deploy initramfs (make initramfs), served as initramfs_2712")
	out := fs.String("out", "", "TFTP root directory to fill (created if needed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *image == "" || *initramfs == "" || *out == "" || fs.NArg() > 0 {
		return fmt.Errorf("usage: rpi-deployd tftproot --image IMAGE --initramfs FILE --out DIR")
	}
	files, err := netboot.BuildRoot(ctx, *image, *initramfs, *out, env.Stderr)
	if err != nil {
		return fmt.Errorf("tftproot: %w", err)
	}
	for _, f := range files {
		fmt.Fprintln(env.Stdout, f)
	}
	fmt.Fprintf(env.Stdout, "%d files in %s; config.txt and cmdline.txt are generated per board by rpi-deployd serve --tftp-root %s\n",
		len(files), *out, *out)
	return nil
}
