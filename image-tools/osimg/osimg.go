// Package osimg builds Raspberry Pi OS-shaped master images that really boot: a Debian
// bookworm arm64 root file system made by mmdebstrap from real packages (systemd, udev,
// openssh-server, sudo, kmod; cloud-init in the cloud-init flavour), the modules of
// Debian's arm64 kernel (initramfs/fetch-kernel.sh), an MBR with a FAT32 bootfs
// (config.txt, cmdline.txt root=PARTUUID=<id>-02) and an ext4 rootfs, as pi-gen lays
// them out. Beside each image it makes the small initrd QEMU boots it with (rootinit:
// virtio and ext4 modules, root=PARTUUID=, switch_root), since QEMU's virt machine
// cannot boot the card's kernel_2712.img the way a Pi 5 does.
//
// Building takes minutes (mmdebstrap runs the packages' scripts under qemu-user), so
// images are cached outside the clone, under Options.CacheDir, in a directory named
// for the flavour and a hash of every input: the package list, the mmdebstrap
// arguments, assemble.sh, rootinit's source and the kernel package. A build goes to a
// temporary directory renamed into place when complete, under a lock that makes a
// second concurrent caller wait and then use the first one's result. docs/osimg.md.
package osimg

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/initenv"
	"github.com/rpi-deploy/rpi-deploy/initramfs/kmod"
	"github.com/rpi-deploy/rpi-deploy/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// Flavours: the first-boot mechanism the image carries (image-tools/manifest names).
const (
	Firstrun  = "firstrun"   // Bookworm: firstrun.sh through systemd.run= (Raspberry Pi Imager)
	CloudInit = "cloud-init" // Debian's cloud-init, NoCloud seed on the boot partition
)

// Suite is the Debian release the images are built from.
const Suite = "bookworm"

// Packages are installed in both flavours (on top of mmdebstrap's minbase variant).
var Packages = []string{"systemd", "systemd-sysv", "udev", "openssh-server", "sudo",
	"kmod", "iproute2", "dosfstools", "e2fsprogs", "ifupdown", "isc-dhcp-client", "netbase"}

// CloudInitPackages are added for the cloud-init flavour.
var CloudInitPackages = []string{"cloud-init"}

// RootModules are the kernel modules copied into the root file system (with their
// dependencies): the QEMU machine's disk, network, RNG and console, ext4 and the FAT
// of /boot/firmware.
var RootModules = []string{"virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "virtio-rng",
	"ext4", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "crc32c_generic"}

// InitrdModules are what rootinit loads to mount the root file system.
var InitrdModules = []string{"virtio_pci", "virtio_blk", "ext4", "crc32c_generic"}

//go:embed assemble.sh
var assembleScript []byte

//go:embed rootinit/main.go
var rootinitSource []byte

// Options say what to build and where.
type Options struct {
	Flavour string // Firstrun or CloudInit
	// KernelDir is what initramfs/fetch-kernel.sh made: vmlinuz, modules/, package.
	KernelDir string
	// CacheDir holds the built images; "" means $XDG_CACHE_HOME/rpi-deploy/osimg
	// (~/.cache/rpi-deploy/osimg).
	CacheDir string
	Log      io.Writer // build output; nil discards it
}

// Image is a built (or cached) image.
type Image struct {
	Flavour string
	Dir     string // the cache entry
	Path    string // master.img: the raw card image
	Initrd  string // initrd.img: rootinit + InitrdModules, gzip newc cpio
	Kernel  string // vmlinuz: Debian's arm64 kernel, as QEMU -kernel takes it
	DiskID  string // the MBR signature, 8 hex digits
	Info    BuildInfo
	Cached  bool // found in the cache, not built by this call
}

