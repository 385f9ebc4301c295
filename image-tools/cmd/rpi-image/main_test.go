package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/bootfiles"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
)

// testDir holds the images the tests share; each is built once.
var testDir string

func TestMain(m *testing.M) {
	if err := testimg.RequireTools(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, tool := range []string{"xz", "zstd", "bmaptool", "debugfs", "mcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "%s not installed (make deps installs scripts/deps/image.apt)\n", tool)
			os.Exit(1)
		}
	}
	var err error
	testDir, err = os.MkdirTemp("", "rpi-image-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(testDir)
	os.Exit(code)
}

type built struct {
	once sync.Once
	info *testimg.Info
	err  error
}

var (
	imagesMu sync.Mutex
	images   = map[string]*built{}
)

// image returns a shared test image built with opt (same name, same options).
func image(t *testing.T, name string, opt testimg.Options) *testimg.Info {
	t.Helper()
	imagesMu.Lock()
	b, ok := images[name]
	if !ok {
		b = &built{}
		images[name] = b
	}
	imagesMu.Unlock()
	b.once.Do(func() { b.info, b.err = testimg.Build(filepath.Join(testDir, name+".img"), opt) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.info
}

// The two images of the "used card" tests: the same file systems and files, one made
// on a zeroed card, one on a card full of random bytes with deleted files in free space.
//
// Some random bytes of the used card are data, not free space, and rightly cost their
// size: the first MiB (always data) and the not yet used tail of the ext4 inode tables
// (mkfs.ext4 leaves it for the kernel to zero lazily; the bitmaps mark it in use). With
// 32 MiB of files these ~2 MiB weigh below 10%.
func cleanImage(t *testing.T) *testimg.Info {
	return image(t, "clean", testimg.Options{Seed: 7, RootData: 32 << 20})
}

func usedImage(t *testing.T) *testimg.Info {
	return image(t, "used", testimg.Options{Seed: 7, RootData: 32 << 20, Used: true})
}

// smallUsedImage is a used card with little data, for the tests that write and check.
func smallUsedImage(t *testing.T) *testimg.Info {
	return image(t, "small-used", testimg.Options{Seed: 8, RootData: 4 << 20, Used: true})
}

// cli runs rpi-image with args in-process and returns stdout and stderr.
func cli(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := cli(t, args...)
	if err != nil {
		t.Fatalf("rpi-image %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// pack packs img into dir/name.img.zst and returns the path and the manifest.
func packImage(t *testing.T, img, dir, name string, extra ...string) (string, *manifest.Manifest) {
	t.Helper()
	out := filepath.Join(dir, name+".img.zst")
	mustCLI(t, append([]string{"pack", "-q", img, "-o", out}, extra...)...)
	m, err := manifest.Load(manifest.PathFor(out))
	if err != nil {
		t.Fatal(err)
	}
	return out, m
}

func randomFile(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.NewChaCha8([32]byte{9}), size); err != nil {
		t.Fatal(err)
	}
}

// writeDataRanges decodes the packed image (with the real zstd tool) and writes only
// its data ranges onto target.
func writeDataRanges(t *testing.T, packed string, m *manifest.Manifest, target string) {
	t.Helper()
	raw, err := exec.Command("zstd", "-dc", packed).Output()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(target, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range m.Ranges {
		if _, err := f.WriteAt(raw[r.Offset:r.End()], r.Offset); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkImage runs fsck.fat -n and e2fsck -fn on the image at path and compares every
// file and symlink, as mtools and debugfs read them, with what testimg wrote.
func checkImage(t *testing.T, path string, info *testimg.Info) {
	t.Helper()
	ctx := context.Background()
	if err := testimg.Fsck(ctx, path); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	boot, root := filepath.Join(dir, "bootfs"), filepath.Join(dir, "rootfs")
	os.Mkdir(boot, 0o755)
	os.Mkdir(root, 0o755)
	if b, err := exec.Command("mcopy", "-s", "-n", "-i", fmt.Sprintf("%s@@%d", path, info.Boot.Offset), "::*", boot+"/").CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v: %s", err, b)
	}
	if b, err := exec.Command("debugfs", "-R", "rdump / "+root, fmt.Sprintf("%s?offset=%d", path, info.Root.Offset)).CombinedOutput(); err != nil {
		t.Fatalf("debugfs rdump: %v: %s", err, b)
	}
	for _, f := range info.Files {
		p := filepath.Join(dir, f.FS, filepath.FromSlash(f.Path))
		if f.Link != "" {
			if got, err := os.Readlink(p); err != nil || got != f.Link {
				t.Errorf("%s/%s: link %q (%v), want %q", f.FS, f.Path, got, err, f.Link)
			}
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%s/%s: %v", f.FS, f.Path, err)
			continue
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Errorf("%s/%s: contents differ from what testimg wrote", f.FS, f.Path)
		}
	}
}

// TestUsedCardPacksLikeClean pins the point of data ranges: deleted data in the free
// space of a used master card does not bloat the packed image.
func TestUsedCardPacksLikeClean(t *testing.T) {
	dir := t.TempDir()
	_, clean := packImage(t, cleanImage(t).Path, dir, "clean")
	_, used := packImage(t, usedImage(t).Path, dir, "used")
	ratio := float64(used.CompressedSize) / float64(clean.CompressedSize)
	t.Logf("packed: clean %d bytes, used %d bytes, ratio %.3f; data %d / %d bytes", clean.CompressedSize, used.CompressedSize, ratio, clean.DataBytes, used.DataBytes)
	if ratio > 1.1 {
		t.Errorf("used card packs to %.2f× the clean one (%d vs %d bytes), want ≤ 1.1×", ratio, used.CompressedSize, clean.CompressedSize)
	}
	// Without the file systems' ranges the random free space would cost its full size.
	if raw, _ := os.Stat(usedImage(t).Path); used.CompressedSize > raw.Size()/2 {
		t.Errorf("used card packs to %d of %d bytes", used.CompressedSize, raw.Size())
	}
}

// TestDataRangesOntoRandomCard writes only the data ranges of a packed used card onto
// a "card" full of random bytes: both file systems must check clean and every file
// must read back as testimg wrote it; verify --manifest must accept the card.
func TestDataRangesOntoRandomCard(t *testing.T) {
	info := smallUsedImage(t)
	dir := t.TempDir()
	packed, m := packImage(t, info.Path, dir, "used")
	card := filepath.Join(dir, "card.img")
	randomFile(t, card, m.Size+64<<20) // a bigger card than the image, as in the field
	writeDataRanges(t, packed, m, card)
	checkImage(t, card, info)
	out := mustCLI(t, "verify", "-q", "--manifest", manifest.PathFor(packed), card)
	if !strings.Contains(out, "OK") {
		t.Errorf("verify output %q", out)
	}
	// The whole-chunk check must fail: free space on the card is still random.
	if _, _, err := cli(t, "verify", "-q", "--full", "--manifest", manifest.PathFor(packed), card); err == nil {
		t.Error("verify --full accepted a card whose free space is random")
	}
	// One flipped byte inside a data range is caught.
	f, _ := os.OpenFile(card, os.O_RDWR, 0)
	r := m.Ranges[len(m.Ranges)-1]
	f.WriteAt([]byte{0xff ^ readByte(t, f, r.Offset+r.Length/2)}, r.Offset+r.Length/2)
	f.Close()
	_, _, err := cli(t, "verify", "-q", "--manifest", manifest.PathFor(packed), card)
	if err == nil || !strings.Contains(err.Error(), "mismatch") {
		t.Errorf("verify of a corrupted card: %v, want a sha256 mismatch", err)
	}
}

func readByte(t *testing.T, f *os.File, off int64) byte {
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b[0]
}

// TestBmaptoolCopy: the real bmaptool accepts our .bmap (file checksum, range
// checksums) for the raw image and for the packed one.
func TestBmaptoolCopy(t *testing.T) {
	info := smallUsedImage(t)
	dir := t.TempDir()
	bm := filepath.Join(dir, "used.bmap")
	mustCLI(t, "bmap", info.Path, "-o", bm)
	packed, m := packImage(t, info.Path, dir, "used")
	bm2 := filepath.Join(dir, "packed.bmap")
	mustCLI(t, "bmap", packed, "-o", bm2)
	a, _ := os.ReadFile(bm)
	b, _ := os.ReadFile(bm2)
	if !bytes.Equal(a, b) {
		t.Error("bmap of the raw image and of its packed image differ")
	}
	for _, src := range []string{info.Path, packed} {
		t.Run(filepath.Base(src), func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "dest.img")
			randomFile(t, dest, m.Size)
			if out, err := exec.Command("bmaptool", "copy", "--bmap", bm, src, dest).CombinedOutput(); err != nil {
				t.Fatalf("bmaptool copy: %v\n%s", err, out)
			}
			checkImage(t, dest, info)
		})
	}
	// A bmap passed to pack gives the same data ranges as the file systems did.
	_, viaBmap := packImage(t, info.Path, dir, "viabmap", "--bmap", bm)
	if fmt.Sprint(viaBmap.Ranges) != fmt.Sprint(m.Ranges) || viaBmap.SHA256 != m.SHA256 {
		t.Error("pack --bmap of our own bmap gave other ranges or another image")
	}
}

func TestInspectFirstBoot(t *testing.T) {
	for _, tc := range []struct {
		kind      testimg.Kind
		firstBoot string
		osRelease string
	}{
		{testimg.BookwormFirstrun, manifest.FirstBootFirstrun, "Raspbian GNU/Linux 12 (bookworm)"},
		{testimg.TrixieCloudInit, manifest.FirstBootCloudInit, "Debian GNU/Linux 13 (trixie)"},
		{testimg.BookwormCustomToml, manifest.FirstBootCustomToml, "Raspbian GNU/Linux 12 (bookworm)"},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			info := image(t, string(tc.kind), testimg.Options{Kind: tc.kind, Seed: 3, RootData: 1 << 20})
			if tc.kind == testimg.BookwormFirstrun {
				info = cleanImage(t)
			}
			dir := t.TempDir()
			packed, m := packImage(t, info.Path, dir, "img")
			if m.FirstBoot != tc.firstBoot || m.OSRelease != tc.osRelease {
				t.Errorf("manifest first_boot %q os_release %q, want %q %q", m.FirstBoot, m.OSRelease, tc.firstBoot, tc.osRelease)
			}
			want := []manifest.Partition{
				{Index: 1, Type: "0c", Start: info.Boot.Offset, Size: info.Boot.Size, FS: "vfat", Label: "bootfs", Bootfs: true},
				{Index: 2, Type: "83", Start: info.Root.Offset, Size: info.Root.Size, FS: "ext4", Label: "rootfs"},
			}
			for _, in := range []string{info.Path, packed, manifest.PathFor(packed)} {
				out := mustCLI(t, "inspect", "--json", in)
				var rep report
				if err := json.Unmarshal([]byte(out), &rep); err != nil {
					t.Fatal(err)
				}
				if rep.FirstBoot != tc.firstBoot || rep.OSRelease != tc.osRelease || rep.Size != m.Size || rep.DataBytes != m.DataBytes {
					t.Errorf("inspect %s: first_boot %q os %q size %d data %d", filepath.Base(in), rep.FirstBoot, rep.OSRelease, rep.Size, rep.DataBytes)
				}
				if len(rep.Partitions) != 2 {
					t.Fatalf("inspect %s: %d partitions", filepath.Base(in), len(rep.Partitions))
				}
				for i, p := range rep.Partitions {
					if p.Used <= 0 || p.Used >= p.Size {
						t.Errorf("partition %d used %d of %d bytes", p.Index, p.Used, p.Size)
					}
					p.Used = 0
					if p != want[i] {
						t.Errorf("inspect %s: partition %+v, want %+v", filepath.Base(in), p, want[i])
					}
				}
			}
			text := mustCLI(t, "inspect", packed)
			for _, s := range []string{"first boot:  " + tc.firstBoot, "kernel_2712.img", "bootfs", "rootfs"} {
				if !strings.Contains(text, s) {
					t.Errorf("inspect output lacks %q:\n%s", s, text)
				}
			}
		})
	}
}

// TestCorruptInputs: each broken input ends in an error that names the problem, and
// the output directory stays empty.
func TestCorruptInputs(t *testing.T) {
	info := image(t, "tiny", testimg.Options{Seed: 5, RootData: -1, RootFree: -1})
	src, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	xz, err := exec.Command("xz", "-T1", "-0", "-c", info.Path).Output()
	if err != nil {
		t.Fatal(err)
	}
	garbage := bytes.Clone(src) // the 0x55AA signature stays, the entries are noise
	copy(garbage[446:510], bytes.Repeat([]byte{0x5a, 0xc3}, 32))
	badFAT := bytes.Clone(src)
	copy(badFAT[info.Boot.Offset+11:], []byte{0x00, 0x00}) // bytes per sector 0
	for _, tc := range []struct {
		name, input, want string
	}{
		{"truncated xz", write("cut.img.xz", xz[:len(xz)/2]), "Unexpected end of input"},
		{"garbage partition table", write("garbage.img", garbage), "garbage partition table"},
		{"partition past the end", write("short.img", src[:info.Root.Offset+info.Root.Size/2]), "partition runs past the end of the image"},
		{"corrupt FAT boot sector", write("badfat.img", badFAT), "partition 1"},
		{"empty", write("empty.img", nil), "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outDir := t.TempDir()
			_, stderr, err := cli(t, "pack", tc.input, "-o", filepath.Join(outDir, "x.img.zst"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("pack: %v, want an error mentioning %q (stderr %q)", err, tc.want, stderr)
			}
			if ents, _ := os.ReadDir(outDir); len(ents) != 0 {
				t.Errorf("pack left %d files behind, e.g. %s", len(ents), ents[0].Name())
			}
			if _, _, err := cli(t, "bootfiles", "-q", tc.input, filepath.Join(outDir, "tftp")); err == nil {
				t.Error("bootfiles accepted it")
			}
			if ents, _ := os.ReadDir(outDir); len(ents) != 0 {
				t.Errorf("bootfiles left %s behind", ents[0].Name())
			}
		})
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 5 {
		t.Errorf("input directory holds %d entries, want the 5 inputs (no temporary files)", len(ents))
	}
}

// TestVerifyPacked: verify accepts a packed image and catches every kind of damage,
// including a file cut exactly at a frame boundary (a clean end for a zstd decoder).
func TestVerifyPacked(t *testing.T) {
	info := image(t, "tiny", testimg.Options{Seed: 5, RootData: -1, RootFree: -1})
	dir := t.TempDir()
	packed, m := packImage(t, info.Path, dir, "tiny")
	if out := mustCLI(t, "verify", "-q", packed); !strings.Contains(out, "OK") {
		t.Fatalf("verify: %q", out)
	}
	good, _ := os.ReadFile(packed)
	manPath := manifest.PathFor(packed)
	goodMan, _ := os.ReadFile(manPath)
	last := m.Chunks[len(m.Chunks)-1]
	mid := m.Chunks[len(m.Chunks)/2]
	for _, tc := range []struct {
		name string
		data []byte
		man  func(*manifest.Manifest)
		want string
	}{
		{"cut at a frame boundary", good[:last.Frame], nil, "truncated"},
		{"cut inside a frame", good[:mid.Frame+mid.FrameSize/2], nil, "truncated"},
		{"flipped byte", flip(good, mid.Frame+mid.FrameSize/2), nil, "chunk"},
		{"trailing garbage", append(bytes.Clone(good), 1, 2, 3), nil, "compressed file is"},
		{"wrong chunk hash", good, func(m *manifest.Manifest) { m.Chunks[1].SHA256 = strings.Repeat("0", 64) }, "chunk 1"},
		{"wrong whole hash", good, func(m *manifest.Manifest) { m.SHA256 = strings.Repeat("0", 64) }, "image sha256"},
		{"shifted frame boundary", good, func(m *manifest.Manifest) {
			m.Chunks[1].FrameSize--
			m.Chunks[2].Frame--
			m.Chunks[2].FrameSize++
		}, "chunk 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			p := filepath.Join(d, "tiny.img.zst")
			os.WriteFile(p, tc.data, 0o644)
			mm, _ := manifest.Decode(bytes.NewReader(goodMan))
			if tc.man != nil {
				tc.man(mm)
			}
			f, _ := os.Create(manifest.PathFor(p))
			mm.Encode(f)
			f.Close()
			_, _, err := cli(t, "verify", "-q", p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verify: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func flip(b []byte, off int64) []byte {
	c := bytes.Clone(b)
	c[off] ^= 0x40
	return c
}

// TestBootfiles copies the Pi 5 netboot files out of raw, packed and xz images and
// compares them with what testimg wrote; other boot partition files stay behind.
func TestBootfiles(t *testing.T) {
	info := image(t, string(testimg.TrixieCloudInit), testimg.Options{Kind: testimg.TrixieCloudInit, Seed: 3, RootData: 1 << 20})
	dir := t.TempDir()
	packed, _ := packImage(t, info.Path, dir, "trixie")
	xzPath := filepath.Join(dir, "trixie.img.xz")
	xz, err := exec.Command("xz", "-T1", "-0", "-c", info.Path).Output()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(xzPath, xz, 0o644)
	var want []string
	for _, f := range info.Files {
		if f.FS == "bootfs" && bootfiles.Wanted(f.Path) {
			want = append(want, f.Path)
		}
	}
	for _, in := range []string{info.Path, packed, xzPath} {
		t.Run(filepath.Base(in), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "tftp", "root")
			mustCLI(t, "bootfiles", "--tmpdir", t.TempDir(), in, out)
			var got []string
			filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(out, p)
					got = append(got, filepath.ToSlash(rel))
				}
				return err
			})
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("copied %q, want %q", got, want)
			}
			for _, p := range got {
				f, _ := info.Lookup("bootfs", p)
				b, _ := os.ReadFile(filepath.Join(out, p))
				if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != f.SHA256 {
					t.Errorf("%s differs from the image's", p)
				}
			}
		})
	}
	for _, p := range []string{"kernel_2712.img", "bcm2712-rpi-5-b.dtb", "overlays/overlay_map.dtb", "config.txt"} {
		if !slices.Contains(want, p) {
			t.Errorf("%s not among the files copied", p)
		}
	}
	for _, p := range []string{"user-data", "meta-data", "network-config"} {
		if slices.Contains(want, p) {
			t.Errorf("first-boot file %s copied", p)
		}
	}
}

// TestPackBlockDevice packs a master card: the image attached read-only to a loop
// device gives the same manifest hashes as the file.
func TestPackBlockDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("losetup needs root (CI runs tests as root)")
	}
	info := image(t, "tiny", testimg.Options{Seed: 5, RootData: -1, RootFree: -1})
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", info.Path).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	dir := t.TempDir()
	_, fromFile := packImage(t, info.Path, dir, "file")
	_, fromDev := packImage(t, dev, dir, "dev")
	if fromDev.SHA256 != fromFile.SHA256 || fromDev.CompressedSHA256 != fromFile.CompressedSHA256 || fmt.Sprint(fromDev.Ranges) != fmt.Sprint(fromFile.Ranges) {
		t.Errorf("packing %s gave sha256 %s, the file %s", dev, fromDev.SHA256, fromFile.SHA256)
	}
}

// TestPackInputChecks: through the command, a file named .xz that is not xz and an
// input without a partition table end in a non-zero exit whose message names the file;
// --raw packs the table-less input.
func TestPackInputChecks(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "master.img.xz")
	if err := os.WriteFile(fake, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(dir, "bare.img")
	if err := os.WriteFile(bare, bytes.Repeat([]byte("opaque data, no table\n"), 50000), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ input, want string }{
		{fake, "named .xz but its first bytes are not a known compression"},
		{bare, "no partition table"},
	} {
		out := filepath.Join(t.TempDir(), "x.img.zst")
		_, _, err := cli(t, "pack", "-q", tc.input, "-o", out)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.input) {
			t.Errorf("pack %s: %v, want an error naming the file and %q", tc.input, err, tc.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("pack %s wrote %s", tc.input, out)
		}
	}
	out := filepath.Join(t.TempDir(), "bare.img.zst")
	mustCLI(t, "pack", "-q", "--raw", bare, "-o", out)
	if _, _, err := cli(t, "verify", out); err != nil {
		t.Errorf("verify the --raw pack: %v", err)
	}
}
