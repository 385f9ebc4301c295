// Package manifest is the contract between rpi-image (which writes it), rpi-deployd
// (which registers and serves it) and rpi-agent (which streams and verifies by it).
//
// A packed image is two files side by side:
//
//	NAME.img.zst          a sequence of independent zstd frames, exactly one frame per
//	                      chunk of the raw image, in order
//	NAME.manifest.json    this document
//
// Chunk i covers raw bytes [i*ChunkSize, min((i+1)*ChunkSize, Size)). Its frame starts
// at Chunks[i].Frame in the compressed file and is Chunks[i].FrameSize bytes long, so a
// reader can resume at any chunk with an HTTP Range request and decode frames in
// parallel. Bytes outside Ranges (free space of the file systems) are stored as zeros,
// so the hashes describe exactly the stream a reader decodes.
//
// The package has no dependencies beyond the standard library: the agent imports it.
package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/internal/atomicfile"
)

// Version is the manifest format version this package writes and reads.
const Version = 1

// DefaultChunkSize is the chunk size rpi-image uses unless told otherwise: 4 MiB.
const DefaultChunkSize = 4 << 20

// BlockSize is the granularity of Ranges: every range starts and ends on a multiple of
// it (or at Size), so a writer can use O_DIRECT.
const BlockSize = 4096

// First-boot mechanisms an image can use (see docs/manifest.md).
const (
	FirstBootNone       = ""            // no known mechanism found
	FirstBootFirstrun   = "firstrun"    // Bookworm: firstrun.sh + systemd.run= in cmdline.txt
	FirstBootCloudInit  = "cloud-init"  // Trixie: user-data / meta-data on the boot partition
	FirstBootCustomToml = "custom.toml" // raspberrypi-sys-mods firstboot: custom.toml
)

// Manifest describes one packed master image.
type Manifest struct {
	Version     int    `json:"version"`
	Name        string `json:"name"`        // image name, e.g. "kxp2-2026-11"; [a-z0-9._-]+
	Size        int64  `json:"size"`        // raw image size in bytes
	SHA256      string `json:"sha256"`      // hex SHA256 of all Size raw bytes (free space as zeros)
	ChunkSize   int64  `json:"chunk_size"`  // bytes per chunk, a multiple of BlockSize
	Compression string `json:"compression"` // "zstd"
	// CompressedSize is the length of NAME.img.zst in bytes.
	CompressedSize int64 `json:"compressed_size"`
	// CompressedSHA256 is the hex SHA256 of NAME.img.zst (lets an uploader and the
	// server check a transfer without decoding).
	CompressedSHA256 string `json:"compressed_sha256,omitempty"`
	// Ranges are the raw byte ranges that hold data, sorted, non-overlapping, merged.
	// Everything else is free space that a writer may skip.
	Ranges     []Range     `json:"ranges"`
	DataBytes  int64       `json:"data_bytes"` // sum of Ranges lengths
	Chunks     []Chunk     `json:"chunks"`
	Partitions []Partition `json:"partitions"`
	// FirstBoot is one of the FirstBoot* constants.
	FirstBoot string `json:"first_boot"`
	// OSRelease is PRETTY_NAME from the root file system's os-release, if found.
	OSRelease string `json:"os_release,omitempty"`
	// Created is the RFC 3339 time of packing.
	Created string `json:"created,omitempty"`
	// Source is a free-form note of what was packed (file name, bmap used).
	Source string `json:"source,omitempty"`
}

// Range is a half-open byte range [Offset, Offset+Length) of the raw image.
type Range struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

// End returns the first byte after r.
func (r Range) End() int64 { return r.Offset + r.Length }

