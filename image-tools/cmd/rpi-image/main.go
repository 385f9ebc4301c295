// Command rpi-image packs Raspberry Pi master images for rpi-deploy and works with
// packed images: pack, inspect, verify, bootfiles, bmap, push, eeprom-card, write. See docs/manifest.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

var version = "dev"

// command is one subcommand: it parses its own flags from args.
type command struct {
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	summary string
}

var commands = map[string]command{
	"pack":        {runPack, "pack IN -o NAME.img.zst: compress an image into frames + manifest"},
	"inspect":     {runInspect, "inspect IMAGE|MANIFEST [--json]: partitions, file systems, data, boot files, first boot"},
	"verify":      {runVerify, "verify NAME.img.zst | --manifest M CARD-OR-IMAGE: check against a manifest"},
	"bootfiles":   {runBootfiles, "bootfiles IMAGE DIR: copy the Pi 5 netboot files out of the boot partition"},
	"bmap":        {runBmap, "bmap IMAGE [-o FILE]: write a bmaptool block map of the data ranges"},
	"push":        {runPush, "push [--server URL] NAME.img.zst: upload image and manifest to rpi-deployd, resumable"},
	"eeprom-card": {runEepromCard, "eeprom-card --firmware FILE|DIR [--boot-order 0xf21] [--set KEY=VALUE]... -o CARD.img: Pi 5 bootloader card that turns network boot on"},
	"write":       {runWrite, "write CARD.img /dev/sdX [/dev/sdY ...]: write an image to several cards at once and read each back"},
}

var order = []string{"pack", "inspect", "verify", "bootfiles", "bmap", "push", "eeprom-card", "write"}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case err != nil:
		fmt.Fprintf(os.Stderr, "rpi-image: %v\n", err)
		os.Exit(1)
	}
}

// errUsage marks an error in how the command was called.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return flag.ErrHelp
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(stdout, "rpi-image", version)
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		usage(stderr)
		return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: rpi-image COMMAND [flags] ARGS (COMMAND -h for its flags)")
	for _, name := range order {
		fmt.Fprintf(w, "  %s\n", commands[name].summary)
	}
}

// newFlags returns a flag set for a subcommand that reports to stderr.
func newFlags(name, args string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: rpi-image %s [flags] %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args (flags may come after positional arguments too) and checks the
// number of positional arguments is in [minArgs, maxArgs].
func parse(fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) < minArgs || len(pos) > maxArgs {
		fs.Usage()
		return nil, fmt.Errorf("%w: %s takes %d–%d arguments, got %d", errUsage, fs.Name(), minArgs, maxArgs, len(pos))
	}
	return pos, nil
}
