package testimg

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	if err := RequireTools(); err != nil {
		// The tools are listed in scripts/deps/diskfmt.apt; `make deps` installs them.
		panic(err)
	}
	os.Exit(m.Run())
}

// TestBuildKinds builds each kind, new and used, and checks it with the real tools:
// the partition table, both fsck's, and every listed file read back byte-exact by
// mtype and debugfs.
func TestBuildKinds(t *testing.T) {
	ctx := context.Background()
	for _, kind := range Kinds {
		for _, used := range []bool{false, true} {
			name := string(kind)
			if used {
				name += "-used"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				img := filepath.Join(t.TempDir(), "card.img")
				info, err := Build(img, Options{Kind: kind, Used: used, Seed: 7, RootData: 2 << 20})
				if err != nil {
					t.Fatal(err)
				}
				st, err := os.Stat(img)
				if err != nil {
					t.Fatal(err)
				}
				if st.Size() != info.Size {
					t.Errorf("image is %d bytes, Info.Size %d", st.Size(), info.Size)
				}
				parts, err := ReadPartitions(ctx, img)
				if err != nil {
					t.Fatal(err)
				}
				if len(parts) != 2 || parts[0].Offset != BootStart || parts[0].Type != 0x0c || parts[1].Type != 0x83 ||
					parts[1].Offset%Align != 0 || parts[1].Size%Align != 0 || parts[1].Offset != info.Root.Offset {
					t.Errorf("partitions %+v, info %+v %+v", parts, info.Boot, info.Root)
				}
				if err := Fsck(ctx, img); err != nil {
					t.Fatal(err)
				}
				if !used { // the same files either way: read them back once per kind
					checkFiles(t, img, info)
				}

				cmd, err := MType(ctx, img, info.Boot.Offset, "cmdline.txt")
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(cmd), "root=PARTUUID="+info.PartUUID(2)+" ") {
					t.Errorf("cmdline.txt %q lacks root=PARTUUID=%s", cmd, info.PartUUID(2))
				}
				_, hasUserData := info.Lookup("bootfs", "user-data")
				_, hasToml := info.Lookup("bootfs", "custom.toml")
				_, hasImagerCustom := info.Lookup("rootfs", "usr/lib/raspberrypi-sys-mods/imager_custom")
				want := map[Kind][3]bool{
					BookwormFirstrun:   {false, false, true},
					TrixieCloudInit:    {true, false, false},
					BookwormCustomToml: {false, true, true},
				}[kind]
				if got := [3]bool{hasUserData, hasToml, hasImagerCustom}; got != want {
					t.Errorf("user-data, custom.toml, imager_custom present = %v, want %v", got, want)
				}
				if link, _ := info.Lookup("rootfs", "etc/os-release"); link.Link != "../usr/lib/os-release" {
					t.Errorf("etc/os-release link %q", link.Link)
				}

				raw, err := os.ReadFile(img)
				if err != nil {
					t.Fatal(err)
				}
				if got := bytes.Contains(raw, []byte(DeletedMarker)); got != used {
					t.Errorf("deleted data present = %v, want %v", got, used)
				}
				// A used card has random bytes in the gap before partition 1.
				if gap := raw[1<<20 : 1<<20+4096]; used == bytes.Equal(gap, make([]byte, 4096)) {
					t.Errorf("used=%v but the gap before partition 1 is all zero=%v", used, !used)
				}
			})
		}
	}
}

func checkFiles(t *testing.T, img string, info *Info) {
	t.Helper()
	ctx := context.Background()
	for _, f := range info.Files {
		if f.Link != "" {
			continue
		}
		// Reading every generated data file through a process each is slow; sample.
		if strings.HasPrefix(f.Path, "usr/share/rpi-testdata/") && !strings.HasSuffix(f.Path, "0.txt") && !strings.HasSuffix(f.Path, "1.bin") {
			continue
		}
		var data []byte
		var err error
		if f.FS == "bootfs" {
			data, err = MType(ctx, img, info.Boot.Offset, f.Path)
		} else {
			data, err = DebugfsCat(ctx, img, info.Root.Offset, "/"+f.Path)
		}
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != f.SHA256 || int64(len(data)) != f.Size {
			t.Errorf("%s:%s read back %d bytes sha256 %s, want %d bytes %s", f.FS, f.Path, len(data), got, f.Size, f.SHA256)
		}
	}
}