// Chunk is one ChunkSize piece of the raw image and its zstd frame.
type Chunk struct {
	SHA256 string `json:"sha256"` // hex SHA256 of the whole raw chunk as decoded
	// DataSHA256 is the hex SHA256 of the chunk's bytes that lie inside Ranges,
	// concatenated in order: what a read-back of a card written with only the data
	// ranges must reproduce. Empty when the chunk holds no data.
	DataSHA256 string `json:"data_sha256,omitempty"`
	Frame      int64  `json:"frame"`      // offset of the chunk's zstd frame in the compressed file
	FrameSize  int64  `json:"frame_size"` // length of that frame in bytes
	// Chain is the SHA-256 chaining value of the whole-image hash right after this
	// chunk: the eight 32-bit state words, big-endian, as 64 lower-case hex digits,
	// after hashing raw bytes [0, end of this chunk) (a multiple of 64, so no partial
	// block is pending). Present on every chunk but the last (whose end is closed by
	// SHA256 of the manifest), or on none (older manifests; one-chunk images). With it
	// a reader hashes chunk i alone, from chunk i-1's Chain (the SHA-256 initial value
	// for chunk 0), and so proves each chunk and the whole image in one parallel pass
	// (package image-tools/sha256chain).
	Chain string `json:"chain,omitempty"`
}