// BuildInfo is recorded in the cache entry (info.json).
type BuildInfo struct {
	Key           string  `json:"key"`
	KernelPackage string  `json:"kernel_package"`
	Seconds       float64 `json:"seconds"`        // the whole build
	RootfsSeconds float64 `json:"rootfs_seconds"` // mmdebstrap alone
	Built         string  `json:"built"`          // RFC 3339
}

// ErrFlavour is returned for an unknown flavour.
var ErrFlavour = errors.New("unknown osimg flavour")

// DefaultCacheDir is where images are cached when Options.CacheDir is empty.
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "rpi-deploy", "osimg"), nil
}

func (o Options) packages() ([]string, error) {
	switch o.Flavour {
	case Firstrun:
		return Packages, nil
	case CloudInit:
		return append(append([]string{}, Packages...), CloudInitPackages...), nil
	}
	return nil, fmt.Errorf("%w: %q (want %q or %q)", ErrFlavour, o.Flavour, Firstrun, CloudInit)
}

// HostSources is the machine's own Debian apt source (deb822); when it exists
// mmdebstrap uses it as the mirror, else its default (deb.debian.org with updates and
// security).
var HostSources = "/etc/apt/sources.list.d/debian.sources"

func mmdebstrapArgs(pkgs []string, out string) []string {
	args := []string{"--arch=arm64", "--variant=minbase", "--include=" + strings.Join(pkgs, ","), Suite, out}
	if _, err := os.Stat(HostSources); err == nil {
		args = append(args, HostSources)
	}
	return args
}

// ensureBinfmt makes sure the kernel runs arm64 binaries through qemu-user
// (qemu-user-static, binfmt-support): binfmt_misc mounted, the qemu-aarch64 entry on.
func ensureBinfmt(ctx context.Context, log io.Writer) error {
	const dir = "/proc/sys/fs/binfmt_misc"
	if _, err := os.Stat(dir + "/register"); err != nil {
		if err := unix.Mount("binfmt_misc", dir, "binfmt_misc", 0, ""); err != nil {
			return fmt.Errorf("mount binfmt_misc: %w", err)
		}
	}
	if b, err := os.ReadFile(dir + "/qemu-aarch64"); err == nil && strings.HasPrefix(string(b), "enabled") {
		return nil
	}
	cmd := exec.CommandContext(ctx, "update-binfmts", "--enable", "qemu-aarch64")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("update-binfmts --enable qemu-aarch64 (qemu-user-static, binfmt-support): %w", err)
	}
	return nil
}

// Key returns the cache key of the image o describes (16 hex digits) and the kernel
// package line it was made with.
func (o Options) Key() (string, []byte, error) {
	pkgs, err := o.packages()
	if err != nil {
		return "", nil, err
	}
	kpkg, err := os.ReadFile(filepath.Join(o.KernelDir, "package"))
	if err != nil {
		return "", nil, fmt.Errorf("kernel (run initramfs/fetch-kernel.sh): %w", err)
	}
	if len(strings.Fields(string(kpkg))) != 3 {
		return "", nil, fmt.Errorf("kernel package file %q: want package, version, kernel version", kpkg)
	}
	parts := append(rootfsInputs(o.Flavour, pkgs), assembleScript, rootinitSource, kpkg,
		[]byte(strings.Join(RootModules, ",")), []byte(strings.Join(InitrdModules, ",")))
	return hashKey(parts...), kpkg, nil
}

// rootfsInputs are what the mmdebstrap root file system depends on: the flavour, the
// mmdebstrap arguments (package list) and the host's apt sources.
func rootfsInputs(flavour string, pkgs []string) [][]byte {
	sources, _ := os.ReadFile(HostSources)
	return [][]byte{[]byte(flavour), []byte(strings.Join(mmdebstrapArgs(pkgs, ""), " ")), sources}
}