// TestDeterministic: the same seed gives the same files and disk identifier; another
// seed gives others.
func TestDeterministic(t *testing.T) {
	dir := t.TempDir()
	opt := Options{RootData: 1 << 20, Seed: 42}
	a, err := Build(filepath.Join(dir, "a.img"), opt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(filepath.Join(dir, "b.img"), opt)
	if err != nil {
		t.Fatal(err)
	}
	opt.Seed = 43
	c, err := Build(filepath.Join(dir, "c.img"), opt)
	if err != nil {
		t.Fatal(err)
	}
	if a.DiskID != b.DiskID || a.DiskID == c.DiskID {
		t.Errorf("disk ids %08x %08x %08x", a.DiskID, b.DiskID, c.DiskID)
	}
	ka, _ := a.Lookup("bootfs", "kernel_2712.img")
	kb, _ := b.Lookup("bootfs", "kernel_2712.img")
	kc, _ := c.Lookup("bootfs", "kernel_2712.img")
	if ka.SHA256 != kb.SHA256 || ka.SHA256 == kc.SHA256 {
		t.Errorf("kernel hashes %s %s %s", ka.SHA256, kb.SHA256, kc.SHA256)
	}
	if len(a.Files) != len(b.Files) {
		t.Fatalf("%d vs %d files", len(a.Files), len(b.Files))
	}
	for i := range a.Files {
		if a.Files[i] != b.Files[i] {
			t.Errorf("file %d: %+v vs %+v", i, a.Files[i], b.Files[i])
		}
	}
}

// TestBadOptions: options that cannot be honoured fail before anything is written.
func TestBadOptions(t *testing.T) {
	for name, opt := range map[string]Options{
		"boot too small": {BootSize: 32 << 20},
		"unknown kind":   {Kind: "jessie"},
	} {
		t.Run(name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "x.img")
			_, err := Build(img, opt)
			if !errors.Is(err, ErrOptions) {
				t.Fatalf("err = %v, want ErrOptions", err)
			}
			if _, err := os.Stat(img); !os.IsNotExist(err) {
				t.Errorf("image left behind: %v", err)
			}
		})
	}
}

// TestRootFree: the free space asked for is there (within the reserve mkfs keeps).
func TestRootFree(t *testing.T) {
	img := filepath.Join(t.TempDir(), "x.img")
	info, err := Build(img, Options{RootData: -1, RootFree: 100 << 20})
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(context.Background(), nil, "dumpe2fs", "-h", img+"?offset="+itoa(info.Root.Offset))
	if err != nil {
		t.Fatal(err)
	}
	var free, bs int64
	for _, l := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(l, ":")
		switch strings.TrimSpace(k) {
		case "Free blocks":
			free = atoi(strings.TrimSpace(v))
		case "Block size":
			bs = atoi(strings.TrimSpace(v))
		}
	}
	if free*bs < 100<<20 || free*bs > 120<<20 {
		t.Errorf("free %d bytes, want about 100 MiB", free*bs)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func TestCOW(t *testing.T) {
	base := []byte(strings.Repeat("0123456789", 1000))
	c := NewCOW(base)
	if _, err := c.WriteAt([]byte("abcdef"), 4093); err != nil { // across a page boundary
		t.Fatal(err)
	}
	got := make([]byte, 10)
	if _, err := c.ReadAt(got, 4091); err != nil || string(got) != "12abcdef90" {
		t.Errorf("read %q, %v", got, err)
	}
	if string(base[4093:4099]) != "3456789012"[:6] {
		t.Errorf("base was written: %q", base[4093:4099])
	}
	if _, err := c.ReadAt(got, int64(len(base))-5); err == nil {
		t.Error("read past the end succeeded")
	}
}