// Partition is one entry of the image's MBR partition table.
type Partition struct {
	Index  int    `json:"index"`  // 1-based, as in /dev/mmcblk0p1
	Type   string `json:"type"`   // MBR type byte in hex, e.g. "0c" (FAT32 LBA), "83" (Linux)
	Start  int64  `json:"start"`  // byte offset in the image
	Size   int64  `json:"size"`   // bytes
	FS     string `json:"fs"`     // "vfat", "ext4" or "" when not recognised
	Label  string `json:"label"`  // file system label, e.g. "bootfs", "rootfs"
	Used   int64  `json:"used"`   // bytes in use per the file system (Size when unknown)
	Bootfs bool   `json:"bootfs"` // the FAT partition that holds config.txt (first-boot files go here)
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidName reports whether s may be used as an image name.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid manifest")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// HasChain reports whether the chunks carry SHA-256 chaining values (Chunk.Chain).
func (m *Manifest) HasChain() bool { return len(m.Chunks) > 1 && m.Chunks[0].Chain != "" }

// NumChunks is the number of chunks an image of size bytes has at chunkSize.
func NumChunks(size, chunkSize int64) int {
	if chunkSize <= 0 {
		return 0
	}
	return int((size + chunkSize - 1) / chunkSize)
}

// ChunkRange returns the raw byte range of chunk i.
func (m *Manifest) ChunkRange(i int) Range {
	off := int64(i) * m.ChunkSize
	n := m.ChunkSize
	if off+n > m.Size {
		n = m.Size - off
	}
	return Range{Offset: off, Length: n}
}

// DataIn returns the parts of Ranges that lie inside r, in order, clipped to r.
func (m *Manifest) DataIn(r Range) []Range {
	var out []Range
	// Ranges are sorted: binary search for the first range ending after r.Offset.
	lo, hi := 0, len(m.Ranges)
	for lo < hi {
		mid := (lo + hi) / 2
		if m.Ranges[mid].End() <= r.Offset {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	for _, d := range m.Ranges[lo:] {
		if d.Offset >= r.End() {
			break
		}
		s, e := max(d.Offset, r.Offset), min(d.End(), r.End())
		if e > s {
			out = append(out, Range{Offset: s, Length: e - s})
		}
	}
	return out
}

var hexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Validate checks every invariant a reader relies on.
func (m *Manifest) Validate() error {
	switch {
	case m.Version != Version:
		return invalid("version %d, want %d", m.Version, Version)
	case !ValidName(m.Name):
		return invalid("name %q: want [a-z0-9._-], at most 64 characters", m.Name)
	case m.Size <= 0:
		return invalid("size %d", m.Size)
	case !hexRE.MatchString(m.SHA256):
		return invalid("sha256 %q is not 64 lower-case hex digits", m.SHA256)
	case m.ChunkSize <= 0 || m.ChunkSize%BlockSize != 0:
		return invalid("chunk_size %d is not a positive multiple of %d", m.ChunkSize, BlockSize)
	case m.Compression != "zstd":
		return invalid("compression %q, want zstd", m.Compression)
	}
	if n := NumChunks(m.Size, m.ChunkSize); len(m.Chunks) != n {
		return invalid("%d chunks for size %d at chunk_size %d, want %d", len(m.Chunks), m.Size, m.ChunkSize, n)
	}
	var next int64
	for i, c := range m.Chunks {
		if !hexRE.MatchString(c.SHA256) {
			return invalid("chunk %d: sha256 %q", i, c.SHA256)
		}
		if c.DataSHA256 != "" && !hexRE.MatchString(c.DataSHA256) {
			return invalid("chunk %d: data_sha256 %q", i, c.DataSHA256)
		}
		if c.Chain != "" && !hexRE.MatchString(c.Chain) {
			return invalid("chunk %d: chain %q is not 64 lower-case hex digits", i, c.Chain)
		}
		if has, want := c.Chain != "", m.Chunks[0].Chain != "" && i < len(m.Chunks)-1; has != want {
			return invalid("chunk %d: chain %q: want it on every chunk but the last, or on none", i, c.Chain)
		}
		if c.Frame != next || c.FrameSize <= 0 {
			return invalid("chunk %d: frame at %d size %d, want frame at %d", i, c.Frame, c.FrameSize, next)
		}
		next += c.FrameSize
	}
	if m.CompressedSize != next {
		return invalid("compressed_size %d, frames end at %d", m.CompressedSize, next)
	}
	var prev, sum int64
	for i, r := range m.Ranges {
		if r.Length <= 0 || r.Offset < prev || (i > 0 && r.Offset == prev) || r.End() > m.Size {
			return invalid("range %d [%d,+%d) is empty, unsorted, touching the previous one or past size %d", i, r.Offset, r.Length, m.Size)
		}
		if r.Offset%BlockSize != 0 || (r.End()%BlockSize != 0 && r.End() != m.Size) {
			return invalid("range %d [%d,+%d) not aligned to %d", i, r.Offset, r.Length, BlockSize)
		}
		prev = r.End()
		sum += r.Length
	}
	if sum != m.DataBytes {
		return invalid("data_bytes %d, ranges sum to %d", m.DataBytes, sum)
	}
	for i, c := range m.Chunks {
		if has := len(m.DataIn(m.ChunkRange(i))) > 0; has != (c.DataSHA256 != "") {
			return invalid("chunk %d: data_sha256 %q disagrees with ranges", i, c.DataSHA256)
		}
	}
	for _, p := range m.Partitions {
		if p.Start < 0 || p.Size <= 0 || p.Start+p.Size > m.Size {
			return invalid("partition %d [%d,+%d) outside the image of %d bytes", p.Index, p.Start, p.Size, m.Size)
		}
	}
	switch m.FirstBoot {
	case FirstBootNone, FirstBootFirstrun, FirstBootCloudInit, FirstBootCustomToml:
	default:
		return invalid("first_boot %q", m.FirstBoot)
	}
	return nil
}

// Bootfs returns the partition that holds the boot files, if any.
func (m *Manifest) Bootfs() (Partition, bool) {
	for _, p := range m.Partitions {
		if p.Bootfs {
			return p, true
		}
	}
	return Partition{}, false
}

// Decode reads and validates a manifest.
func Decode(r io.Reader) (*Manifest, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: decode: %v", ErrInvalid, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Load reads and validates the manifest file at path.
func Load(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("manifest %q: %w", path, err)
	}
	return m, nil
}

// Encode writes m as indented JSON.
func (m *Manifest) Encode(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(m)
}

// Save validates m and writes it to path atomically (package atomicfile: temporary
// file, fsync, rename; mode 0644). On error an existing file at path stays as it was.
func (m *Manifest) Save(path string) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if err := atomicfile.Write(path, m.Encode); err != nil {
		return fmt.Errorf("write manifest %q: %w", path, err)
	}
	return nil
}

// PathFor returns the manifest path that belongs beside a packed image:
// "x/NAME.img.zst" → "x/NAME.manifest.json".
func PathFor(imagePath string) string {
	base := strings.TrimSuffix(strings.TrimSuffix(imagePath, ".zst"), ".img")
	return base + ".manifest.json"
}
