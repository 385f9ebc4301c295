package osimg

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// kernelDir makes a kernel directory with just the package line Key reads.
func kernelDir(t *testing.T, line string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "package"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBuildBadInput(t *testing.T) {
	k := kernelDir(t, "linux-image-6.1.0-57-arm64 6.1.192-3 6.1.0-57-arm64\n")
	cache := t.TempDir()
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"flavour", Options{Flavour: "custom.toml", KernelDir: k, CacheDir: cache}, `unknown osimg flavour: "custom.toml"`},
		{"no kernel", Options{Flavour: Firstrun, KernelDir: t.TempDir(), CacheDir: cache}, "run initramfs/fetch-kernel.sh"},
		{"bad package line", Options{Flavour: Firstrun, KernelDir: kernelDir(t, "linux-image\n"), CacheDir: cache}, "want package, version, kernel version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build: %v, want an error with %q", err, tc.want)
			}
			if tc.name == "flavour" && !errors.Is(err, ErrFlavour) {
				t.Errorf("Build: %v is not ErrFlavour", err)
			}
			if entries, _ := os.ReadDir(cache); len(entries) != 0 {
				t.Errorf("a failed build left %d entries in the cache", len(entries))
			}
		})
	}
}

// TestKey: every input changes the key, and only the inputs do.
func TestKey(t *testing.T) {
	k1 := kernelDir(t, "linux-image-6.1.0-57-arm64 6.1.192-3 6.1.0-57-arm64\n")
	k2 := kernelDir(t, "linux-image-6.1.0-58-arm64 6.1.193-1 6.1.0-58-arm64\n")
	key := func(o Options) string {
		t.Helper()
		s, _, err := o.Key()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := key(Options{Flavour: Firstrun, KernelDir: k1})
	if b := key(Options{Flavour: Firstrun, KernelDir: k1, CacheDir: "/elsewhere"}); a != b {
		t.Errorf("the cache directory changed the key: %s, %s", a, b)
	}
	for name, o := range map[string]Options{
		"flavour": {Flavour: CloudInit, KernelDir: k1},
		"kernel":  {Flavour: Firstrun, KernelDir: k2},
	} {
		if b := key(o); b == a {
			t.Errorf("another %s, the same key %s", name, a)
		}
	}
	saved := Packages
	Packages = append(append([]string{}, saved...), "vim-tiny")
	defer func() { Packages = saved }()
	if b := key(Options{Flavour: Firstrun, KernelDir: k1}); b == a {
		t.Errorf("another package list, the same key %s", a)
	}
}

// TestBuildCached: a complete cache entry is used as it is, by any number of callers
// at once, without building anything (no mmdebstrap runs: the entry would be replaced).
func TestBuildCached(t *testing.T) {
	o := Options{Flavour: CloudInit, KernelDir: kernelDir(t, "linux-image-6.1.0-57-arm64 6.1.192-3 6.1.0-57-arm64\n"), CacheDir: t.TempDir()}
	key, _, err := o.Key()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(o.CacheDir, CloudInit+"-"+key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	info, _ := json.Marshal(BuildInfo{Key: key, Seconds: 300})
	if err := os.WriteFile(filepath.Join(dir, "info.json"), info, 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := Build(context.Background(), o)
			if err != nil {
				t.Error(err)
				return
			}
			if !img.Cached || img.Dir != dir || img.Info.Seconds != 300 || img.DiskID != key[:8] ||
				img.Path != filepath.Join(dir, "master.img") || img.Initrd != filepath.Join(dir, "initrd.img") {
				t.Errorf("Build = %+v, want the cached entry %s", img, dir)
			}
		}()
	}
	wg.Wait()

	// A corrupt info.json is reported, not used.
	if err := os.WriteFile(filepath.Join(dir, "info.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(context.Background(), o); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("Build with a corrupt info.json: %v, want an error naming %s", err, dir)
	}
}
