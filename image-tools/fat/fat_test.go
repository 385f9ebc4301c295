package fat

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
)

var ctx = context.Background()

func TestMain(m *testing.M) {
	if err := testimg.RequireTools(); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// mkfs makes a bare FAT file system image of sizeMiB with mkfs.vfat and copies the
// given files in with mcopy (name → contents; names with "/" go into directories,
// which are made with mmd).
func mkfs(t *testing.T, bits, sizeMiB int, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "fat.img")
	testimg.MustTool(t, "mkfs.vfat", "-C", "-F", fmt.Sprint(bits), "-n", "bootfs", "-i", "12345678", img, fmt.Sprint(sizeMiB*1024))
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	})
	made := map[string]bool{}
	for _, name := range names {
		src := filepath.Join(dir, "src", filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(src, []byte(files[name]), 0o644); err != nil {
			t.Fatal(err)
		}
		if d := filepath.ToSlash(filepath.Dir(name)); d != "." && !made[d] {
			testimg.MustTool(t, "mmd", "-i", img, "::/"+d)
			made[d] = true
		}
		testimg.MustTool(t, "mcopy", "-i", img, src, "::/"+name)
	}
	return img
}

// fsck runs fsck.fat -n on the image file (the file system at offset 0).
func fsck(t *testing.T, img string) {
	t.Helper()
	cmd := exec.Command("fsck.fat", "-n", img)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fsck.fat -n: %v\n%s", err, out)
	}
}

func mtype(t *testing.T, img, name string) []byte {
	t.Helper()
	out, err := testimg.MType(ctx, img, 0, name)
	if err != nil {
		t.Fatalf("mtype %s: %v", name, err)
	}
	return out
}

func open(t *testing.T, img string) (*FS, *os.File) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	fsys, err := Open(f, 0, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return fsys, f
}

// TestReadTestImage reads every boot file of each kind of test image (made by
// mkfs.vfat and mcopy at 8 MiB into the image) and compares it with what was written.
func TestReadTestImage(t *testing.T) {
	for _, kind := range testimg.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			_, info, fsys := buildBoot(t, testimg.Options{Kind: kind, RootData: -1, Used: kind == testimg.TrixieCloudInit})
			if got := fsys.Label(); got != "bootfs" {
				t.Errorf("label %q", got)
			}
			var want []string
			for _, file := range info.Files {
				if file.FS != "bootfs" {
					continue
				}
				want = append(want, file.Path)
				data, err := fsys.ReadFile(file.Path)
				if err != nil {
					t.Fatal(err)
				}
				if testimg.SHA256(data) != file.SHA256 {
					t.Errorf("%s: sha256 %s, want %s", file.Path, testimg.SHA256(data), file.SHA256)
				}
			}
			var walked []string
			err := fsys.Walk(func(p string, e Entry) error {
				if !e.IsDir {
					walked = append(walked, p)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(walked)
			if d := cmp.Diff(want, walked); d != "" {
				t.Errorf("walk (-want +got):\n%s", d)
			}
			// Case-insensitive, by long or short name, with either separator.
			for _, name := range []string{"CMDLINE.TXT", "Overlays/readme", "/overlays\\README", "BCM271~1.DTB"} {
				if _, err := fsys.ReadFile(name); err != nil {
					t.Errorf("ReadFile(%q): %v", name, err)
				}
			}
			if _, err := fsys.ReadFile("nope.txt"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("missing file: %v", err)
			}
			if _, err := fsys.ReadFile("overlays"); !errors.Is(err, ErrIsDir) {
				t.Errorf("read a directory: %v", err)
			}
			if _, err := fsys.ReadFile("cmdline.txt/x"); !errors.Is(err, ErrNotDir) {
				t.Errorf("file as directory: %v", err)
			}
		})
	}
}

// buildBoot builds a test image and opens its boot partition read-only.
func buildBoot(t *testing.T, opt testimg.Options) (string, *testimg.Info, *FS) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "card.img")
	info, err := testimg.Build(img, opt)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fsys, err := Open(rw{f}, info.Boot.Offset, info.Boot.Size)
	if err != nil {
		t.Fatal(err)
	}
	return img, info, fsys
}

