package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/progress"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
)

// verifyTarget reads back a written card or image file (size bytes) and checks it against
// m: the data ranges of every chunk against DataSHA256, or with full whole chunks against
// SHA256. Reads use O_DIRECT where the file system allows (package readback).
func verifyTarget(ctx context.Context, target string, size int64, m *manifest.Manifest, jobs int, full bool, prog, stdout io.Writer) (err error) {
	if size < m.Size {
		return fmt.Errorf("verify %q: it is %d bytes, the image %q needs %d", target, size, m.Name, m.Size)
	}
	what := m.DataBytes
	if full {
		what = m.Size
	}
	bar := progress.Start(prog, "reading back "+target, what)
	defer func() { bar.Finish(err == nil) }()
	var last int64
	n, err := readback.Verify(ctx, target, m, readback.Options{
		Workers: jobs,
		Full:    full,
		Progress: func(done, total int64) {
			bar.Add(done - last)
			last = done
		},
	})
	if err != nil {
		return fmt.Errorf("verify %q against %q: %w", target, m.Name, err)
	}
	mode := "data ranges"
	if full {
		mode = "whole chunks"
	}
	fmt.Fprintf(stdout, "%s: OK: %d chunks match %s (%s, %s)\n", target, n, m.Name, mode, progress.Bytes(what))
	return nil
}
