// Package layout reads what a disk image holds without mounting it: the MBR partition
// table, the file systems in it, which byte ranges hold data (the rest is free space a
// writer may skip), the OS release and the first-boot mechanism.
//
// Data ranges: the first MiB (partition table, boot loader gap) always; in a FAT
// partition its reserved sectors, FATs and allocated clusters (package fat); in an
// ext4 partition the blocks its bitmaps mark in use (package ext4); any other
// partition whole. Gaps between partitions are free.
package layout

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/image-tools/ext4"
	"github.com/rpi-deploy/rpi-deploy/image-tools/fat"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/mbr"
)

// HeadBytes is the start of the image that always counts as data.
const HeadBytes = 1 << 20

// Layout is what Analyze found.
type Layout struct {
	// Ranges hold data: sorted, merged, aligned to manifest.BlockSize (or ending at the
	// image size).
	Ranges     []manifest.Range
	Partitions []manifest.Partition
	FirstBoot  string // a manifest.FirstBoot* constant
	OSRelease  string // PRETTY_NAME of the root file system's os-release, "" if unknown
	// BootFiles lists the names in the root directory of the boot partition.
	BootFiles []string
	// Warnings say where a partition had to be taken whole although it holds a known
	// file system (e.g. an ext4 journal that needs recovery).
	Warnings []string
}

// ReadOnly adapts an io.ReaderAt to fat.Device; writes fail.
type ReadOnly struct{ io.ReaderAt }

// ErrReadOnly is returned by ReadOnly.WriteAt.
var ErrReadOnly = errors.New("image opened read-only")

// WriteAt fails with ErrReadOnly.
func (ReadOnly) WriteAt([]byte, int64) (int, error) { return 0, ErrReadOnly }

// Analyze reads the image r of size bytes. A broken partition table or a corrupt file
// system is an error that names the partition; a partition with an unknown file system
// counts as all data. An image without a partition table at all (no 0x55AA boot
// signature: a bare file system, or opaque test data), or with one this reader does not
// walk (GPT, extended partitions), is all data, with a warning.
func Analyze(r io.ReaderAt, size int64) (*Layout, error) {
	lay := &Layout{}
	if !HasTable(r, size) {
		lay.Ranges = []manifest.Range{{Offset: 0, Length: size}}
		lay.Partitions = []manifest.Partition{}
		lay.Warnings = []string{"no partition table (no 0x55AA signature in sector 0): all of the image counts as data"}
		return lay, nil
	}
	parts, err := mbr.Read(r, size)
	if errors.Is(err, mbr.ErrGPT) || errors.Is(err, mbr.ErrExtended) {
		// A valid table this reader does not walk: writing everything loses nothing.
		lay.Ranges = []manifest.Range{{Offset: 0, Length: size}}
		lay.Partitions = []manifest.Partition{}
		lay.Warnings = []string{fmt.Sprintf("%v: all of the image counts as data", err)}
		return lay, nil
	}
	if err != nil {
		return nil, err
	}
	ranges := []manifest.Range{{Offset: 0, Length: min(HeadBytes, size)}}
	var boot *fat.FS
	var root *ext4.FS
	for _, p := range parts {
		mp := manifest.Partition{Index: p.Index, Type: fmt.Sprintf("%02x", p.Type), Start: p.Start, Size: p.Size, Used: p.Size}
		used, fsys, err := probe(r, p)
		switch {
		case err != nil:
			return nil, fmt.Errorf("partition %d (type 0x%02x at byte %d): %w", p.Index, p.Type, p.Start, err)
		case fsys == nil:
			ranges = append(ranges, manifest.Range{Offset: p.Start, Length: p.Size})
		}
		switch f := fsys.(type) {
		case *fat.FS:
			mp.FS, mp.Label = "vfat", f.Label()
			if _, err := f.Stat("config.txt"); err == nil && boot == nil {
				boot, mp.Bootfs = f, true
			}
		case *ext4.FS:
			mp.FS, mp.Label = "ext4", f.Label()
			if root == nil {
				if _, err := f.ReadFile("etc/os-release"); err == nil {
					root = f
				}
			}
		case unreadable:
			mp.FS = string(f.fs)
			lay.Warnings = append(lay.Warnings, fmt.Sprintf("partition %d: %v: all of it counts as data", p.Index, f.err))
			ranges = append(ranges, manifest.Range{Offset: p.Start, Length: p.Size})
		}
		if used != nil {
			mp.Used = 0
			for _, u := range used {
				if u.Offset < p.Start || u.End() > p.End() {
					return nil, fmt.Errorf("partition %d: %s file system uses [%d,+%d), outside the partition [%d,+%d)", p.Index, mp.FS, u.Offset, u.Length, p.Start, p.Size)
				}
				mp.Used += u.Length
			}
			ranges = append(ranges, used...)
		}
		lay.Partitions = append(lay.Partitions, mp)
	}
	lay.Ranges = Normalize(ranges, size)
	if err := lay.describe(boot, root); err != nil {
		return nil, err
	}
	return lay, nil
}

// describe fills in what the boot partition (its root directory) and the root file
// system (its os-release) say, and the first-boot mechanism they carry. Either may be nil.
func (lay *Layout) describe(boot *fat.FS, root *ext4.FS) error {
	if boot != nil {
		ents, err := boot.ReadDir("")
		if err != nil {
			return fmt.Errorf("boot partition: read root directory: %w", err)
		}
		for _, e := range ents {
			name := e.Name
			if e.IsDir {
				name += "/"
			}
			lay.BootFiles = append(lay.BootFiles, name)
		}
	}
	var osr map[string]string
	if root != nil {
		b, _ := root.ReadFile("etc/os-release")
		osr = ParseOSRelease(b)
		lay.OSRelease = osr["PRETTY_NAME"]
	}
	lay.FirstBoot = FirstBoot(boot, root, osr)
	return nil
}