// rw lets a read-only file stand in for a Device in read-only tests.
type rw struct{ *os.File }

func (rw) WriteAt([]byte, int64) (int, error) { return 0, errors.New("read-only") }

func TestReadDir(t *testing.T) {
	img := mkfs(t, 32, 40, map[string]string{
		"cmdline.txt":                  "console=tty1\n",
		"Mixed.Case.txt":               "m",
		"overlays/README":              "r",
		"overlays/a-long-overlay.dtbo": "o",
	})
	fsys, _ := open(t, img)
	root, err := fsys.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range root {
		names = append(names, fmt.Sprintf("%s %s dir=%v %d", e.Name, e.ShortName, e.IsDir, e.Size))
	}
	want := []string{"Mixed.Case.txt MIXEDC~1.TXT dir=false 1", "cmdline.txt CMDLINE.TXT dir=false 13", "overlays OVERLAYS dir=true 0"}
	slices.Sort(names)
	if d := cmp.Diff(want, names); d != "" {
		t.Errorf("root (-want +got):\n%s", d)
	}
	sub, err := fsys.ReadDir("OVERLAYS")
	if err != nil || len(sub) != 2 {
		t.Fatalf("overlays: %v %+v", err, sub)
	}
}

// TestWrite writes with our code and checks with fsck.fat -n and mtools.
func TestWrite(t *testing.T) {
	longCmd := strings.Repeat("console=serial0,115200 console=tty1 ", 40) + "\n" // several clusters
	big := make([]byte, 5<<20+123)
	rand.NewChaCha8([32]byte{1}).Read(big)
	for _, bits := range []int{32, 16} {
		for _, tc := range []struct {
			name   string
			writes map[string]string // name → contents
			check  map[string]string // name → contents read back by mtype
		}{
			{"shorter cmdline", map[string]string{"cmdline.txt": "root=x\n"}, map[string]string{"cmdline.txt": "root=x\n"}},
			{"longer cmdline", map[string]string{"cmdline.txt": longCmd}, map[string]string{"cmdline.txt": longCmd}},
			{"firstrun", map[string]string{"firstrun.sh": "#!/bin/bash\nset +e\n"}, map[string]string{"firstrun.sh": "#!/bin/bash\nset +e\n"}},
			{"cloud-init", map[string]string{"user-data": "#cloud-config\nhostname: KXP2-CORO-001\n", "meta-data": "instance-id: x\n"},
				map[string]string{"user-data": "#cloud-config\nhostname: KXP2-CORO-001\n", "meta-data": "instance-id: x\n"}},
			{"long name", map[string]string{"firstrun-custom-settings-long-name.sh": "x"}, map[string]string{"firstrun-custom-settings-long-name.sh": "x"}},
			{"mixed case 8.3", map[string]string{"Notes.Txt": "n"}, map[string]string{"Notes.Txt": "n"}},
			{"in subdirectory", map[string]string{"overlays/new-overlay.dtbo": "dtbo"}, map[string]string{"overlays/new-overlay.dtbo": "dtbo", "overlays/README": "readme"}},
			{"empty file", map[string]string{"empty": ""}, map[string]string{"empty": ""}},
			{"replace with empty", map[string]string{"cmdline.txt": ""}, map[string]string{"cmdline.txt": ""}},
			{"big file", map[string]string{"kernel_2712.img": string(big)}, map[string]string{"kernel_2712.img": string(big)}},
		} {
			t.Run(fmt.Sprintf("fat%d/%s", bits, tc.name), func(t *testing.T) {
				t.Parallel()
				img := mkfs(t, bits, 40, map[string]string{"cmdline.txt": "console=tty1 root=PARTUUID=1-02 rootwait\n", "overlays/README": "readme", "kernel_2712.img": "kernel"})
				fsys, _ := open(t, img)
				for name, data := range tc.writes {
					if err := fsys.WriteFile(name, []byte(data)); err != nil {
						t.Fatal(err)
					}
				}
				fsck(t, img)
				for name, want := range tc.check {
					if got := mtype(t, img, name); !bytes.Equal(got, []byte(want)) {
						t.Errorf("mtype %s: %d bytes, want %d", name, len(got), len(want))
					}
					got, err := fsys.ReadFile(name)
					if err != nil || !bytes.Equal(got, []byte(want)) {
						t.Errorf("ReadFile %s: %v, %d bytes, want %d", name, err, len(got), len(want))
					}
				}
				// Reopened, the free count agrees with a fresh scan and mdir lists the names.
				again, _ := open(t, img)
				if again.FreeBytes() != fsys.FreeBytes() {
					t.Errorf("free bytes %d after reopen, %d before", again.FreeBytes(), fsys.FreeBytes())
				}
				for name := range tc.writes {
					dir, base := "/", name
					if i := strings.LastIndex(name, "/"); i >= 0 {
						dir, base = name[:i], name[i+1:]
					}
					if names, err := testimg.MList(ctx, img, 0, dir); err != nil || !slices.Contains(names, base) {
						t.Errorf("mdir %s does not list %s: %v %q", dir, base, err, names)
					}
				}
			})
		}
	}
}

