package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/progress"
)

func runPack(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("pack", "IN -o NAME.img.zst", stderr)
	var opt pack.Options
	fs.StringVar(&opt.Output, "o", "", "output `NAME.img.zst` (the manifest goes beside it as NAME.manifest.json)")
	fs.StringVar(&opt.Name, "name", "", "image name in the manifest (default: from the output file name)")
	fs.Int64Var(&opt.ChunkSize, "chunk-size", manifest.DefaultChunkSize, "raw `bytes` per chunk and zstd frame (multiple of 4096)")
	fs.IntVar(&opt.Level, "level", pack.DefaultLevel, "zstd `level` 1–22")
	fs.IntVar(&opt.Concurrency, "j", 0, "chunks compressed at once (default: number of CPUs)")
	fs.StringVar(&opt.Bmap, "bmap", "", "take the data ranges from this bmaptool `FILE` instead of the file systems")
	fs.BoolVar(&opt.Force, "force", false, "replace an existing output")
	fs.StringVar(&opt.TempDir, "tmpdir", "", "`DIR` for the decompressed copy of a compressed input (default: the output's directory)")
	fs.BoolVar(&opt.Raw, "raw", false, "accept an input without a partition table (packed whole as data)")
	quiet := fs.Bool("q", false, "no progress output")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	opt.Input = pos[0]
	if opt.Output == "" {
		fs.Usage()
		return fmt.Errorf("%w: pack needs -o NAME.img.zst", errUsage)
	}
	if !*quiet {
		opt.Progress = stderr
	}
	m, err := pack.Pack(ctx, opt)
	if err != nil {
		return fmt.Errorf("pack %q: %w", opt.Input, err)
	}
	fmt.Fprintf(stdout, "%s: %s raw, %s data in %d ranges, %s packed (%.1f%%), %d chunks; manifest %s\n",
		opt.Output, progress.Bytes(m.Size), progress.Bytes(m.DataBytes), len(m.Ranges),
		progress.Bytes(m.CompressedSize), 100*float64(m.CompressedSize)/float64(m.Size), len(m.Chunks), manifest.PathFor(opt.Output))
	fmt.Fprintf(stdout, "sha256 %s\n", m.SHA256)
	return nil
}
