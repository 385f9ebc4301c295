package initramfs

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"github.com/rpi-deploy/rpi-deploy/agent/initenv"
	"github.com/u-root/u-root/pkg/cpio"
	"github.com/u-root/u-root/pkg/uflag"
	"github.com/u-root/uio/uio"
)

// envInitramfs names an initramfs already built (make e2e sets it after `make
// initramfs`); without it the tests build one themselves, with the QEMU modules of the
// Debian arm64 kernel (initramfs/fetch-kernel.sh fetches it into build/kernel).
const envInitramfs = "RPI_DEPLOY_INITRAMFS"

var archivePath string

func TestMain(m *testing.M) {
	code, err := testMain(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "initramfs test:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func testMain(m *testing.M) (int, error) {
	if p := os.Getenv(envInitramfs); p != "" {
		archivePath = p
		return m.Run(), nil
	}
	root, err := filepath.Abs("..")
	if err != nil {
		return 0, err
	}
	fetch := exec.Command(filepath.Join(root, "initramfs/fetch-kernel.sh"))
	fetch.Stdout, fetch.Stderr = os.Stderr, os.Stderr
	if err := fetch.Run(); err != nil {
		return 0, fmt.Errorf("fetch the arm64 kernel: %w", err)
	}
	dir, err := os.MkdirTemp("", "initramfs-test-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	archivePath = filepath.Join(dir, "initramfs_2712")
	_, err = Build(context.Background(), Config{
		Out:         archivePath,
		ModulesFrom: filepath.Join(root, "build/kernel/modules"),
		Modules:     QEMUModules,
		ModuleRoot:  root,
	}, os.Stderr)
	if err != nil {
		return 0, fmt.Errorf("build the initramfs: %w", err)
	}
	return m.Run(), nil
}

// archive is an initramfs read back: its records by name.
type archive map[string]cpio.Record

// readArchive decompresses (gzip, zstd or none, by magic) and reads a newc cpio.
func readArchive(t *testing.T, p string) archive {
	t.Helper()
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader = bytes.NewReader(raw)
	switch {
	case bytes.HasPrefix(raw, []byte{0x1f, 0x8b}):
		if r, err = gzip.NewReader(r); err != nil {
			t.Fatal(err)
		}
	case bytes.HasPrefix(raw, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decompress %s: %v", p, err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(plain)))
	if err != nil {
		t.Fatalf("read cpio %s: %v", p, err)
	}
	a := archive{}
	for _, r := range recs {
		a[path.Clean(strings.TrimPrefix(r.Name, "/"))] = r
	}
	return a
}

func (a archive) content(t *testing.T, name string) []byte {
	t.Helper()
	r, ok := a[name]
	if !ok {
		t.Fatalf("%s is not in the initramfs", name)
	}
	b, err := uio.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

// resolve follows symbolic links inside the archive and returns the regular file or
// device a name ends at.
func (a archive) resolve(t *testing.T, name string) string {
	t.Helper()
	for range 10 {
		r, ok := a[name]
		if !ok {
			t.Fatalf("%s is not in the initramfs", name)
		}
		if r.Mode&cpio.S_IFMT != cpio.S_IFLNK {
			return name
		}
		target := string(a.content(t, name))
		if path.IsAbs(target) {
			name = path.Clean(target[1:])
		} else {
			name = path.Join(path.Dir(name), target)
		}
	}
	t.Fatalf("%s: too many symbolic links", name)
	return ""
}

func (a archive) linkTarget(t *testing.T, name string) string {
	t.Helper()
	if r, ok := a[name]; !ok || r.Mode&cpio.S_IFMT != cpio.S_IFLNK {
		t.Fatalf("%s is not a symbolic link in the initramfs", name)
	}
	return string(a.content(t, name))
}

func (a archive) checkELF(t *testing.T, name string, typ elf.Type) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(a.content(t, name)))
	if err != nil {
		t.Fatalf("%s: not ELF: %v", name, err)
	}
	if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 || f.Type != typ {
		t.Errorf("%s: ELF %v %v %v, want EM_AARCH64 ELFCLASS64 %v", name, f.Class, f.Machine, f.Type, typ)
	}
}

// TestArchiveBoots checks what u-root's init and the kernel need: /init is u-root's init
// in an arm64 busybox binary, /dev/console exists, the agent is the uinit with
// --uinit, and nothing else is called uinit (it would run twice).
func TestArchiveBoots(t *testing.T) {
	a := readArchive(t, archivePath)
	if got := a.resolve(t, "init"); got != "bbin/bb" {
		t.Errorf("/init resolves to %s, want bbin/bb", got)
	}
	if got := a.linkTarget(t, "bbin/init"); got != "bb" {
		t.Errorf("/bbin/init -> %s, want bb", got)
	}
	a.checkELF(t, "bbin/bb", elf.ET_EXEC)
	bb, err := elf.NewFile(bytes.NewReader(a.content(t, "bbin/bb")))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range bb.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("bbin/bb is dynamically linked; the initramfs has no loader")
		}
	}

	if got := a.linkTarget(t, "bin/uinit"); got != "../bbin/rpi-agent" {
		t.Errorf("/bin/uinit -> %s, want ../bbin/rpi-agent", got)
	}
	if got := a.resolve(t, "bin/uinit"); got != "bbin/bb" {
		t.Errorf("/bin/uinit resolves to %s, want bbin/bb", got)
	}
	for _, twice := range []string{"bbin/uinit", "buildbin/uinit", "inito"} {
		if _, ok := a[twice]; ok {
			t.Errorf("%s is in the initramfs: u-root's init would run it as well", twice)
		}
	}
	args, err := uflag.FileToArgv(string(a.content(t, "etc/uinit.flags"))), error(nil)
	if diff := cmp.Diff([]string{"--uinit"}, args); err != nil || diff != "" {
		t.Errorf("/etc/uinit.flags arguments (-want +got):\n%s", diff)
	}

	con, ok := a["dev/console"]
	if !ok || con.Mode&cpio.S_IFMT != cpio.S_IFCHR || con.Rmajor != 5 || con.Rminor != 1 {
		t.Errorf("/dev/console = %+v, want character device 5,1", con.Info)
	}
}

// TestArchiveRescueShell checks the technician's shell and tools.
func TestArchiveRescueShell(t *testing.T) {
	a := readArchive(t, archivePath)
	for _, sh := range []string{"bin/sh", "bin/defaultsh"} {
		if got := a.linkTarget(t, sh); got != "../bbin/gosh" {
			t.Errorf("/%s -> %s, want ../bbin/gosh", sh, got)
		}
	}
	for _, c := range Commands {
		if got := a.resolve(t, "bbin/"+c); got != "bbin/bb" {
			t.Errorf("/bbin/%s resolves to %s, want bbin/bb", c, got)
		}
	}
}

// TestArchiveModules checks that the kernel modules and their load list are there,
// dependencies before their users, and are arm64 kernel modules.
func TestArchiveModules(t *testing.T) {
	a := readArchive(t, archivePath)
	listName := strings.TrimPrefix(initenv.ModulesList, "/")
	mods, err := initenv.ParseModuleList(bytes.NewReader(a.content(t, listName)))
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range mods {
		file := path.Join(strings.TrimPrefix(initenv.ModulesDir, "/"), m.File)
		a.checkELF(t, file, elf.ET_REL)
		pos[strings.TrimSuffix(m.File, ".ko")] = i
	}
	for _, want := range QEMUModules {
		if _, ok := pos[strings.ReplaceAll(want, "_", "-")]; !ok {
			if _, ok := pos[want]; !ok {
				t.Errorf("module %s is not in %s (have %v)", want, initenv.ModulesList, mods)
			}
		}
	}
	// The virtio_pci transport's helpers before virtio_pci, failover before virtio_net.
	for _, order := range [][2]string{{"virtio_pci_modern_dev", "virtio_pci"}, {"failover", "net_failover"}, {"net_failover", "virtio_net"}} {
		if pos[order[0]] >= pos[order[1]] {
			t.Errorf("module %s is loaded at %d, after %s at %d", order[0], pos[order[0]], order[1], pos[order[1]])
		}
	}
	for name := range a {
		if strings.HasPrefix(name, "lib/modules/") && strings.HasSuffix(name, ".ko") && path.Dir(name) == "lib/modules" {
			t.Errorf("%s: u-root's init would load it without its dependencies", name)
		}
	}
}

// TestToolsImportsCommands checks that tools.go imports every command Build builds, so
// that go.sum holds what u-root needs.
func TestToolsImportsCommands(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "tools.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		got = append(got, strings.TrimPrefix(p, "github.com/u-root/u-root/cmds/core/"))
	}
	want := append([]string{"init"}, Commands...)
	slices.Sort(want)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tools.go imports (-want +got):\n%s", diff)
	}
}
