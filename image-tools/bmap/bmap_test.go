package bmap

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
)

func TestWriteParse(t *testing.T) {
	img := bytes.Repeat([]byte("0123456789abcdef"), 5000) // 80000 bytes: 20 blocks, the last partial
	ranges := []manifest.Range{{Offset: 0, Length: 8192}, {Offset: 4096 * 5, Length: 4096}, {Offset: 4096 * 19, Length: 80000 - 4096*19}}
	var buf bytes.Buffer
	if err := Write(&buf, bytes.NewReader(img), int64(len(img)), ranges); err != nil {
		t.Fatal(err)
	}
	b, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if b.ImageSize != 80000 || b.BlockSize != 4096 || b.BlocksCount != 20 || b.MappedBlocks != 4 || b.ChecksumType != "sha256" {
		t.Errorf("parsed %+v", b)
	}
	if diff := cmp.Diff(ranges, b.Ranges()); diff != "" {
		t.Errorf("ranges (-want +got):\n%s", diff)
	}
	if !strings.Contains(buf.String(), "<Range chksum=") || !strings.Contains(buf.String(), "> 5 </Range>") {
		t.Errorf("bmap lacks a single-block range with checksum:\n%s", buf.String())
	}
}

// TestRangesOtherBlockSize: bmaps of other tools may use another block size; the
// manifest ranges are widened to 4096 bytes.
func TestRangesOtherBlockSize(t *testing.T) {
	b := &Bmap{ImageSize: 10000, BlockSize: 1024, Blocks: []Range{{First: 1, Last: 2}, {First: 5, Last: 5}, {First: 9, Last: 9}}}
	want := []manifest.Range{{Offset: 0, Length: 10000}}
	if diff := cmp.Diff(want, b.Ranges()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	b = &Bmap{ImageSize: 1 << 20, BlockSize: 512, Blocks: []Range{{First: 9, Last: 9}, {First: 100, Last: 107}}}
	want = []manifest.Range{{Offset: 4096, Length: 4096}, {Offset: 49152, Length: 8192}}
	if diff := cmp.Diff(want, b.Ranges()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	var good bytes.Buffer
	img := make([]byte, 40960)
	if err := Write(&good, bytes.NewReader(img), int64(len(img)), []manifest.Range{{Offset: 0, Length: 8192}}); err != nil {
		t.Fatal(err)
	}
	g := good.String()
	for _, tc := range []struct{ name, doc, want string }{
		{"not xml", "hello", "invalid bmap"},
		{"version 3", strings.Replace(g, `version="2.0"`, `version="3.0"`, 1), "version"},
		{"edited range", strings.Replace(g, "> 0-1 </Range>", "> 0-2 </Range>", 1), "file checksum"},
		{"counts disagree", strings.Replace(g, "<BlocksCount> 10 </BlocksCount>", "<BlocksCount> 11 </BlocksCount>", 1), "file checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
	// Without a file checksum (older bmaps), the structure is still checked.
	noSum := strings.Replace(g, "<ChecksumType> sha256 </ChecksumType>", "<ChecksumType> md5 </ChecksumType>", 1)
	for _, tc := range []struct{ name, doc, want string }{
		{"range past the end", strings.Replace(noSum, "> 0-1 </Range>", "> 0-10 </Range>", 1), "past block"},
		{"mapped count", strings.Replace(noSum, "<MappedBlocksCount> 2 </MappedBlocksCount>", "<MappedBlocksCount> 3 </MappedBlocksCount>", 1), "MappedBlocksCount"},
		{"blocks count", strings.Replace(noSum, "<BlocksCount> 10 </BlocksCount>", "<BlocksCount> 11 </BlocksCount>", 1), "do not cover"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
}
