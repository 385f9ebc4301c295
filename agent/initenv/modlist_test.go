package initenv

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestModuleListRoundTrip(t *testing.T) {
	mods := []Module{{File: "failover.ko"}, {File: "net/virtio_net.ko.xz", Params: "napi_tx=1"}}
	var b strings.Builder
	if err := WriteModuleList(&b, mods); err != nil {
		t.Fatal(err)
	}
	got, err := ParseModuleList(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(mods, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestParseModuleList(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		want    []Module
		wantErr string
	}{
		{name: "comments and blanks", in: "# c\n\n  a.ko  \nb.ko x=1 y=2\n", want: []Module{{File: "a.ko"}, {File: "b.ko", Params: "x=1 y=2"}}},
		{name: "empty", in: "", want: nil},
		{name: "absolute", in: "/lib/a.ko\n", wantErr: "line 1"},
		{name: "climbs out", in: "a.ko\n../../etc/passwd\n", wantErr: "line 2"},
		{name: "unclean", in: "x/./a.ko\n", wantErr: "not a clean relative path"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseModuleList(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
