package ext4

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
)

var ctx = context.Background()

func TestMain(m *testing.M) {
	if err := testimg.RequireTools(); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// tree writes a source tree for mkfs -d: small and large files, a symlink of each
// kind, a file big enough for double-indirect blocks on ext2. It returns path → sha256.
func tree(t *testing.T) (string, map[string]string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	want := map[string]string{}
	put := func(p string, data []byte) {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
		want[p] = testimg.SHA256(data)
	}
	r := rand.NewChaCha8([32]byte{9})
	big := make([]byte, 5<<20+777)
	r.Read(big)
	put("usr/lib/os-release", []byte("PRETTY_NAME=\"Raspbian GNU/Linux 12 (bookworm)\"\nVERSION_CODENAME=bookworm\n"))
	put("etc/hostname", []byte("raspberrypi\n"))
	put("etc/empty", nil)
	put("tiny", []byte("x"))
	put("usr/share/big.bin", big)
	put("usr/share/exact-block.bin", big[:4096])
	for i := range 30 {
		put(fmt.Sprintf("var/lib/many/file-%02d", i), big[i*1000:i*1000+i*37])
	}
	for link, target := range map[string]string{
		"etc/os-release": "../usr/lib/os-release",
		"etc/abs":        "/usr/lib/os-release",
		"etc/slow":       "/usr/lib/" + strings.Repeat("../lib/", 12) + "os-release",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
		want[link] = want["usr/lib/os-release"]
	}
	return dir, want
}

// mkfs makes an ext file system of sizeMiB from src with extra mke2fs options.
func mkfs(t *testing.T, sizeMiB int, src string, opts ...string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "root.img")
	args := append([]string{"-q", "-F", "-L", "rootfs", "-E", "nodiscard"}, opts...)
	if src != "" {
		args = append(args, "-d", src)
	}
	args = append(args, img, fmt.Sprintf("%dM", sizeMiB))
	testimg.MustTool(t, "mke2fs", args...)
	return img
}

