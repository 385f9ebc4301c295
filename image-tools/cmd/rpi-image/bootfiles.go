package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rpi-deploy/rpi-deploy/image-tools/bootfiles"
)

// runBootfiles copies the Pi 5 netboot files out of an image's boot partition.
func runBootfiles(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bootfiles", "IMAGE DIR", stderr)
	tmp := fs.String("tmpdir", "", "`DIR` for the decompressed copy of a compressed image without manifest")
	quiet := fs.Bool("q", false, "print nothing but errors")
	pos, err := parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	opt := bootfiles.Options{TempDir: *tmp}
	if !*quiet {
		opt.Progress = stderr
	}
	files, err := bootfiles.Extract(ctx, pos[0], pos[1], opt)
	if err != nil {
		return err
	}
	if !*quiet {
		for _, f := range files {
			fmt.Fprintln(stdout, f)
		}
		fmt.Fprintf(stdout, "%d files copied to %s\n", len(files), pos[1])
	}
	return nil
}