// hashKey is a cache key: the first 16 hex digits of a SHA-256 over the parts, each
// prefixed with its length.
func hashKey(parts ...[]byte) string {
	h := sha256.New()
	for _, part := range parts {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// lockCache takes the flavour's lock in the cache directory (flock, so that parallel
// test processes build an image once) and returns its release.
func lockCache(dir, flavour string) (unlock func(), err error) {
	lock, err := os.OpenFile(filepath.Join(dir, flavour+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	return func() {
		unix.Flock(int(lock.Fd()), unix.LOCK_UN)
		lock.Close()
	}, nil
}

// assemble turns the root file system tar into the image in dir tmp: the kernel's
// modules staged into the root and into an initrd, assembleScript run over them, and
// the kernel copied beside (master.img, initrd.img, vmlinuz); the staging goes again.
func assemble(ctx context.Context, o Options, tar, kver, diskID, tmp string, log io.Writer) error {
	tree, err := kmod.Open(filepath.Join(o.KernelDir, "modules"))
	if err != nil {
		return err
	}
	modules := filepath.Join(tmp, "modules")
	if err := stageRootModules(tree, filepath.Join(modules, "lib", "modules", kver)); err != nil {
		return err
	}
	initrd := filepath.Join(tmp, "initrd")
	if err := stageInitrd(ctx, tree, initrd); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "bash", "-c", string(assembleScript))
	cmd.Env = append(os.Environ(), "ROOTFS_TAR="+tar, "FLAVOUR="+o.Flavour, "KVER="+kver,
		"MODULES="+modules, "INITRD="+initrd, "DISK_ID="+diskID, "OUT="+tmp)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("assemble %s: %w", o.Flavour, err)
	}
	if err := atomicfile.Copy(filepath.Join(o.KernelDir, "vmlinuz"), filepath.Join(tmp, "vmlinuz")); err != nil {
		return err
	}
	for _, d := range []string{modules, initrd} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	return nil
}

// Build returns the image of o.Flavour from the cache, building it first when the
// cache has no entry for these inputs. Building needs root, mmdebstrap, qemu-user
// binfmt for arm64 and the machine's Debian mirror.
func Build(ctx context.Context, o Options) (*Image, error) {
	pkgs, err := o.packages()
	if err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	if o.CacheDir == "" {
		if o.CacheDir, err = DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	key, kpkg, err := o.Key()
	if err != nil {
		return nil, err
	}
	kver := strings.Fields(string(kpkg))[2]
	img := &Image{Flavour: o.Flavour, Dir: filepath.Join(o.CacheDir, o.Flavour+"-"+key), DiskID: key[:8]}
	img.Path, img.Initrd, img.Kernel = filepath.Join(img.Dir, "master.img"),
		filepath.Join(img.Dir, "initrd.img"), filepath.Join(img.Dir, "vmlinuz")

	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockCache(o.CacheDir, o.Flavour)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if b, err := os.ReadFile(filepath.Join(img.Dir, "info.json")); err == nil {
		if err := json.Unmarshal(b, &img.Info); err != nil {
			return nil, fmt.Errorf("cached %s: %w", img.Dir, err)
		}
		img.Cached = true
		fmt.Fprintf(log, "osimg: %s cached in %s\n", o.Flavour, img.Dir)
		return img, nil
	}

	start := time.Now()
	tmp, err := os.MkdirTemp(o.CacheDir, "."+o.Flavour+"-"+key+".tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(log, "osimg: building %s (key %s) in %s\n", o.Flavour, key, tmp)

	tar, err := rootfs(ctx, o, pkgs, log)
	if err != nil {
		return nil, err
	}
	rootfsTook := time.Since(start)
	fmt.Fprintf(log, "osimg: %s root file system in %.0f s\n", o.Flavour, rootfsTook.Seconds())

	if err := assemble(ctx, o, tar, kver, img.DiskID, tmp, log); err != nil {
		return nil, err
	}
	img.Info = BuildInfo{Key: key, KernelPackage: strings.TrimSpace(string(kpkg)),
		Seconds: time.Since(start).Seconds(), RootfsSeconds: rootfsTook.Seconds(),
		Built: time.Now().UTC().Format(time.RFC3339)}
	b, err := json.MarshalIndent(img.Info, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "info.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, img.Dir); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "osimg: %s built in %.0f s (root file system %.0f s): %s\n",
		o.Flavour, img.Info.Seconds, img.Info.RootfsSeconds, img.Dir)
	return img, nil
}

// rootfs returns the path of the flavour's mmdebstrap tarball in the cache, making it
// first when there is none for these packages, mmdebstrap arguments and apt sources.
// It is the costly part of a build (the packages' scripts run under qemu-user), so it
// is kept on its own: a change of assemble.sh, rootinit or the kernel reassembles the
// image from it in seconds. The caller holds the flavour's lock.
func rootfs(ctx context.Context, o Options, pkgs []string, log io.Writer) (string, error) {
	tar := filepath.Join(o.CacheDir, "rootfs-"+o.Flavour+"-"+hashKey(rootfsInputs(o.Flavour, pkgs)...)+".tar")
	if _, err := os.Stat(tar); err == nil {
		fmt.Fprintf(log, "osimg: %s root file system cached in %s\n", o.Flavour, tar)
		return tar, nil
	}
	if err := ensureBinfmt(ctx, log); err != nil {
		return "", err
	}
	part := strings.TrimSuffix(tar, ".tar") + ".part.tar" // mmdebstrap picks the format by the name's end
	cmd := exec.CommandContext(ctx, "mmdebstrap", mmdebstrapArgs(pkgs, part)...)
	cmd.Stdout, cmd.Stderr = log, log
	// Cancelled: mmdebstrap unmounts /proc, /sys and /dev of its chroot and removes it
	// on SIGTERM; SIGKILL would leave them mounted.
	cmd.Cancel = func() error { return cmd.Process.Signal(unix.SIGTERM) }
	cmd.WaitDelay = 2 * time.Minute
	if err := cmd.Run(); err != nil {
		os.Remove(part)
		return "", fmt.Errorf("mmdebstrap %s: %w", o.Flavour, err)
	}
	return tar, os.Rename(part, tar)
}

// stageRootModules copies RootModules and their dependencies (same relative paths)
// and the kernel's module lists into dir (lib/modules/<version> of the image).
func stageRootModules(tree *kmod.Tree, dir string) error {
	var names []string
	for _, m := range RootModules {
		if tree.Has(m) {
			names = append(names, m)
		}
	}
	order, err := tree.Resolve(names)
	if err != nil {
		return err
	}
	for _, f := range append(order, "modules.builtin", "modules.builtin.modinfo", "modules.order") {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			return err
		}
		if err := atomicfile.Copy(filepath.Join(tree.Root, f), filepath.Join(dir, f)); err != nil {
			return err
		}
	}
	return nil
}

// stageInitrd puts rootinit (built for linux/arm64 from the module the caller runs
// in) at dir/init and InitrdModules with
// their load list under dir/modules.
func stageInitrd(ctx context.Context, tree *kmod.Tree, dir string) error {
	mods := filepath.Join(dir, "modules")
	if err := os.MkdirAll(mods, 0o755); err != nil {
		return err
	}
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(dir, "init"),
		"github.com/rpi-deploy/rpi-deploy/image-tools/osimg/rootinit")
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build rootinit: %w\n%s", err, out)
	}
	order, err := tree.Resolve(InitrdModules)
	if err != nil {
		return err
	}
	var list []initenv.Module
	for _, rel := range order {
		if err := atomicfile.Copy(filepath.Join(tree.Root, rel), filepath.Join(mods, filepath.Base(rel))); err != nil {
			return err
		}
		list = append(list, initenv.Module{File: filepath.Base(rel)})
	}
	f, err := os.Create(filepath.Join(mods, "load.list"))
	if err != nil {
		return err
	}
	if err := initenv.WriteModuleList(f, list); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