func open(t *testing.T, img string) *FS {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	fsys, err := Open(f, 0, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

var (
	groupRE = regexp.MustCompile(`(?m)^Group \d+: \(Blocks (\d+)-(\d+)\)`)
	freeRE  = regexp.MustCompile(`(?m)^  Free blocks: ?(.*)$`)
)

// dumpe2fsUsed returns the used blocks as dumpe2fs reports them (every block of
// every group minus its free blocks), as a bitmap indexed by block.
func dumpe2fsUsed(t *testing.T, img string, blocks int) []bool {
	t.Helper()
	out := testimg.MustTool(t, "dumpe2fs", img)
	groups := groupRE.FindAllStringSubmatch(out, -1)
	frees := freeRE.FindAllStringSubmatch(out, -1)
	if len(groups) == 0 || len(groups) != len(frees) {
		t.Fatalf("dumpe2fs: %d groups, %d free lists", len(groups), len(frees))
	}
	used := make([]bool, blocks)
	for i, g := range groups {
		a, _ := strconv.Atoi(g[1])
		b, _ := strconv.Atoi(g[2])
		for k := a; k <= b; k++ {
			used[k] = true
		}
		for _, r := range strings.Split(frees[i][1], ",") {
			r = strings.TrimSpace(r)
			if r == "" {
				continue
			}
			lo, hi, found := strings.Cut(r, "-")
			x, _ := strconv.Atoi(lo)
			y := x
			if found {
				y, _ = strconv.Atoi(hi)
			}
			for k := x; k <= y; k++ {
				used[k] = false
			}
		}
	}
	return used
}

// checkUsed compares our used ranges with dumpe2fs, block by block, then copies
// only the used ranges onto random bytes: e2fsck -fn must pass and every file must
// read back the same.
func checkUsed(t *testing.T, img string, fsys *FS, want map[string]string) {
	t.Helper()
	ranges, err := fsys.UsedRanges()
	if err != nil {
		t.Fatal(err)
	}
	bs := fsys.BlockSize()
	blocks := int(fsys.Size() / bs)
	ours := make([]bool, blocks)
	var prev int64 = -1
	for _, r := range ranges {
		if r.Offset <= prev || r.Offset%bs != 0 || r.Length%bs != 0 || r.End() > fsys.Size() {
			t.Fatalf("range %+v: unsorted, unmerged, unaligned or past the end", r)
		}
		prev = r.End()
		for b := r.Offset / bs; b < r.End()/bs; b++ {
			ours[b] = true
		}
	}
	theirs := dumpe2fsUsed(t, img, blocks)
	if bs == 1024 {
		theirs[0] = true // the boot block: not in any group
	}
	var diff []string
	for b := range blocks {
		if ours[b] != theirs[b] && len(diff) < 10 {
			diff = append(diff, fmt.Sprintf("block %d: ours %v dumpe2fs %v", b, ours[b], theirs[b]))
		}
	}
	if len(diff) > 0 {
		t.Fatalf("used blocks differ:\n%s", strings.Join(diff, "\n"))
	}

	src, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	dst := testimg.Garbage(len(src))
	for _, r := range ranges {
		copy(dst[r.Offset:r.End()], src[r.Offset:r.End()])
	}
	copyImg := filepath.Join(t.TempDir(), "copy.img")
	if err := os.WriteFile(copyImg, dst, 0o644); err != nil {
		t.Fatal(err)
	}
	testimg.MustTool(t, "e2fsck", "-fn", copyImg)
	c := open(t, copyImg)
	for p, h := range want {
		data, err := c.ReadFile(p)
		if err != nil {
			t.Fatalf("copy: %s: %v", p, err)
		}
		if testimg.SHA256(data) != h {
			t.Errorf("copy: %s differs", p)
		}
	}
}

// TestVariants reads file systems made by mke2fs with the layouts we may meet.
func TestVariants(t *testing.T) {
	src, want := tree(t)
	for _, tc := range []struct {
		name string
		size int
		opts []string
	}{
		// -g makes many small groups, so there are BLOCK_UNINIT groups and backups.
		{"ext4 default 64bit metadata_csum flex_bg", 48, []string{"-t", "ext4", "-g", "1024"}},
		{"pi-gen ^64bit ^huge_file", 48, []string{"-t", "ext4", "-g", "1024", "-O", "^64bit,^huge_file"}},
		{"no flex_bg", 48, []string{"-t", "ext4", "-g", "1024", "-O", "^flex_bg"}},
		{"1 KiB blocks", 48, []string{"-t", "ext4", "-b", "1024"}},
		{"no sparse_super", 32, []string{"-t", "ext4", "-g", "1024", "-O", "^sparse_super,^resize_inode"}},
		{"sparse_super2", 32, []string{"-t", "ext4", "-g", "1024", "-O", "sparse_super2"}},
		{"no resize_inode", 32, []string{"-t", "ext4", "-g", "2048", "-O", "^resize_inode"}},
		{"gdt_csum no metadata_csum", 32, []string{"-t", "ext4", "-g", "1024", "-O", "^metadata_csum,uninit_bg"}},
		{"inline_data", 32, []string{"-t", "ext4", "-O", "inline_data", "-I", "512"}},
		{"ext3", 32, []string{"-t", "ext3"}},
		{"ext2 1 KiB", 32, []string{"-t", "ext2", "-b", "1024"}},
		{"ext2 4 KiB", 32, []string{"-t", "ext2", "-b", "4096"}},
		{"128-byte inodes", 32, []string{"-t", "ext4", "-I", "128"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			img := mkfs(t, tc.size, src, tc.opts...)
			fsys := open(t, img)
			if fsys.Label() != "rootfs" {
				t.Errorf("label %q", fsys.Label())
			}
			for p, h := range want {
				data, err := fsys.ReadFile(p)
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				if testimg.SHA256(data) != h {
					t.Errorf("%s: sha256 %s, want %s", p, testimg.SHA256(data), h)
				}
			}
			uninit := 0
			for _, gd := range fsys.gd {
				if gd.flags&bgBlockUninit != 0 {
					uninit++
				}
			}
			if strings.Contains(tc.name, "csum") && uninit == 0 {
				t.Errorf("no BLOCK_UNINIT group among %d: the case does not test them", len(fsys.gd))
			}
			t.Logf("%d groups, %d BLOCK_UNINIT", len(fsys.gd), uninit)
			checkUsed(t, img, fsys, want)
		})
	}
}

// TestTestImage reads the rootfs of each test-image kind at its offset in the image.
func TestTestImage(t *testing.T) {
	for _, kind := range testimg.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			img := filepath.Join(t.TempDir(), "card.img")
			info, err := testimg.Build(img, testimg.Options{Kind: kind, RootData: 1 << 20, Used: kind == testimg.BookwormFirstrun})
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fsys, err := Open(f, info.Root.Offset, info.Root.Size)
			if err != nil {
				t.Fatal(err)
			}
			if fsys.Label() != "rootfs" {
				t.Errorf("label %q", fsys.Label())
			}
			contents := map[string]string{}
			for _, file := range info.Files {
				if file.FS == "rootfs" && file.Link == "" {
					contents[file.Path] = file.SHA256
				}
			}
			for _, file := range info.Files {
				if file.FS != "rootfs" {
					continue
				}
				data, err := fsys.ReadFile(file.Path)
				if err != nil {
					t.Fatalf("%s: %v", file.Path, err)
				}
				wantSum := file.SHA256
				if file.Link != "" {
					target := file.Link
					if !strings.HasPrefix(target, "/") {
						target = filepath.Join(filepath.Dir("/"+file.Path), target)
					}
					wantSum = contents[strings.TrimPrefix(target, "/")]
					if got, err := fsys.Readlink(file.Path); err != nil || got != file.Link {
						t.Errorf("readlink %s = %q, %v; want %q", file.Path, got, err, file.Link)
					}
				}
				if testimg.SHA256(data) != wantSum {
					t.Errorf("%s: sha256 %s, want %s", file.Path, testimg.SHA256(data), wantSum)
				}
			}
			osr, err := fsys.ReadFile("/etc/os-release")
			if err != nil || !bytes.Contains(osr, []byte("VERSION_CODENAME=")) {
				t.Errorf("os-release: %v %q", err, osr)
			}
			ranges, err := fsys.UsedRanges()
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range ranges {
				if r.Offset < info.Root.Offset || r.End() > info.Root.Offset+info.Root.Size {
					t.Fatalf("range %+v outside the partition", r)
				}
				raw := make([]byte, r.Length)
				if _, err := f.ReadAt(raw, r.Offset); err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(raw, []byte(testimg.DeletedMarker)) {
					t.Errorf("range %+v holds deleted data", r)
				}
			}
			// Only the used ranges of the rootfs, over garbage, make a clean file system.
			part := testimg.Garbage(int(info.Root.Size))
			for _, r := range ranges {
				if _, err := f.ReadAt(part[r.Offset-info.Root.Offset:r.End()-info.Root.Offset], r.Offset); err != nil {
					t.Fatal(err)
				}
			}
			partImg := filepath.Join(t.TempDir(), "rootfs.img")
			if err := os.WriteFile(partImg, part, 0o644); err != nil {
				t.Fatal(err)
			}
			testimg.MustTool(t, "e2fsck", "-fn", partImg)
		})
	}
}

