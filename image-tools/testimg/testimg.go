// Package testimg builds Raspberry Pi OS-shaped disk images for tests, benchmarks and
// the demo, with the real tools: sfdisk (MBR), mkfs.vfat + mtools (FAT32 bootfs) and
// mkfs.ext4 -d (ext4 rootfs), as pi-gen does.
//
// Layout (pi5-boot.md §5): an MBR with the disk identifier derived from Options.Seed;
// partition 1, type 0x0c, FAT32 labelled "bootfs", starting at 8 MiB; partition 2,
// type 0x83, ext4 labelled "rootfs", starting and ending on 8 MiB boundaries. The image
// ends where partition 2 ends.
//
// Every file written is listed in Info.Files with its SHA256, so a test can compare a
// flashed card or a repacked image against what was built.
package testimg

import (
	"bufio"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Kind selects the Raspberry Pi OS flavour and so the first-boot mechanism an image
// carries (the detection rules are in the team brief's cross-team conventions).
type Kind string

const (
	// BookwormFirstrun is Raspberry Pi OS 12: rootfs has
	// usr/lib/raspberrypi-sys-mods/imager_custom; Imager would write firstrun.sh.
	BookwormFirstrun Kind = "bookworm-firstrun"
	// TrixieCloudInit is Raspberry Pi OS 13: bootfs has the default cloud-init
	// user-data, meta-data and network-config.
	TrixieCloudInit Kind = "trixie-cloudinit"
	// BookwormCustomToml is BookwormFirstrun plus a template custom.toml in bootfs.
	BookwormCustomToml Kind = "bookworm-customtoml"
)

// Kinds lists every Kind, for table tests.
var Kinds = []Kind{BookwormFirstrun, TrixieCloudInit, BookwormCustomToml}

// Sizes of the fixed layout.
const (
	MiB       = 1 << 20
	BootStart = 8 * MiB // first byte of partition 1
	Align     = 8 * MiB // partition 2 starts and ends on multiples of this
	// MinBootSize is the smallest FAT32 bootfs mkfs.vfat accepts with 512-byte
	// clusters (65525 clusters plus FATs and reserved sectors).
	MinBootSize = 33 * MiB
)

// Options describe the image to build. The zero value builds the default: a
// bookworm-firstrun image of about 136 MiB.
type Options struct {
	// Kind defaults to BookwormFirstrun.
	Kind Kind
	// BootSize is the FAT32 bootfs size in bytes, rounded up to 1 MiB; default 64 MiB,
	// at least MinBootSize.
	BootSize int64
	// RootData is the number of bytes of generated file data put into rootfs (half
	// compressible text, half random, in files of 100 B to 5 MiB, plus a directory of
	// 200 small files). 0 means the default of 16 MiB; a negative value means none
	// (the fixed files are always there).
	RootData int64
	// RootFree is the approximate free space left in rootfs in bytes; 0 means the
	// default of 32 MiB, negative means as little as mkfs allows.
	RootFree int64
	// Used makes a "used card": the whole image is filled with random bytes before
	// the file systems are made, and both file systems hold data of deleted files in
	// their free space (FAT: removed with mdel; ext4: removed with debugfs rm; their
	// contents start with DeletedMarker), as a master card that has been in use would.
	Used bool
	// Seed makes the content deterministic: the same Options give the same files,
	// the same disk identifier and the same file system serial numbers.
	Seed int64
}

// DeletedMarker starts every line of the deleted files' data in a Used image.
const DeletedMarker = "rpi-deploy testimg deleted file data"

// Info describes a built image.
type Info struct {
	Path   string
	Kind   Kind
	Size   int64  // bytes of the image file
	DiskID uint32 // MBR disk identifier; PARTUUIDs are "%08x-01" and "%08x-02"
	Boot   Partition
	Root   Partition
	// Files lists every regular file and symlink written into either file system,
	// sorted by FS then Path. Deleted files of a Used image are not listed.
	Files []File
	// RootDataBytes is the sum of the generated data files' sizes.
	RootDataBytes int64
}

// Partition is one MBR entry of the built image.
type Partition struct {
	Index  int    // 1-based
	Type   byte   // MBR type: 0x0c (FAT32 LBA) or 0x83 (Linux)
	Offset int64  // bytes from the start of the image
	Size   int64  // bytes
	Label  string // "bootfs" or "rootfs"
}

// File is one file written into the image.
type File struct {
	FS   string // "bootfs" or "rootfs"
	Path string // slash-separated, relative to the file system root: "cmdline.txt", "etc/hostname"
	// Link is the target of a symlink (rootfs only), "" for a regular file. A symlink
	// has no Size or SHA256; its target is listed as its own File.
	Link   string
	Size   int64
	SHA256 string // hex SHA256 of the contents
	Mode   os.FileMode
}

// PartUUID returns the PARTUUID of partition index (1-based) as Linux names it.
func (in *Info) PartUUID(index int) string { return fmt.Sprintf("%08x-%02d", in.DiskID, index) }

// Lookup returns the file at p ("cmdline.txt", "etc/hostname") in fsName.
func (in *Info) Lookup(fsName, p string) (File, bool) {
	for _, f := range in.Files {
		if f.FS == fsName && f.Path == p {
			return f, true
		}
	}
	return File{}, false
}

// ErrOptions is wrapped by Build for options it cannot honour.
var ErrOptions = errors.New("testimg: bad options")

func (o *Options) fill() error {
	if o.Kind == "" {
		o.Kind = BookwormFirstrun
	}
	switch o.Kind {
	case BookwormFirstrun, TrixieCloudInit, BookwormCustomToml:
	default:
		return fmt.Errorf("%w: kind %q (want one of %q)", ErrOptions, o.Kind, Kinds)
	}
	if o.BootSize == 0 {
		o.BootSize = 64 * MiB
	}
	o.BootSize = (o.BootSize + MiB - 1) / MiB * MiB
	if o.BootSize < MinBootSize {
		return fmt.Errorf("%w: boot size %d bytes is below the FAT32 minimum of %d", ErrOptions, o.BootSize, int64(MinBootSize))
	}
	switch {
	case o.RootData == 0:
		o.RootData = 16 * MiB
	case o.RootData < 0:
		o.RootData = 0
	}
	switch {
	case o.RootFree == 0:
		o.RootFree = 32 * MiB
	case o.RootFree < 0:
		o.RootFree = 0
	}
	return nil
}

// Build writes a new image to path (replacing any file there) and describes it. On
// error the partial file is removed. It needs the tools RequireTools checks.
func Build(path string, opt Options) (*Info, error) {
	return BuildContext(context.Background(), path, opt)
}

// BuildContext is Build with a context that stops the outside tools.
func BuildContext(ctx context.Context, path string, opt Options) (info *Info, err error) {
	if err := opt.fill(); err != nil {
		return nil, err
	}
	if err := RequireTools(); err != nil {
		return nil, err
	}
	need := opt.RootData + 8*MiB // generated data, fixed files, a used card's deleted files
	if opt.Used {
		need += min(max(opt.RootFree/4, MiB), 64*MiB) + 2*min(opt.BootSize/8, 4*MiB)
	}
	stage, err := os.MkdirTemp(stagingDir(need, filepath.Dir(path)), ".testimg-*")
	if err != nil {
		return nil, fmt.Errorf("testimg: staging directory: %w", err)
	}
	defer os.RemoveAll(stage)
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()

	b := &builder{opt: opt, stage: stage, img: path}
	b.seed()
	info = &Info{Path: path, Kind: opt.Kind, DiskID: b.diskID}
	if err := b.stageBoot(); err != nil {
		return nil, err
	}
	if err := b.stageRoot(); err != nil {
		return nil, err
	}

	info.Boot = Partition{Index: 1, Type: 0x0c, Offset: BootStart, Size: opt.BootSize, Label: "bootfs"}
	rootStart := alignUp(BootStart+opt.BootSize, Align)
	info.Root = Partition{Index: 2, Type: 0x83, Offset: rootStart, Size: b.rootSize(), Label: "rootfs"}
	info.Size = info.Root.Offset + info.Root.Size

	if err := b.createImage(info.Size); err != nil {
		return nil, err
	}
	table := fmt.Sprintf("label: dos\nlabel-id: 0x%08x\nunit: sectors\nsector-size: 512\n\n"+
		"start=%d, size=%d, type=c\nstart=%d, size=%d, type=83\n",
		b.diskID, info.Boot.Offset/512, info.Boot.Size/512, info.Root.Offset/512, info.Root.Size/512)
	if _, err := run(ctx, []byte(table), "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", "--wipe", "never", path); err != nil {
		return nil, fmt.Errorf("testimg: partition table: %w", err)
	}
	if err := b.makeBoot(ctx, info.Boot); err != nil {
		return nil, err
	}
	if err := b.makeRoot(ctx, info.Root); err != nil {
		return nil, err
	}
	info.Files = b.files
	sort.Slice(info.Files, func(i, j int) bool {
		if info.Files[i].FS != info.Files[j].FS {
			return info.Files[i].FS < info.Files[j].FS
		}
		return info.Files[i].Path < info.Files[j].Path
	})
	info.RootDataBytes = b.dataBytes
	return info, nil
}

type builder struct {
	opt       Options
	stage     string // staging directory: boot/, root/, junk files
	img       string
	rng       *rand.Rand
	stream    cipher.Stream // AES-CTR: fast deterministic random bytes (assembly, so cheap under -race too)
	diskID    uint32
	volID     uint32
	uuid      string
	files     []File
	dataBytes int64
	rootBytes int64 // bytes the staged rootfs occupies in 4 KiB blocks
	textPool  []byte
	dirs      map[string]bool // made by mkdirs
	junkBoot  []string
	junkRoot  []string
}

// mtime is the fixed modification time of every staged file.
var mtime = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func (b *builder) seed() {
	sum := sha256.Sum256([]byte("rpi-deploy testimg " + strconv.FormatInt(b.opt.Seed, 10)))
	block, err := aes.NewCipher(sum[:])
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	b.stream = cipher.NewCTR(block, make([]byte, aes.BlockSize))
	b.rng = rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum[0:]), binary.LittleEndian.Uint64(sum[8:])))
	b.diskID = binary.BigEndian.Uint32(sum[16:]) | 1 // never zero
	b.volID = binary.BigEndian.Uint32(sum[20:])
	u := sum[12:28]
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u)
	b.uuid = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// writeFile stages data at stage/top/p and records it.
