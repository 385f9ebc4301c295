package initramfs

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/initramfs/kmod"
)

// TestBuildRefuses checks that Build says what is wrong before it runs u-root, and
// leaves no output behind.
func TestBuildRefuses(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	modules := filepath.Join(root, "build/kernel/modules") // fetched by TestMain
	for _, tt := range []struct {
		name    string
		c       Config
		wantErr string
		wantIs  error
	}{
		{name: "no output", c: Config{}, wantErr: "no output file"},
		{name: "unknown compression", c: Config{Compress: "lzma"}, wantErr: `compression "lzma"`},
		{name: "modules without a tree", c: Config{Modules: []string{"virtio_net"}}, wantErr: "no module tree"},
		{name: "missing tree", c: Config{ModulesFrom: filepath.Join(root, "build/no-such-dir"), Modules: []string{"virtio_net"}}, wantErr: "no-such-dir"},
		{name: "unknown module", c: Config{ModulesFrom: modules, Modules: []string{"virtio_net", "no_such_driver"}}, wantIs: kmod.ErrNotFound},
		{name: "image without partitions", c: Config{ModulesFrom: junkFile(t), Modules: []string{"macb"}}, wantErr: "partitions"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.name != "no output" {
				tt.c.Out = filepath.Join(dir, "initramfs_2712")
			}
			tt.c.ModuleRoot = root
			_, err := Build(context.Background(), tt.c, io.Discard)
			switch {
			case err == nil:
				t.Fatal("Build succeeded")
			case tt.wantIs != nil && !errors.Is(err, tt.wantIs):
				t.Errorf("error = %v, want %v", err, tt.wantIs)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
			left, _ := os.ReadDir(dir)
			if len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

func junkFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "junk.img")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
