package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rpi-deploy/rpi-deploy/image-tools/cardwrite"
	"github.com/rpi-deploy/rpi-deploy/image-tools/progress"
)

// runWrite writes one image (an eeprom-card, or any raw image) to several cards at
// once and reads each back (package cardwrite). Targets that are mounted, hold the
// running system or are not whole block devices are refused before anything is
// written.
func runWrite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("write", "IMAGE /dev/sdX [/dev/sdY ...]", stderr)
	quiet := fs.Bool("q", false, "print nothing but errors")
	pos, err := parse(fs, args, 2, 256)
	if err != nil {
		return err
	}
	return writeCards(ctx, pos[0], pos[1:], cardwrite.System{}, *quiet, stdout, stderr)
}

func writeCards(ctx context.Context, image string, targets []string, sys cardwrite.System, quiet bool, stdout, stderr io.Writer) (err error) {
	plan, err := cardwrite.NewPlan(image)
	if err != nil {
		return err
	}
	prog := stderr
	if quiet {
		prog = nil
	}
	// One bar for all cards: every byte is written once and read back once.
	total := 2 * plan.Size() * int64(len(targets))
	bar := progress.Start(prog, fmt.Sprintf("writing and reading back %d cards", len(targets)), total)
	res, err := cardwrite.Write(ctx, plan, targets, cardwrite.Options{System: sys, Written: bar.Add, ReadBack: bar.Add})
	bar.Finish(err == nil)
	failed := 0
	for _, r := range res {
		switch {
		case r.Err != nil:
			failed++
			fmt.Fprintf(stderr, "%s: FAILED: %v\n", r.Target, r.Err)
		case !quiet:
			fmt.Fprintf(stdout, "%s: OK: %s written and read back identical\n", r.Target, progress.Bytes(plan.Size()))
		}
	}
	if err != nil {
		return fmt.Errorf("%d of %d cards failed", failed, len(targets))
	}
	return nil
}
