package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/rpi-deploy/rpi-deploy/image-tools/imgfile"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/zstimg"
)

// runVerify checks a packed NAME.img.zst against its manifest, or a written card or image
// file against a manifest (--manifest): only the data ranges, read back in parallel.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", "NAME.img.zst | --manifest NAME.manifest.json CARD-OR-IMAGE", stderr)
	manPath := fs.String("manifest", "", "manifest `FILE` (default: beside a packed image)")
	jobs := fs.Int("j", 0, "chunks checked at once (default: number of CPUs)")
	full := fs.Bool("full", false, "card or image file: check whole chunks (free space must read as zeros), not only the data ranges")
	quiet := fs.Bool("q", false, "no progress output")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	target := pos[0]
	var prog io.Writer = stderr
	if *quiet {
		prog = nil
	}

	f, err := os.Open(target)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("size of %q: %w", target, err)
	}
	head := make([]byte, 8)
	f.ReadAt(head, 0)
	packed := imgfile.Detect(head) == imgfile.Zstd

	if *manPath == "" {
		if !packed {
			fs.Usage()
			return fmt.Errorf("%w: %q is not a packed image: give --manifest to check a card or image file", errUsage, target)
		}
		*manPath = manifest.PathFor(target)
	}
	m, err := manifest.Load(*manPath)
	if err != nil {
		return err
	}
	if packed {
		if err := zstimg.Verify(ctx, f, size, m, zstimg.VerifyOptions{Concurrency: *jobs, Progress: prog}); err != nil {
			return fmt.Errorf("verify %q: %w", target, err)
		}
		fmt.Fprintf(stdout, "%s: OK: %d frames, %d bytes, sha256 %s\n", target, len(m.Chunks), m.Size, m.SHA256)
		return nil
	}
	f.Close()
	return verifyTarget(ctx, target, size, m, *jobs, *full, prog, stdout)
}
