package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/image-tools/bmap"
	"github.com/rpi-deploy/rpi-deploy/image-tools/imgfile"
	"github.com/rpi-deploy/rpi-deploy/image-tools/layout"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/internal/atomicfile"
)

// runBmap writes a bmaptool block map (version 2.0, SHA256) of an image's data ranges:
// a packed image's manifest ranges, or the ranges found from a raw image's file systems.
func runBmap(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bmap", "IMAGE [-o FILE.bmap]", stderr)
	out := fs.String("o", "", "output `FILE` (default: IMAGE's name with .bmap, \"-\" for stdout)")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	in := pos[0]
	im, err := imgfile.Open(ctx, in, imgfile.Options{Progress: stderr})
	if err != nil {
		return fmt.Errorf("open %q: %w", in, err)
	}
	defer im.Close()
	var ranges []manifest.Range
	if im.Manifest != nil {
		ranges = im.Manifest.Ranges
	} else {
		lay, err := layout.Analyze(im, im.Size)
		if err != nil {
			return fmt.Errorf("read layout of %q: %w", in, err)
		}
		ranges = lay.Ranges
	}
	if *out == "-" {
		w := bufio.NewWriter(stdout)
		if err := bmap.Write(w, im, im.Size, ranges); err != nil {
			return err
		}
		return w.Flush()
	}
	if *out == "" {
		base := in
		for _, s := range []string{".zst", ".xz", ".gz", ".img"} {
			base = strings.TrimSuffix(base, s)
		}
		*out = base + ".bmap"
	}
	if err := atomicfile.Write(*out, func(w io.Writer) error { return bmap.Write(w, im, im.Size, ranges) }); err != nil {
		return fmt.Errorf("write bmap %q: %w", *out, err)
	}
	fmt.Fprintf(stdout, "%s: %d ranges\n", *out, len(ranges))
	return nil
}
