package tftp

import (
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		want    Name
		refused bool
	}{
		{raw: "config.txt", want: Name{File: "config.txt"}},
		{raw: "abcd1234/config.txt", want: Name{Prefix: "abcd1234", File: "config.txt"}},
		{raw: "ABCD1234/kernel_2712.img", want: Name{Prefix: "abcd1234", File: "kernel_2712.img"}},
		{raw: "dc-a6-32-01-36-c2/cmdline.txt", want: Name{Prefix: "dc-a6-32-01-36-c2", File: "cmdline.txt"}},
		{raw: "abcd1234/overlays/vc4.dtbo", want: Name{Prefix: "abcd1234", File: "overlays/vc4.dtbo"}},
		{raw: "overlays/./vc4.dtbo", want: Name{File: "overlays/vc4.dtbo"}},
		{raw: "abcd123/x", want: Name{File: "abcd123/x"}}, // 7 digits: no prefix
		{raw: "abcd1234", want: Name{File: "abcd1234"}},   // a prefix alone is a file name
		{raw: "", refused: true},
		{raw: "/etc/passwd", refused: true},
		{raw: "../etc/passwd", refused: true},
		{raw: "abcd1234/../../etc/passwd", refused: true},
		{raw: "a/b/../c", refused: true},
		{raw: "..", refused: true},
		{raw: "a\\..\\b", refused: true},
		{raw: "a\x00b", refused: true},
		{raw: ".", refused: true},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := ParseName(tc.raw)
			if tc.refused {
				if !errors.Is(err, ErrRefused) {
					t.Fatalf("ParseName(%q) = %+v, %v; want ErrRefused", tc.raw, got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("ParseName(%q) (-want +got):\n%s", tc.raw, d)
			}
		})
	}
	if n, _ := ParseName("dc-a6-32-01-36-c2/x"); n.MAC() != "dc:a6:32:01:36:c2" || n.Serial() != "" {
		t.Errorf("MAC prefix: MAC()=%q Serial()=%q", n.MAC(), n.Serial())
	}
}

// FuzzParseName: whatever a client sends, an accepted name is relative, clean and
// stays inside the root.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"config.txt", "abcd1234/kernel_2712.img", "../x", "/etc/passwd",
		"a/../../b", "dc-a6-32-01-36-c2/overlays/a.dtbo", "a//b", "./a", "a/.", "\x00", "..\\..\\x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		n, err := ParseName(raw)
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("ParseName(%q): error %v does not wrap ErrRefused", raw, err)
			}
			return
		}
		full := n.File
		if n.Prefix != "" {
			full = n.Prefix + "/" + n.File
		}
		if strings.HasPrefix(full, "/") || full == ".." || strings.HasPrefix(full, "../") || strings.Contains(full, "/../") {
			t.Fatalf("ParseName(%q) = %+v escapes the root", raw, n)
		}
		if path.Clean(full) != full || n.File == "" {
			t.Fatalf("ParseName(%q) = %+v is not clean", raw, n)
		}
	})
}
