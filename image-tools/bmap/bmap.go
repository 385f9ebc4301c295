// Package bmap reads and writes block maps in the format of bmaptool (bmap-tools),
// version 2.0: an XML list of the blocks of an image that hold data, each range with a
// checksum of its bytes, and a checksum of the file itself.
//
// Writing uses SHA256 and a 4096-byte block size, which is manifest.BlockSize, so the
// ranges of a manifest map onto blocks exactly.
package bmap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/progress"
)

// ErrInvalid is wrapped by every error about a malformed .bmap file.
var ErrInvalid = errors.New("invalid bmap")

// Range is an inclusive range of block numbers and the hex checksum of its bytes.
type Range struct {
	First, Last int64
	Checksum    string
}

// Bmap is a parsed block map.
type Bmap struct {
	ImageSize    int64
	BlockSize    int64
	BlocksCount  int64
	MappedBlocks int64
	ChecksumType string  // "sha256", "sha1", … ("" in files before version 1.3)
	Blocks       []Range // mapped block ranges, sorted
}

// Ranges returns the mapped bytes as manifest ranges: sorted, merged, aligned outward to
// manifest.BlockSize and clipped to the image size.
func (b *Bmap) Ranges() []manifest.Range {
	var out []manifest.Range
	for _, r := range b.Blocks {
		s := r.First * b.BlockSize / manifest.BlockSize * manifest.BlockSize
		e := min((r.Last+1)*b.BlockSize, b.ImageSize)
		if e%manifest.BlockSize != 0 {
			e = min((e/manifest.BlockSize+1)*manifest.BlockSize, b.ImageSize)
		}
		if n := len(out); n > 0 && s <= out[n-1].End() {
			out[n-1].Length = max(out[n-1].End(), e) - out[n-1].Offset
			continue
		}
		out = append(out, manifest.Range{Offset: s, Length: e - s})
	}
	return out
}

type xmlBmap struct {
	XMLName           xml.Name `xml:"bmap"`
	Version           string   `xml:"version,attr"`
	ImageSize         string   `xml:"ImageSize"`
	BlockSize         string   `xml:"BlockSize"`
	BlocksCount       string   `xml:"BlocksCount"`
	MappedBlocksCount string   `xml:"MappedBlocksCount"`
	ChecksumType      string   `xml:"ChecksumType"`
	FileChecksum      string   `xml:"BmapFileChecksum"`
	Ranges            []struct {
		Chksum string `xml:"chksum,attr"`
		SHA1   string `xml:"sha1,attr"`
		Text   string `xml:",chardata"`
	} `xml:"BlockMap>Range"`
}

// Load reads and checks the .bmap file at path.
func Load(path string) (*Bmap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read bmap: %w", err)
	}
	b, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("bmap %q: %w", path, err)
	}
	return b, nil
}

// Parse decodes a .bmap document, checking its own checksum (version ≥ 2.0), that
// ranges are sorted and inside the image, and that the counts agree.
func Parse(data []byte) (*Bmap, error) {
	var x xmlBmap
	if err := xml.Unmarshal(data, &x); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	major, _, _ := strings.Cut(x.Version, ".")
	if v, err := strconv.Atoi(major); err != nil || v < 1 || v > 2 {
		return nil, fmt.Errorf("%w: version %q not supported (want 1.x or 2.x)", ErrInvalid, x.Version)
	}
	num := func(name, s string) (int64, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%w: %s %q", ErrInvalid, name, strings.TrimSpace(s))
		}
		return n, nil
	}
	b := &Bmap{ChecksumType: strings.TrimSpace(x.ChecksumType)}
	if sum := strings.TrimSpace(x.FileChecksum); sum != "" && b.ChecksumType == "sha256" {
		zeroed := bytes.Replace(data, []byte(sum), bytes.Repeat([]byte("0"), len(sum)), 1)
		if got := sha256.Sum256(zeroed); hex.EncodeToString(got[:]) != sum {
			return nil, fmt.Errorf("%w: file checksum %s does not match its contents (%x)", ErrInvalid, sum, got)
		}
	}
	var err error
	if b.ImageSize, err = num("ImageSize", x.ImageSize); err != nil {
		return nil, err
	}
	if b.BlockSize, err = num("BlockSize", x.BlockSize); err != nil {
		return nil, err
	}
	if b.BlocksCount, err = num("BlocksCount", x.BlocksCount); err != nil {
		return nil, err
	}
	if b.MappedBlocks, err = num("MappedBlocksCount", x.MappedBlocksCount); err != nil {
		return nil, err
	}
	if b.BlockSize == 0 || b.BlocksCount != (b.ImageSize+b.BlockSize-1)/b.BlockSize {
		return nil, fmt.Errorf("%w: %d blocks of %d bytes do not cover an image of %d bytes", ErrInvalid, b.BlocksCount, b.BlockSize, b.ImageSize)
	}
	var mapped, next int64
	for i, xr := range x.Ranges {
		txt := strings.TrimSpace(xr.Text)
		first, last, isRange := strings.Cut(txt, "-")
		if !isRange {
			last = first
		}
		f, err1 := strconv.ParseInt(first, 10, 64)
		l, err2 := strconv.ParseInt(last, 10, 64)
		if err1 != nil || err2 != nil || f > l || f < next || l >= b.BlocksCount {
			return nil, fmt.Errorf("%w: range %d %q is malformed, unsorted or past block %d", ErrInvalid, i, txt, b.BlocksCount-1)
		}
		sum := xr.Chksum
		if sum == "" {
			sum = xr.SHA1
		}
		b.Blocks = append(b.Blocks, Range{First: f, Last: l, Checksum: sum})
		mapped += l - f + 1
		next = l + 1
	}
	if mapped != b.MappedBlocks {
		return nil, fmt.Errorf("%w: ranges map %d blocks, MappedBlocksCount says %d", ErrInvalid, mapped, b.MappedBlocks)
	}
	return b, nil
}