// TestShortNames pins the 8.3 names given to new files, as mdir shows them.
func TestShortNames(t *testing.T) {
	img := mkfs(t, 32, 40, nil)
	fsys, _ := open(t, img)
	for _, name := range []string{"firstrun.sh", "firstrun-custom-settings-long-name.sh", "firstrun-custom-other.sh", "Mixed.Case.Name.txt", "a b.c d", ".hidden", "user-data", "README", "ünïcode.txt"} {
		if err := fsys.WriteFile(name, []byte(name)); err != nil {
			t.Fatal(err)
		}
	}
	fsck(t, img)
	got := map[string]string{}
	entries, err := fsys.ReadDir("")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		got[e.Name] = e.ShortName
		if data := mtype(t, img, e.Name); string(data) != e.Name {
			t.Errorf("mtype %q = %q", e.Name, data)
		}
	}
	want := map[string]string{
		"firstrun.sh":                           "FIRSTRUN.SH",
		"firstrun-custom-settings-long-name.sh": "FIRSTR~1.SH",
		"firstrun-custom-other.sh":              "FIRSTR~2.SH",
		"Mixed.Case.Name.txt":                   "MIXEDC~1.TXT",
		"a b.c d":                               "AB~1.CD",
		".hidden":                               "HIDDEN~1",
		"user-data":                             "USER-D~1",
		"README":                                "README",
		"ünïcode.txt":                           "_N_COD~1.TXT",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("short names (-want +got):\n%s", d)
	}
	for _, bad := range []string{"a:b", "x?", "trailing.", "", "tab\tname"} {
		if err := fsys.WriteFile(bad, []byte("x")); !errors.Is(err, ErrInvalidName) && !(bad == "" && errors.Is(err, ErrIsDir)) {
			t.Errorf("WriteFile(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
}

// TestDirectoryGrows: enough new entries to need more directory clusters, in the
// root (FAT32) and a subdirectory.
func TestDirectoryGrows(t *testing.T) {
	img := mkfs(t, 32, 40, map[string]string{"overlays/README": "r"})
	fsys, _ := open(t, img)
	for i := range 60 {
		for _, dir := range []string{"", "overlays/"} {
			name := fmt.Sprintf("%sgenerated-file-with-a-long-name-%03d.dtbo", dir, i)
			if err := fsys.WriteFile(name, []byte(name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	fsck(t, img)
	for _, dir := range []string{"/", "overlays"} {
		out, err := testimg.MDir(ctx, img, 0, dir)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(out, "generated-file-with-a-long-name-"); n != 60 {
			t.Errorf("mdir %s lists %d generated files, want 60", dir, n)
		}
	}
	if got := mtype(t, img, "overlays/generated-file-with-a-long-name-059.dtbo"); string(got) != "overlays/generated-file-with-a-long-name-059.dtbo" {
		t.Errorf("mtype: %q", got)
	}
	// Replace and remove entries in later directory clusters (long-name runs may
	// straddle a cluster boundary), then refill the freed slots.
	for i := range 60 {
		name := fmt.Sprintf("generated-file-with-a-long-name-%03d.dtbo", i)
		switch i % 3 {
		case 0:
			if err := fsys.Remove(name); err != nil {
				t.Fatal(err)
			}
		case 1:
			if err := fsys.WriteFile(name, []byte("replaced "+name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 20 {
		if err := fsys.WriteFile(fmt.Sprintf("refill-%02d-with-a-long-name.txt", i), []byte("r")); err != nil {
			t.Fatal(err)
		}
	}
	fsck(t, img)
	names, err := testimg.MList(ctx, img, 0, "/")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(names); n != 1+40+20 { // overlays, 40 generated, 20 refills
		t.Errorf("mdir lists %d names, want 61", n)
	}
	if got := mtype(t, img, "generated-file-with-a-long-name-058.dtbo"); string(got) != "replaced generated-file-with-a-long-name-058.dtbo" {
		t.Errorf("mtype after replace: %q", got)
	}
}

func TestRemove(t *testing.T) {
	img := mkfs(t, 32, 40, map[string]string{"firstrun-custom-settings-long-name.sh": strings.Repeat("x", 100000), "cmdline.txt": "c", "overlays/README": "r"})
	fsys, _ := open(t, img)
	before := fsys.FreeBytes()
	if err := fsys.Remove("FIRSTRUN-custom-settings-long-name.sh"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove("overlays/README"); err != nil {
		t.Fatal(err)
	}
	fsck(t, img)
	if got := fsys.FreeBytes() - before; got < 100000 {
		t.Errorf("freed %d bytes, want ≥ 100000", got)
	}
	out, err := testimg.MDir(ctx, img, 0, "/")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "firstrun") || strings.Contains(out, "FIRSTR") {
		t.Errorf("mdir still lists the removed file:\n%s", out)
	}
	if _, err := testimg.MType(ctx, img, 0, "overlays/README"); err == nil {
		t.Error("mtype reads the removed file")
	}
	if err := fsys.Remove("overlays"); !errors.Is(err, ErrIsDir) {
		t.Errorf("remove a directory: %v", err)
	}
	if err := fsys.Remove("gone.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("remove a missing file: %v", err)
	}
	// The freed slots are reused.
	if err := fsys.WriteFile("firstrun.sh", []byte("y")); err != nil {
		t.Fatal(err)
	}
	fsck(t, img)
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return testimg.SHA256(b)
}

// TestFull: a write that does not fit fails with ErrNoSpace and changes no byte;
// replacing a file may use the space of its old contents; the last free cluster can
// be used.
func TestFull(t *testing.T) {
	for _, bits := range []int{32, 16} {
		t.Run(fmt.Sprint("fat", bits), func(t *testing.T) {
			t.Parallel()
			size := map[int]int{32: 34, 16: 16}[bits] // the smallest of each
			img := mkfs(t, bits, size, map[string]string{"cmdline.txt": "c"})
			fsys, _ := open(t, img)
			free := fsys.FreeBytes()
			// Fill all but 3 clusters with one file.
			filler := make([]byte, free-3*fsys.ClusterSize())
			if err := fsys.WriteFile("filler.bin", filler); err != nil {
				t.Fatal(err)
			}
			fsck(t, img)
			before := fileSum(t, img)
			for name, size := range map[string]int64{"new.bin": 4 * fsys.ClusterSize(), "cmdline.txt": 5 * fsys.ClusterSize()} {
				err := fsys.WriteFile(name, make([]byte, size))
				if !errors.Is(err, ErrNoSpace) {
					t.Fatalf("WriteFile %s: %v, want ErrNoSpace", name, err)
				}
				if after := fileSum(t, img); after != before {
					t.Fatalf("a failed write of %s changed the image", name)
				}
			}
			fsck(t, img)
			if got := mtype(t, img, "cmdline.txt"); string(got) != "c" {
				t.Errorf("cmdline.txt = %q", got)
			}
			// Replacing filler with a bigger file that fits only with its old space.
			bigger := bytes.Repeat([]byte{7}, len(filler)+2*int(fsys.ClusterSize()))
			if err := fsys.WriteFile("filler.bin", bigger); err != nil {
				t.Fatal(err)
			}
			fsck(t, img)
			if got := mtype(t, img, "filler.bin"); !bytes.Equal(got, bigger) {
				t.Error("filler.bin differs")
			}
			// Exactly the last free cluster.
			if err := fsys.WriteFile("last.bin", bytes.Repeat([]byte{1}, int(fsys.FreeBytes()))); err != nil {
				t.Fatal(err)
			}
			if fsys.FreeBytes() != 0 {
				t.Errorf("free %d", fsys.FreeBytes())
			}
			fsck(t, img)
			if err := fsys.WriteFile("one-more.txt", []byte("x")); !errors.Is(err, ErrNoSpace) {
				t.Errorf("write to a full file system: %v", err)
			}
			fsck(t, img)
		})
	}
}

// TestUsedRanges: writing only the used ranges of a used card onto a disk of random
// bytes gives a file system that fsck.fat accepts with every file intact; the free
// clusters (which hold deleted data) are left out.
func TestUsedRanges(t *testing.T) {
	img, info, fsys := buildBoot(t, testimg.Options{RootData: -1, Used: true, BootSize: 48 << 20})
	src, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	ranges, err := fsys.UsedRanges()
	if err != nil {
		t.Fatal(err)
	}
	var used int64
	prev := int64(-1)
	for _, r := range ranges {
		if r.Offset <= prev || r.Length <= 0 || r.Offset < info.Boot.Offset || r.End() > info.Boot.Offset+info.Boot.Size {
			t.Fatalf("range %+v unsorted, unmerged or outside the partition", r)
		}
		prev = r.End()
		used += r.Length
	}
	if want := info.Boot.Size - fsys.FreeBytes(); used > want || used < want-fsys.ClusterSize()*2-8192 {
		t.Errorf("used %d bytes, partition %d - free %d = %d", used, info.Boot.Size, fsys.FreeBytes(), want)
	}
	dst := testimg.Garbage(len(src))
	for _, r := range ranges {
		copy(dst[r.Offset:r.End()], src[r.Offset:r.End()])
	}
	part := filepath.Join(t.TempDir(), "boot.img")
	if err := os.WriteFile(part, dst[info.Boot.Offset:info.Boot.Offset+info.Boot.Size], 0o644); err != nil {
		t.Fatal(err)
	}
	fsck(t, part)
	for _, file := range info.Files {
		if file.FS == "bootfs" {
			if got := testimg.SHA256(mtype(t, part, file.Path)); got != file.SHA256 {
				t.Errorf("%s differs after copying only the used ranges", file.Path)
			}
		}
	}
	var deleted bool
	for _, r := range ranges {
		if bytes.Contains(src[r.Offset:r.End()], []byte(testimg.DeletedMarker)) {
			deleted = true
		}
	}
	if deleted {
		t.Error("used ranges include deleted files' data")
	}
}

// TestRootDirFull: the fixed FAT16 root directory cannot grow: ErrNoSpace, and the
// file system stays clean.
func TestRootDirFull(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "fat16.img")
	testimg.MustTool(t, "mkfs.vfat", "-C", "-F", "16", "-r", "16", img, "16384")
	fsys, _ := open(t, img)
	var err error
	n := 0
	for ; err == nil && n < 1000; n++ {
		err = fsys.WriteFile(fmt.Sprintf("F%d.TXT", n), []byte("x"))
	}
	slots := int(fsys.rootBytes / 32) // mkfs.vfat rounds -r up; no label entry
	if !errors.Is(err, ErrNoSpace) || n-1 != slots {
		t.Fatalf("after %d files: %v, want ErrNoSpace after %d", n-1, err, slots)
	}
	fsck(t, img)
	if names, err := testimg.MList(ctx, img, 0, "/"); err != nil || len(names) != slots {
		t.Errorf("mdir: %v, %d names", err, len(names))
	}
}

// TestCorruptBPB: damaged boot sectors give clear errors and no panic.
func TestCorruptBPB(t *testing.T) {
	img := mkfs(t, 32, 40, map[string]string{"cmdline.txt": "c"})
	file, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	st, _ := file.Stat()
	orig := make([]byte, 512)
	if _, err := file.ReadAt(orig, 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		damage func(b []byte)
		size   int64
		want   error
		msg    string
	}{
		{"zeroed", func(b []byte) { clear(b[:512]) }, 0, ErrNotFAT, "no jump"},
		{"no signature", func(b []byte) { b[510] = 0 }, 0, ErrNotFAT, "0x55AA"},
		{"sector size", func(b []byte) { binary.LittleEndian.PutUint16(b[11:], 500) }, 0, ErrCorrupt, "bytes per sector 500"},
		{"cluster size", func(b []byte) { b[13] = 3 }, 0, ErrCorrupt, "power of two"},
		{"no FATs", func(b []byte) { b[16] = 0 }, 0, ErrCorrupt, "0 FATs"},
		{"no reserved", func(b []byte) { binary.LittleEndian.PutUint16(b[14:], 0) }, 0, ErrCorrupt, "reserved"},
		{"fat size", func(b []byte) { binary.LittleEndian.PutUint32(b[36:], 0) }, 0, ErrCorrupt, "FAT size 0"},
		{"small fat", func(b []byte) { binary.LittleEndian.PutUint32(b[36:], 10) }, 0, ErrCorrupt, "cannot hold"},
		{"root cluster", func(b []byte) { binary.LittleEndian.PutUint32(b[44:], 1) }, 0, ErrCorrupt, "root cluster 1"},
		{"partition too small", func([]byte) {}, 20 << 20, ErrCorrupt, "partition has 20971520"},
		{"tiny", func([]byte) {}, 100, ErrNotFAT, "100 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(orig)
			tc.damage(b)
			size := tc.size
			if size == 0 {
				size = st.Size()
			}
			_, err := Open(bootOverlay{b, file}, 0, size)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
}

// TestLoopedChain: a FAT chain that loops is reported, not followed forever.
func TestLoopedChain(t *testing.T) {
	img := mkfs(t, 32, 40, map[string]string{"big.bin": strings.Repeat("z", 5000)})
	fsys, f := open(t, img)
	e, err := fsys.Stat("big.bin")
	if err != nil {
		t.Fatal(err)
	}
	// Point the file's third cluster back at its first, in FAT 1.
	cs, _ := fsys.chain(e.Cluster)
	var v [4]byte
	binary.LittleEndian.PutUint32(v[:], cs[0])
	if _, err := f.WriteAt(v[:], fsys.fatStart+4*int64(cs[2])); err != nil {
		t.Fatal(err)
	}
	again, _ := open(t, img)
	if _, err := again.ReadFile("big.bin"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
}

// bootOverlay reads a replaced boot sector over a file.
type bootOverlay struct {
	boot []byte
	f    *os.File
}

func (o bootOverlay) ReadAt(p []byte, off int64) (int, error) {
	if off < int64(len(o.boot)) {
		return copy(p, o.boot[off:]), nil
	}
	return o.f.ReadAt(p, off)
}

func (bootOverlay) WriteAt([]byte, int64) (int, error) { return 0, errors.New("read-only") }

// failAfter passes n writes through, then fails every write with EIO.
type failAfter struct {
	*os.File
	n int
}

var errEIO = errors.New("input/output error")

func (d *failAfter) WriteAt(p []byte, off int64) (int, error) {
	if d.n <= 0 {
		return 0, errEIO
	}
	d.n--
	return d.File.WriteAt(p, off)
}

// TestWriteErrors: a device write that fails at any point of WriteFile is returned,
// and the FS then refuses further changes with ErrFailed instead of writing from a
// FAT that no longer matches the device.
func TestWriteErrors(t *testing.T) {
	data := bytes.Repeat([]byte("firstrun "), 3000) // several clusters
	for n := 0; ; n++ {
		img := mkfs(t, 32, 34, map[string]string{"cmdline.txt": "c"})
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		dev := &failAfter{File: f, n: n}
		st, _ := f.Stat()
		fsys, err := Open(dev, 0, st.Size())
		if err != nil {
			t.Fatal(err)
		}
		err = fsys.WriteFile("firstrun-with-a-long-name.sh", data)
		if err == nil {
			if n < 3 {
				t.Fatalf("WriteFile succeeded with only %d device writes", n)
			}
			fsck(t, img)
			return
		}
		if !errors.Is(err, errEIO) {
			t.Fatalf("after %d writes: %v, want the device's error", n, err)
		}
		dev.n = 1 << 30 // the device works again; the FS must still refuse
		if err := fsys.WriteFile("cmdline.txt", []byte("x")); !errors.Is(err, ErrFailed) || !errors.Is(err, errEIO) {
			t.Fatalf("after a failed write: %v, want ErrFailed wrapping the cause", err)
		}
		if err := fsys.Remove("cmdline.txt"); !errors.Is(err, ErrFailed) {
			t.Fatalf("remove after a failed write: %v", err)
		}
		// A fresh Open of what reached the device reads cmdline.txt unchanged.
		again, err := Open(f, 0, st.Size())
		if err != nil {
			t.Fatal(err)
		}
		if got, err := again.ReadFile("cmdline.txt"); err != nil || string(got) != "c" {
			t.Fatalf("after failing at write %d: cmdline.txt %q, %v", n, got, err)
		}
		if n > 20 {
			t.Fatal("WriteFile never succeeds")
		}
	}
}

// TestGeometries: other sector sizes, cluster sizes and FAT counts that mkfs.vfat
// makes, written by us and checked by fsck.fat and mtools.
func TestGeometries(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"4K sectors", []string{"-F", "32", "-S", "4096"}},
		{"4K clusters FAT16", []string{"-F", "16", "-s", "8"}},
		{"one FAT", []string{"-F", "32", "-f", "1"}},
		{"8K clusters FAT32", []string{"-F", "32", "-s", "16"}},
		// FAT32 by its BPB with fewer than 65525 clusters, as Linux and fsck.fat take
		// it; mtools takes it for FAT16 and cannot read it, so only we read it back.
		{"small FAT32", []string{"-F", "32", "-S", "4096"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			img := filepath.Join(t.TempDir(), "fat.img")
			size := "40960"
			switch tc.name { // FAT32 needs 65525 clusters for mtools to take it as FAT32
			case "8K clusters FAT32":
				size = "600000"
			case "4K sectors":
				size = "300000"
			}
			testimg.MustTool(t, "mkfs.vfat", append(append([]string{"-C"}, tc.args...), img, size)...)
			fsys, _ := open(t, img)
			data := bytes.Repeat([]byte("0123456789abcdef"), 10000)
			for _, name := range []string{"cmdline.txt", "firstrun-custom-settings-long-name.sh", "big.bin"} {
				if err := fsys.WriteFile(name, data[:len(name)*1000]); err != nil {
					t.Fatal(err)
				}
			}
			if err := fsys.WriteFile("big.bin", data); err != nil {
				t.Fatal(err)
			}
			if err := fsys.Remove("cmdline.txt"); err != nil {
				t.Fatal(err)
			}
			fsck(t, img)
			if tc.name == "small FAT32" {
				again, _ := open(t, img)
				if got, err := again.ReadFile("big.bin"); err != nil || !bytes.Equal(got, data) || again.Bits() != 32 {
					t.Errorf("big.bin: %v, FAT%d", err, again.Bits())
				}
				return
			}
			if got := mtype(t, img, "big.bin"); !bytes.Equal(got, data) {
				t.Error("big.bin differs")
			}
			if got := mtype(t, img, "firstrun-custom-settings-long-name.sh"); !bytes.Equal(got, data[:37000]) {
				t.Error("long name file differs")
			}
		})
	}
}