// TestFragmented: a file written into a fragmented file system has an extent tree
// of depth > 0; it reads back byte-exact and its blocks are in the used ranges.
func TestFragmented(t *testing.T) {
	dir := t.TempDir()
	img := mkfs(t, 64, "", "-t", "ext4")
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, bytes.Repeat([]byte("s"), 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3<<20+5)
	rand.NewChaCha8([32]byte{7}).Read(big)
	bigPath := filepath.Join(dir, "big")
	if err := os.WriteFile(bigPath, big, 0o644); err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("mkdir /frag\n")
	for i := range 600 {
		fmt.Fprintf(&script, "write %s /frag/s%03d\n", small, i)
	}
	for i := 0; i < 600; i += 2 {
		fmt.Fprintf(&script, "rm /frag/s%03d\n", i)
	}
	fmt.Fprintf(&script, "write %s /frag/big\n", bigPath)
	scriptPath := filepath.Join(dir, "script")
	if err := os.WriteFile(scriptPath, []byte(script.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	testimg.MustTool(t, "debugfs", "-w", "-f", scriptPath, img)
	testimg.MustTool(t, "e2fsck", "-fn", img)

	fsys := open(t, img)
	in, err := fsys.resolve("test", "frag/big", true)
	if err != nil {
		t.Fatal(err)
	}
	if depth := binary.LittleEndian.Uint16(in.block[6:]); depth == 0 {
		t.Fatalf("extent tree depth 0: the file is not fragmented enough to test index nodes")
	}
	exts, _ := fsys.extents(in)
	if len(exts) < 10 {
		t.Errorf("%d extents, want a fragmented file", len(exts))
	}
	got, err := fsys.ReadFile("frag/big")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("fragmented file differs")
	}
	want := map[string]string{"frag/big": testimg.SHA256(big), "frag/s001": testimg.SHA256(bytes.Repeat([]byte("s"), 8192))}
	checkUsed(t, img, fsys, want)
}

// TestHtree: a directory indexed by e2fsck -D (htree) lists every name and its
// files read back.
func TestHtree(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	var names []string
	for i := range 400 {
		name := fmt.Sprintf("an-entry-with-a-long-name-to-fill-blocks-%04d", i)
		names = append(names, name)
		if err := os.MkdirAll(filepath.Join(src, "big"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "big", name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := mkfs(t, 32, src, "-t", "ext4")
	cmd := exec.Command("e2fsck", "-fyD", img)
	if out, err := cmd.CombinedOutput(); err != nil {
		// Exit 1 means "file system modified", which -D always does.
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("e2fsck -fyD: %v\n%s", err, out)
		}
	}
	fsys := open(t, img)
	in, err := fsys.resolve("test", "big", true)
	if err != nil {
		t.Fatal(err)
	}
	if in.flags&flagIndex == 0 {
		t.Fatal("directory is not indexed: the test does not test htree")
	}
	got, err := fsys.ReadDir("big")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, names) {
		t.Fatalf("ReadDir: %d names, want %d", len(got), len(names))
	}
	for _, n := range []string{names[0], names[199], names[399]} {
		if data, err := fsys.ReadFile("big/" + n); err != nil || string(data) != n {
			t.Errorf("%s: %v %q", n, err, data)
		}
	}
}

func TestPathErrors(t *testing.T) {
	src, _ := tree(t)
	if err := os.Symlink("loop2", filepath.Join(src, "loop1")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("loop1", filepath.Join(src, "loop2")); err != nil {
		t.Fatal(err)
	}
	fsys := open(t, mkfs(t, 32, src, "-t", "ext4"))
	for _, tc := range []struct {
		path string
		want error
	}{
		{"nope", fs.ErrNotExist},
		{"etc/nope", fs.ErrNotExist},
		{"etc", ErrIsDir},
		{"etc/hostname/x", ErrNotDir},
		{"loop1", ErrSymlinkLoop},
	} {
		if _, err := fsys.ReadFile(tc.path); !errors.Is(err, tc.want) {
			t.Errorf("ReadFile(%q) = %v, want %v", tc.path, err, tc.want)
		}
	}
	st, err := fsys.Lstat("etc/os-release")
	if err != nil || st.Mode&fs.ModeSymlink == 0 {
		t.Errorf("Lstat: %+v %v", st, err)
	}
	st, err = fsys.Stat("etc/os-release")
	if err != nil || !st.Mode.IsRegular() {
		t.Errorf("Stat: %+v %v", st, err)
	}
}

// TestCorruptSuperblock: damaged superblocks and descriptors give clear errors.
func TestCorruptSuperblock(t *testing.T) {
	img := mkfs(t, 32, "", "-t", "ext4")
	file, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	st, _ := file.Stat()
	orig := make([]byte, 64<<10) // superblock and descriptors; the rest is read from the file
	if _, err := file.ReadAt(orig, 0); err != nil {
		t.Fatal(err)
	}
	good := open(t, img)
	gdt := int64(good.firstDataBlock+1) * good.blockSize
	sb := func(b []byte) []byte { return b[1024:2048] }
	fixCsum := func(b []byte) {
		s := sb(b)
		binary.LittleEndian.PutUint32(s[0x3FC:], ^crc32.Checksum(s[:0x3FC], crc32.MakeTable(crc32.Castagnoli)))
	}
	for _, tc := range []struct {
		name   string
		damage func(b []byte)
		size   int64
		want   error
		msg    string
	}{
		{"zeroed", func(b []byte) { clear(sb(b)) }, 0, ErrNotExt4, "magic"},
		{"checksum", func(b []byte) { sb(b)[0x78] ^= 1 }, 0, ErrCorrupt, "checksum"},
		{"blocks per group", func(b []byte) { binary.LittleEndian.PutUint32(sb(b)[0x20:], 0); fixCsum(b) }, 0, ErrCorrupt, "blocks per group"},
		{"block size", func(b []byte) { binary.LittleEndian.PutUint32(sb(b)[0x18:], 9); fixCsum(b) }, 0, ErrCorrupt, "block size"},
		{"inode count", func(b []byte) { binary.LittleEndian.PutUint32(sb(b)[0x0:], 5); fixCsum(b) }, 0, ErrCorrupt, "inodes"},
		{"needs recovery", func(b []byte) { sb(b)[0x60] |= 0x4; fixCsum(b) }, 0, ErrNeedsRecovery, "e2fsck"},
		{"meta_bg", func(b []byte) { sb(b)[0x60] |= 0x10; fixCsum(b) }, 0, ErrUnsupported, "meta_bg"},
		{"partition too small", func([]byte) {}, 16 << 20, ErrCorrupt, "partition has 16777216"},
		{"descriptor", func(b []byte) { binary.LittleEndian.PutUint32(b[gdt+8:], 0xFFFFFF) }, 0, ErrCorrupt, "inode table"},
		{"tiny", func([]byte) {}, 1000, ErrNotExt4, "1000 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(orig)
			tc.damage(b)
			size := tc.size
			if size == 0 {
				size = st.Size()
			}
			_, err := Open(overlay{b, file}, 0, size)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
}

// overlay reads changed leading bytes over a file.
type overlay struct {
	head []byte
	f    *os.File
}

func (o overlay) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) <= int64(len(o.head)) {
		return copy(p, o.head[off:]), nil
	}
	return o.f.ReadAt(p, off)
}
