package initenv

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCmdline(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		want    Cmdline
		wantErr string
	}{
		{
			name: "all keys among others",
			in:   "console=ttyAMA0 panic=-1 rpideploy.server=http://10.0.0.1:8080/ rpideploy.target=/dev/vda rpideploy.serial=10000000ABCDEF12 rpideploy.mac=2C:CF:67:00:00:01 quiet\n",
			want: Cmdline{Server: "http://10.0.0.1:8080", Target: "/dev/vda", Serial: "10000000abcdef12", MAC: "2c:cf:67:00:00:01"},
		},
		{name: "none", in: "console=serial0,115200 root=/dev/ram0", want: Cmdline{}},
		{name: "empty", in: "", want: Cmdline{}},
		{name: "unknown rpideploy key ignored", in: "rpideploy.future=1 rpideploy.target=/dev/nvme0n1", want: Cmdline{Target: "/dev/nvme0n1"}},
		{name: "last one wins", in: "rpideploy.target=/dev/sda rpideploy.target=/dev/sdb", want: Cmdline{Target: "/dev/sdb"}},
		{name: "quoted value", in: `rpideploy.server="http://srv.example:80/x" foo="a b"`, want: Cmdline{Server: "http://srv.example:80/x"}},
		{name: "key without value ignored", in: "rpideploy.server quiet", want: Cmdline{}},
		{name: "bad server scheme", in: "rpideploy.server=ftp://x", wantErr: "want an http(s) URL"},
		{name: "server without host", in: "rpideploy.server=http://", wantErr: "want an http(s) URL"},
		{name: "relative target", in: "rpideploy.target=vda", wantErr: "absolute device path"},
		{name: "short serial", in: "rpideploy.serial=abc", wantErr: "16 hex digits"},
		{name: "non-hex serial", in: "rpideploy.serial=zzzzzzzzzzzzzzzz", wantErr: "16 hex digits"},
		{name: "bad mac", in: "rpideploy.mac=2c:cf:67", wantErr: "want a MAC"},
		{name: "long mac", in: "rpideploy.mac=00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", wantErr: "want a MAC"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCmdline(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseCmdline(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCmdline(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseCmdline(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestSplitCmdline(t *testing.T) {
	got := splitCmdline(" a=1  b=\"x y\"\tc \"d\"\n")
	want := []string{"a=1", "b=x y", "c", "d"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("splitCmdline (-want +got):\n%s", diff)
	}
}
