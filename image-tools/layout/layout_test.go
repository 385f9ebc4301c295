package layout

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []manifest.Range
		size int64
		want []manifest.Range
	}{
		// 100..612, 5000..5010 and 8192..8193 touch once widened to 4096 bytes.
		{"widened and merged", []manifest.Range{{Offset: 5000, Length: 10}, {Offset: 100, Length: 512}, {Offset: 8192, Length: 1}}, 1 << 20,
			[]manifest.Range{{Offset: 0, Length: 12288}}},
		{"clipped at the end", []manifest.Range{{Offset: 9000, Length: 1000}}, 10000, []manifest.Range{{Offset: 8192, Length: 1808}}},
		{"overlapping", []manifest.Range{{Offset: 0, Length: 8192}, {Offset: 4096, Length: 8192}, {Offset: 20480, Length: 4096}}, 1 << 20,
			[]manifest.Range{{Offset: 0, Length: 12288}, {Offset: 20480, Length: 4096}}},
		{"empty ones dropped", []manifest.Range{{Offset: 4096, Length: 0}}, 1 << 20, []manifest.Range{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Normalize(tc.in, tc.size)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestNoPartitionTable(t *testing.T) {
	img := bytes.Repeat([]byte{7}, 3<<20+100)
	lay, err := Analyze(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]manifest.Range{{Offset: 0, Length: int64(len(img))}}, lay.Ranges); diff != "" || len(lay.Warnings) != 1 {
		t.Errorf("ranges (-want +got):\n%s\nwarnings %q", diff, lay.Warnings)
	}
}

func TestParseOSRelease(t *testing.T) {
	got := ParseOSRelease([]byte("# comment\nPRETTY_NAME=\"Raspbian GNU/Linux 12 (bookworm)\"\nNAME='Raspbian'\nVERSION_CODENAME=bookworm\nBROKEN\nID=\"a\\\"b\"\n"))
	want := map[string]string{"PRETTY_NAME": "Raspbian GNU/Linux 12 (bookworm)", "NAME": "Raspbian", "VERSION_CODENAME": "bookworm", "ID": `a"b`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestGPTIsAllData(t *testing.T) {
	img := make([]byte, 2<<20)
	img[446+4] = 0xee // protective MBR entry
	img[446+8] = 1
	img[446+12] = 0xff
	img[510], img[511] = 0x55, 0xaa
	lay, err := Analyze(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if len(lay.Ranges) != 1 || lay.Ranges[0].Length != int64(len(img)) || len(lay.Warnings) != 1 {
		t.Errorf("ranges %v warnings %q, want all data and one warning", lay.Ranges, lay.Warnings)
	}
}
