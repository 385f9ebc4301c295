package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/rpi-deploy/rpi-deploy/image-tools/imgfile"
	"github.com/rpi-deploy/rpi-deploy/image-tools/layout"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/progress"
)

// report is what inspect prints (as JSON with --json).
type report struct {
	Path       string               `json:"path"`
	Format     string               `json:"format"` // raw, zstd, xz, gzip, manifest
	Size       int64                `json:"size"`
	DataBytes  int64                `json:"data_bytes"`
	Ranges     int                  `json:"ranges"`
	Partitions []manifest.Partition `json:"partitions"`
	FirstBoot  string               `json:"first_boot"`
	OSRelease  string               `json:"os_release,omitempty"`
	BootFiles  []string             `json:"boot_files,omitempty"`
	Warnings   []string             `json:"warnings,omitempty"`
	Packed     *packedInfo          `json:"packed,omitempty"`
}

type packedInfo struct {
	Name           string `json:"name"`
	SHA256         string `json:"sha256"`
	ChunkSize      int64  `json:"chunk_size"`
	Chunks         int    `json:"chunks"`
	CompressedSize int64  `json:"compressed_size"`
	Created        string `json:"created,omitempty"`
	Source         string `json:"source,omitempty"`
}

// runInspect describes an image: a raw image or card, a packed .img.zst, a compressed
// image, or a manifest alone.
func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("inspect", "IMAGE|MANIFEST", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	tmp := fs.String("tmpdir", "", "`DIR` for the decompressed copy of a compressed image without manifest")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	rep, err := inspect(ctx, pos[0], *tmp, stderr)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printReport(stdout, rep)
	return nil
}

func inspect(ctx context.Context, path, tmp string, prog io.Writer) (*report, error) {
	if m, ok, err := loadIfManifest(path); err != nil {
		return nil, err
	} else if ok {
		img := strings.TrimSuffix(path, ".manifest.json") + ".img.zst"
		if _, err := os.Stat(img); err == nil {
			return inspect(ctx, img, tmp, prog)
		}
		rep := &report{Path: path, Format: "manifest", Size: m.Size, DataBytes: m.DataBytes, Ranges: len(m.Ranges),
			Partitions: m.Partitions, FirstBoot: m.FirstBoot, OSRelease: m.OSRelease, Packed: packed(m)}
		return rep, nil
	}
	im, err := imgfile.Open(ctx, path, imgfile.Options{TempDir: tmp, Progress: prog})
	if err != nil {
		return nil, err
	}
	defer im.Close()
	lay, err := layout.Analyze(im, im.Size)
	if err != nil {
		return nil, fmt.Errorf("inspect %q: %w", path, err)
	}
	rep := &report{Path: path, Format: string(im.Format), Size: im.Size, Ranges: len(lay.Ranges),
		Partitions: lay.Partitions, FirstBoot: lay.FirstBoot, OSRelease: lay.OSRelease,
		BootFiles: lay.BootFiles, Warnings: lay.Warnings}
	for _, r := range lay.Ranges {
		rep.DataBytes += r.Length
	}
	if im.Manifest != nil {
		rep.Packed = packed(im.Manifest)
	}
	return rep, nil
}

// loadIfManifest loads path as a manifest if it looks like JSON.
func loadIfManifest(path string) (*manifest.Manifest, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	head := make([]byte, 64)
	n, _ := f.Read(head)
	if !bytes.HasPrefix(bytes.TrimSpace(head[:n]), []byte("{")) {
		return nil, false, nil
	}
	m, err := manifest.Load(path)
	return m, err == nil, err
}

func packed(m *manifest.Manifest) *packedInfo {
	return &packedInfo{Name: m.Name, SHA256: m.SHA256, ChunkSize: m.ChunkSize, Chunks: len(m.Chunks),
		CompressedSize: m.CompressedSize, Created: m.Created, Source: m.Source}
}

func printReport(w io.Writer, r *report) {
	pct := func(a, b int64) float64 {
		if b == 0 {
			return 0
		}
		return 100 * float64(a) / float64(b)
	}
	fmt.Fprintf(w, "image:       %s (%s, %s)\n", r.Path, r.Format, progress.Bytes(r.Size))
	fmt.Fprintf(w, "data:        %s in %d ranges (%.1f%%)\n", progress.Bytes(r.DataBytes), r.Ranges, pct(r.DataBytes, r.Size))
	osr := r.OSRelease
	if osr == "" {
		osr = "(unknown)"
	}
	fb := r.FirstBoot
	if fb == "" {
		fb = "none"
	}
	fmt.Fprintf(w, "os release:  %s\nfirst boot:  %s\n", osr, fb)
	if p := r.Packed; p != nil {
		fmt.Fprintf(w, "packed:      %s, %d chunks of %s, %s compressed (%.1f%%), sha256 %s\n",
			p.Name, p.Chunks, progress.Bytes(p.ChunkSize), progress.Bytes(p.CompressedSize), pct(p.CompressedSize, r.Size), p.SHA256)
	}
	fmt.Fprintln(w, "partitions:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\ttype\tfs\tlabel\tstart\tsize\tused\t")
	for _, p := range r.Partitions {
		fsName := p.FS
		if fsName == "" {
			fsName = "?"
		}
		flag := ""
		if p.Bootfs {
			flag = "boot"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%d\t%s\t%s (%.0f%%)\t%s\n", p.Index, p.Type, fsName, p.Label, p.Start,
			progress.Bytes(p.Size), progress.Bytes(p.Used), pct(p.Used, p.Size), flag)
	}
	tw.Flush()
	if len(r.BootFiles) > 0 {
		fmt.Fprintf(w, "boot files:  %s\n", strings.Join(r.BootFiles, " "))
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "warning:     %s\n", s)
	}
}