func (b *builder) writeFile(fsName, top, p string, data []byte, mode os.FileMode) error {
	full := filepath.Join(b.stage, top, filepath.FromSlash(p))
	if err := b.mkdirs(filepath.Dir(full)); err != nil {
		return err
	}
	if err := os.WriteFile(full, data, mode); err != nil {
		return fmt.Errorf("testimg: stage %s: %w", p, err)
	}
	if mode != 0o644 { // WriteFile's mode is subject to the umask
		if err := os.Chmod(full, mode); err != nil {
			return err
		}
	}
	if fsName == "bootfs" { // mcopy -m keeps it: the same timestamps every build
		if err := os.Chtimes(full, mtime, mtime); err != nil {
			return err
		}
	}
	sum := sha256.Sum256(data)
	b.files = append(b.files, File{FS: fsName, Path: p, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Mode: mode})
	if fsName == "rootfs" {
		b.rootBytes += alignUp(int64(len(data)), 4096)
	}
	return nil
}

func (b *builder) symlink(p, target string) error {
	full := filepath.Join(b.stage, "root", filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	if err := os.Symlink(target, full); err != nil {
		return err
	}
	b.files = append(b.files, File{FS: "rootfs", Path: p, Link: target, Mode: os.ModeSymlink | 0o777})
	return nil
}

// mkdirs is os.MkdirAll that remembers what it made: staging thousands of files
// costs a stat fewer per file.
func (b *builder) mkdirs(dir string) error {
	if b.dirs[dir] {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if b.dirs == nil {
		b.dirs = map[string]bool{}
	}
	b.dirs[dir] = true
	return nil
}

// random returns n deterministic random bytes.
func (b *builder) random(n int) []byte {
	buf := make([]byte, n)
	b.stream.XORKeyStream(buf, buf)
	return buf
}

func (b *builder) stageBoot() error {
	o := b.opt
	files := []bootFile{
		{"config.txt", []byte(configTxt)},
		{"cmdline.txt", []byte(cmdline(o.Kind, b.diskID))},
		{"kernel_2712.img", b.random(3*MiB + 12345)},
		{"initramfs_2712", b.random(MiB + 777)},
		{"bcm2712-rpi-5-b.dtb", b.random(78 * 1024)},
		{"bcm2712d0-rpi-5-b.dtb", b.random(77*1024 + 300)},
		{"overlays/overlay_map.dtb", b.random(5 * 1024)},
		{"overlays/README", []byte(overlaysReadme)},
		{"overlays/vc4-kms-v3d-pi5.dtbo", b.random(3900)},
	}
	switch o.Kind {
	case TrixieCloudInit:
		files = append(files,
			bootFile{"user-data", []byte(cloudUserData)},
			bootFile{"meta-data", []byte(cloudMetaData)},
			bootFile{"network-config", []byte(cloudNetworkConfig)})
	case BookwormCustomToml:
		files = append(files, bootFile{"custom.toml", []byte(customToml)})
	}
	for _, f := range files {
		if err := b.writeFile("bootfs", "boot", f.name, f.data, 0o644); err != nil {
			return err
		}
	}
	if o.Used {
		// Files that are copied in and then deleted, leaving their data in free clusters.
		n := int(min(o.BootSize/8, 4*MiB))
		for i := range 2 {
			name := fmt.Sprintf("oldkern%d.img", i)
			full := filepath.Join(b.stage, "junkboot", name)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(full, deletedData(n), 0o644); err != nil {
				return err
			}
			b.junkBoot = append(b.junkBoot, full)
		}
	}
	return nil
}

// deletedData is the recognisable content of files a Used image deletes.
func deletedData(n int) []byte {
	line := []byte(DeletedMarker + "\n")
	buf := make([]byte, 0, n+len(line))
	for len(buf) < n {
		buf = append(buf, line...)
	}
	return buf[:n]
}

func (b *builder) stageRoot() error {
	o := b.opt
	put := func(p, s string, mode os.FileMode) error { return b.writeFile("rootfs", "root", p, []byte(s), mode) }
	if err := put("usr/lib/os-release", osRelease(o.Kind), 0o644); err != nil {
		return err
	}
	if err := b.symlink("etc/os-release", "../usr/lib/os-release"); err != nil {
		return err
	}
	for _, f := range []struct{ p, s string }{
		{"etc/hostname", "raspberrypi\n"},
		{"etc/hosts", etcHosts},
		{"etc/fstab", fstab(b.diskID)},
		{"usr/share/zoneinfo/Etc/UTC", "TZif2\x00\x00\x00 UTC zone (test copy)\n"},
	} {
		if err := put(f.p, f.s, 0o644); err != nil {
			return err
		}
	}
	// An absolute symlink, and one too long for the inode (a "slow" symlink).
	if err := b.symlink("etc/localtime", "/usr/share/zoneinfo/Etc/UTC"); err != nil {
		return err
	}
	long := "/usr/lib/systemd/system/rpi-deploy-test-service-with-a-rather-long-unit-name-for-slow-symlinks.service"
	if err := put(strings.TrimPrefix(long, "/"), "[Unit]\nDescription=test unit\n", 0o644); err != nil {
		return err
	}
	if err := b.symlink("etc/systemd/system/multi-user.target.wants/rpi-deploy-test.service", long); err != nil {
		return err
	}
	switch o.Kind {
	case TrixieCloudInit:
		if err := put("etc/cloud/cloud.cfg", cloudCfg, 0o644); err != nil {
			return err
		}
	default:
		if err := put("usr/lib/raspberrypi-sys-mods/imager_custom", imagerCustom, 0o755); err != nil {
			return err
		}
		if err := put("usr/lib/raspberrypi-sys-mods/firstboot", firstboot, 0o755); err != nil {
			return err
		}
	}
	if o.RootData > 0 {
		// A directory with many entries: several directory blocks.
		for i := range 200 {
			p := fmt.Sprintf("usr/share/rpi-testdata/many/entry-with-a-longish-name-%03d.conf", i)
			if err := put(p, fmt.Sprintf("entry %d seed %d\n", i, o.Seed), 0o644); err != nil {
				return err
			}
		}
		if err := b.stageData(); err != nil {
			return err
		}
	}
	if o.Used {
		n := int(min(max(o.RootFree/4, MiB), 64*MiB))
		for i := range 3 {
			p := fmt.Sprintf("var/cache/old/deleted-%d.bin", i)
			full := filepath.Join(b.stage, "root", filepath.FromSlash(p))
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(full, deletedData(n/3), 0o644); err != nil {
				return err
			}
			b.junkRoot = append(b.junkRoot, "/"+p)
			b.rootBytes += alignUp(int64(n/3), 4096)
		}
	}
	return nil
}

// dataSizes is the cycle of generated file sizes.
var dataSizes = []int64{3000, 40_000, 700_000, 5 * MiB, 100, 12_000, 2*MiB + 500_000, 150_000, 9000, MiB}

// stageData writes RootData bytes of generated files, streaming each to disk while
// hashing it, so gigabytes need little memory.
func (b *builder) stageData() error {
	left := b.opt.RootData
	buf := make([]byte, 0, 256*1024)
	for i := 0; left > 0; i++ {
		size := min(dataSizes[i%len(dataSizes)], left)
		left -= size
		ext := "txt"
		if i%2 == 1 {
			ext = "bin"
		}
		p := fmt.Sprintf("usr/share/rpi-testdata/d%03d/file-%05d.%s", i/50, i, ext)
		full := filepath.Join(b.stage, "root", filepath.FromSlash(p))
		if err := b.mkdirs(filepath.Dir(full)); err != nil {
			return err
		}
		f, err := os.Create(full)
		if err != nil {
			return err
		}
		h := sha256.New()
		w := bufio.NewWriterSize(io.MultiWriter(f, h), 256*1024)
		for rem := size; rem > 0; {
			n := min(rem, int64(cap(buf)))
			if ext == "txt" {
				buf = b.text(buf[:0], int(n))
			} else {
				buf = buf[:n]
				b.stream.XORKeyStream(buf, buf)
			}
			w.Write(buf)
			rem -= n
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return fmt.Errorf("testimg: stage %s: %w", p, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		b.files = append(b.files, File{FS: "rootfs", Path: p, Size: size, SHA256: hex.EncodeToString(h.Sum(nil)), Mode: 0o644})
		b.dataBytes += size
		b.rootBytes += alignUp(size, 4096)
	}
	return nil
}

// text appends n bytes of word-salad text: pieces of up to 4 KiB taken at random
// offsets from a 256 KiB pool generated once, so gigabytes cost little.
func (b *builder) text(buf []byte, n int) []byte {
	if b.textPool == nil {
		b.textPool = appendText(nil, b.rng, 256<<10)
	}
	for n > 0 {
		k := min(n, 4096)
		off := b.rng.IntN(len(b.textPool) - 4096)
		buf = append(buf, b.textPool[off:off+k]...)
		n -= k
	}
	return buf
}

// rootSize estimates an ext4 size that holds the staged files with RootFree bytes
// to spare: file blocks, directories, inode tables (256 B per 16 KiB), the journal
// and group metadata.
func (b *builder) rootSize() int64 {
	want := b.rootBytes + b.opt.RootFree + 4*MiB // directories, bitmaps, descriptors
	var journal int64
	switch blocks := want / 4096; {
	case blocks < 32768:
		journal = 4 * MiB
	case blocks < 256*1024:
		journal = 16 * MiB
	case blocks < 512*1024:
		journal = 32 * MiB
	case blocks < 4096*1024:
		journal = 64 * MiB
	default:
		journal = 256 * MiB
	}
	want += journal
	want = want * 1000 / 980 // inode tables: 1/64 of the size
	return alignUp(want, Align)
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

func (b *builder) createImage(size int64) (err error) {
	f, err := os.OpenFile(b.img, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("testimg: create %q: %w", b.img, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if !b.opt.Used {
		return f.Truncate(size)
	}
	buf := make([]byte, 4*MiB)
	w := io.Writer(f)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		clear(buf[:n])
		b.stream.XORKeyStream(buf[:n], buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			return fmt.Errorf("testimg: fill %q: %w", b.img, err)
		}
		left -= n
	}
	return nil
}

func (b *builder) makeBoot(ctx context.Context, p Partition) error {
	// The largest cluster (up to 2 KiB, as pi-gen's -s 4) that still gives FAT32
	// its minimum of 65525 clusters.
	spc := 4
	for spc > 1 && p.Size/int64(512*spc) < 66000 {
		spc /= 2
	}
	if _, err := run(ctx, nil, "mkfs.vfat", "-F", "32", "-n", "bootfs", "-i", fmt.Sprintf("%08x", b.volID),
		"-S", "512", "-s", strconv.Itoa(spc), "--offset="+strconv.FormatInt(p.Offset/512, 10),
		b.img, strconv.FormatInt(p.Size/1024, 10)); err != nil {
		return fmt.Errorf("testimg: make bootfs: %w", err)
	}
	target := fmt.Sprintf("%s@@%d", b.img, p.Offset)
	entries, err := os.ReadDir(filepath.Join(b.stage, "boot"))
	if err != nil {
		return err
	}
	args := []string{"-s", "-m", "-Q", "-i", target}
	for _, e := range entries {
		args = append(args, filepath.Join(b.stage, "boot", e.Name()))
	}
	if _, err := run(ctx, nil, "mcopy", append(args, "::/")...); err != nil {
		return fmt.Errorf("testimg: copy boot files: %w", err)
	}
	if len(b.junkBoot) > 0 {
		args := append([]string{"-m", "-Q", "-i", target}, b.junkBoot...)
		if _, err := run(ctx, nil, "mcopy", append(args, "::/")...); err != nil {
			return fmt.Errorf("testimg: copy deleted boot files: %w", err)
		}
		del := []string{"-i", target}
		for _, j := range b.junkBoot {
			del = append(del, "::/"+filepath.Base(j))
		}
		if _, err := run(ctx, nil, "mdel", del...); err != nil {
			return fmt.Errorf("testimg: delete boot files: %w", err)
		}
	}
	return nil
}

func (b *builder) makeRoot(ctx context.Context, p Partition) error {
	args := []string{"-q", "-F", "-t", "ext4", "-L", "rootfs", "-U", b.uuid, "-b", "4096", "-i", "16384",
		"-O", "^64bit,^huge_file",
		"-E", fmt.Sprintf("offset=%d,nodiscard,root_owner=0:0,hash_seed=%s", p.Offset, b.uuid),
		"-d", filepath.Join(b.stage, "root"),
		b.img, strconv.FormatInt(p.Size/4096, 10)}
	if _, err := run(ctx, nil, "mkfs.ext4", args...); err != nil {
		return fmt.Errorf("testimg: make rootfs: %w", err)
	}
	if len(b.junkRoot) > 0 {
		var cmds strings.Builder
		for _, j := range b.junkRoot {
			fmt.Fprintf(&cmds, "rm %s\n", j)
		}
		cmdFile := filepath.Join(b.stage, "debugfs.cmd")
		if err := os.WriteFile(cmdFile, []byte(cmds.String()), 0o644); err != nil {
			return err
		}
		dev := fmt.Sprintf("%s?offset=%d", b.img, p.Offset)
		if _, err := run(ctx, nil, "debugfs", "-w", "-f", cmdFile, dev); err != nil {
			return fmt.Errorf("testimg: delete root files: %w", err)
		}
	}
	return nil
}

type bootFile struct {
	name string
	data []byte
}