// Write writes a version 2.0 .bmap with SHA256 checksums for the ranges of an image of
// size bytes read from r. ranges must be sorted and aligned to manifest.BlockSize (or end
// at size), as in a manifest.
func Write(w io.Writer, r io.ReaderAt, size int64, ranges []manifest.Range) error {
	const bs = manifest.BlockSize
	blocks := (size + bs - 1) / bs
	var mapped int64
	var body strings.Builder
	buf := make([]byte, 1<<20)
	for _, rg := range ranges {
		if rg.Offset%bs != 0 || rg.Length <= 0 || rg.End() > size {
			return fmt.Errorf("range [%d,+%d) is not block-aligned inside the image", rg.Offset, rg.Length)
		}
		h := sha256.New()
		if err := hashRange(h, r, rg, buf); err != nil {
			return err
		}
		first, last := rg.Offset/bs, (rg.End()+bs-1)/bs-1
		mapped += last - first + 1
		if first == last {
			fmt.Fprintf(&body, "        <Range chksum=\"%x\"> %d </Range>\n", h.Sum(nil), first)
		} else {
			fmt.Fprintf(&body, "        <Range chksum=\"%x\"> %d-%d </Range>\n", h.Sum(nil), first, last)
		}
	}
	pct := 0.0
	if blocks > 0 {
		pct = float64(mapped) * 100 / float64(blocks)
	}
	zeros := strings.Repeat("0", 64)
	doc := fmt.Sprintf(`<?xml version="1.0" ?>
<!-- Block map written by rpi-image: the blocks that hold data (partition table,
     file-system metadata, files); the others are free space and need not be
     written. Format: bmap-tools 2.0. -->

<bmap version="2.0">
    <!-- Image size in bytes: %s -->
    <ImageSize> %d </ImageSize>

    <!-- Size of a block in bytes -->
    <BlockSize> %d </BlockSize>

    <!-- Count of blocks in the image file -->
    <BlocksCount> %d </BlocksCount>

    <!-- Count of mapped blocks: %.1f%% -->
    <MappedBlocksCount> %d </MappedBlocksCount>

    <!-- Type of checksum used in this file -->
    <ChecksumType> sha256 </ChecksumType>

    <!-- The checksum of this bmap file. When it is calculated, the value of
         the checksum has be zero (all ASCII "0" symbols).  -->
    <BmapFileChecksum> %s </BmapFileChecksum>

    <!-- The block map which consists of elements which may either be a
         range of blocks or a single block. The 'chksum' attribute
         (if present) is the checksum of this blocks range. -->
    <BlockMap>
%s    </BlockMap>
</bmap>
`, progress.Bytes(size), size, bs, blocks, pct, mapped, zeros, body.String())
	sum := sha256.Sum256([]byte(doc))
	doc = strings.Replace(doc, zeros, hex.EncodeToString(sum[:]), 1)
	_, err := io.WriteString(w, doc)
	return err
}

func hashRange(h hash.Hash, r io.ReaderAt, rg manifest.Range, buf []byte) error {
	for off := rg.Offset; off < rg.End(); {
		b := buf[:min(int64(len(buf)), rg.End()-off)]
		n, err := r.ReadAt(b, off)
		h.Write(b[:n])
		off += int64(n)
		if n < len(b) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read image at %d: %w", off, err)
		}
	}
	return nil
}

// ErrChecksum is wrapped when an image's bytes do not match a range checksum.
var ErrChecksum = errors.New("image does not match the bmap")

// Check compares every mapped range of the image r with its checksum, as bmaptool copy
// does. Ranges without a checksum, and checksum types other than sha256, are not
// checked.
func (b *Bmap) Check(r io.ReaderAt) error {
	if b.ChecksumType != "sha256" {
		return nil
	}
	buf := make([]byte, 1<<20)
	for _, br := range b.Blocks {
		if br.Checksum == "" {
			continue
		}
		rg := manifest.Range{Offset: br.First * b.BlockSize, Length: min((br.Last+1)*b.BlockSize, b.ImageSize) - br.First*b.BlockSize}
		h := sha256.New()
		if err := hashRange(h, r, rg, buf); err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != br.Checksum {
			return fmt.Errorf("%w: blocks %d-%d: sha256 %s, bmap says %s", ErrChecksum, br.First, br.Last, got, br.Checksum)
		}
	}
	return nil
}