// HasTable reports whether sector 0 of the image ends with the 0x55AA boot signature
// that every MBR (and a GPT's protective MBR) carries.
func HasTable(r io.ReaderAt, size int64) bool {
	var sig [2]byte
	if size < mbr.SectorSize {
		return false
	}
	if _, err := r.ReadAt(sig[:], 510); err != nil {
		return false
	}
	return sig == [2]byte{0x55, 0xaa}
}

// unreadable is a partition whose file system was recognised but cannot be read
// safely: it is taken whole.
type unreadable struct {
	fs  string
	err error
}

// probe opens the file system of p, trying FAT then ext4. It returns the absolute
// byte ranges the file system uses and the open file system; (nil, nil, nil) for an
// unknown one; (nil, unreadable, nil) for one that must be taken whole.
func probe(r io.ReaderAt, p mbr.Partition) ([]manifest.Range, any, error) {
	ff, err := fat.Open(ReadOnly{r}, p.Start, p.Size)
	switch {
	case err == nil:
		used, err := ff.UsedRanges()
		if err != nil {
			return nil, nil, err
		}
		return used, ff, nil
	case errors.Is(err, fat.ErrUnsupported):
		return nil, unreadable{"vfat", err}, nil
	case !errors.Is(err, fat.ErrNotFAT):
		return nil, nil, err
	}
	ef, err := ext4.Open(r, p.Start, p.Size)
	switch {
	case err == nil:
		used, err := ef.UsedRanges()
		if errors.Is(err, ext4.ErrUnsupported) || errors.Is(err, ext4.ErrNeedsRecovery) {
			return nil, unreadable{"ext4", err}, nil
		}
		if err != nil {
			return nil, nil, err
		}
		return used, ef, nil
	case errors.Is(err, ext4.ErrUnsupported) || errors.Is(err, ext4.ErrNeedsRecovery):
		return nil, unreadable{"ext4", err}, nil
	case !errors.Is(err, ext4.ErrNotExt4):
		return nil, nil, err
	}
	return nil, nil, nil
}

// Normalize sorts ranges, widens each to manifest.BlockSize boundaries (clipped to
// size), and merges overlapping and touching ones: the form manifest.Ranges takes.
func Normalize(ranges []manifest.Range, size int64) []manifest.Range {
	const bs = manifest.BlockSize
	rs := slices.Clone(ranges)
	slices.SortFunc(rs, func(a, b manifest.Range) int { return int(min(max(a.Offset-b.Offset, -1), 1)) })
	out := []manifest.Range{}
	for _, r := range rs {
		if r.Length <= 0 {
			continue
		}
		s := r.Offset / bs * bs
		e := min((r.End()+bs-1)/bs*bs, size)
		if s >= e {
			continue
		}
		if n := len(out); n > 0 && s <= out[n-1].End() {
			out[n-1].Length = max(out[n-1].End(), e) - out[n-1].Offset
			continue
		}
		out = append(out, manifest.Range{Offset: s, Length: e - s})
	}
	return out
}

// FirstBoot applies the detection rule (docs/manifest.md): boot has user-data or
// meta-data → cloud-init; else boot has custom.toml → custom.toml; else root has
// usr/lib/raspberrypi-sys-mods/imager_custom or os-release VERSION_CODENAME=bookworm →
// firstrun; else none. boot and root may be nil.
func FirstBoot(boot *fat.FS, root *ext4.FS, osRelease map[string]string) string {
	has := func(name string) bool {
		if boot == nil {
			return false
		}
		_, err := boot.Stat(name)
		return err == nil
	}
	switch {
	case has("user-data") || has("meta-data"):
		return manifest.FirstBootCloudInit
	case has("custom.toml"):
		return manifest.FirstBootCustomToml
	}
	if root != nil {
		if _, err := root.Stat("usr/lib/raspberrypi-sys-mods/imager_custom"); err == nil {
			return manifest.FirstBootFirstrun
		}
	}
	if osRelease["VERSION_CODENAME"] == "bookworm" {
		return manifest.FirstBootFirstrun
	}
	return manifest.FirstBootNone
}

// ParseOSRelease parses an os-release file: KEY=value lines, values optionally quoted.
func ParseOSRelease(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
			v = strings.NewReplacer(`\"`, `"`, `\\`, `\`, "\\$", "$", "\\`", "`").Replace(v)
		}
		out[strings.TrimSpace(k)] = v
	}
	return out
}

// ErrNoBoot is returned by OpenBoot for an image without a FAT partition that holds
// config.txt.
var ErrNoBoot = errors.New("no boot partition (a FAT partition with config.txt)")

// OpenBoot finds and opens the boot partition of the image r of size bytes: the first
// FAT partition that holds config.txt.
func OpenBoot(r io.ReaderAt, size int64) (*fat.FS, mbr.Partition, error) {
	parts, err := mbr.Read(r, size)
	if err != nil {
		return nil, mbr.Partition{}, err
	}
	for _, p := range parts {
		f, err := fat.Open(ReadOnly{r}, p.Start, p.Size)
		if errors.Is(err, fat.ErrNotFAT) || errors.Is(err, fat.ErrUnsupported) {
			continue
		}
		if err != nil {
			return nil, p, fmt.Errorf("partition %d (type 0x%02x at byte %d): %w", p.Index, p.Type, p.Start, err)
		}
		if _, err := f.Stat("config.txt"); err == nil {
			return f, p, nil
		}
	}
	return nil, mbr.Partition{}, ErrNoBoot
}
