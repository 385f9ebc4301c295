package initramfs

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/initenv"
	"github.com/rpi-deploy/rpi-deploy/initramfs/kmod"
)

// Config says what to build. The zero value of a field means its default.
type Config struct {
	Out   string // the compressed archive to write; required
	Agent string // Go package of the agent, built as the uinit; default ./agent/cmd/rpi-agent
	// ModulesFrom is where modules come from: a kernel's lib/modules/<version>
	// directory, or a master image whose root file system holds one (see
	// kmod.FromImage; KernelVersion picks the tree, default the Pi 5 kernel's).
	ModulesFrom   string
	KernelVersion string
	// Modules are put in with their dependencies; a name the tree lacks is an error.
	Modules []string
	// OptionalModules are put in like Modules when the tree has them; names that are
	// neither modules nor built in are skipped (PiModules: kernels differ in what they
	// build in).
	OptionalModules []string
	Compress        string // gzip (default), xz, zstd or none
	GOARCH          string // default arm64
	ModuleRoot      string // the Go module u-root builds in; default: the current directory
}

// Result describes a built initramfs.
type Result struct {
	Size     int64         // bytes of the compressed archive
	CPIOSize int64         // bytes of the cpio archive before compression
	Modules  []string      // module files in load order
	Took     time.Duration // build time
}

// Compressions are the formats Build can compress with. gzip is the default: every
// kernel that loads an initramfs unpacks it, the Raspberry Pi kernels included.
var Compressions = []string{"gzip", "xz", "zstd", "none"}

// Build builds the initramfs: u-root's init, the agent as uinit with `--uinit` in
// /etc/uinit.flags (the command keeps its own name: a command named uinit would run
// twice), gosh as /bin/sh for the rescue shell, the Commands, and the kernel modules
// with their load list at initenv.ModulesDir.
func Build(ctx context.Context, c Config, log io.Writer) (Result, error) {
	start := time.Now()
	if c.Out == "" {
		return Result{}, errors.New("no output file")
	}
	if c.Agent == "" {
		c.Agent = "./agent/cmd/rpi-agent"
	}
	if c.Compress == "" {
		c.Compress = "gzip"
	}
	if c.GOARCH == "" {
		c.GOARCH = "arm64"
	}
	if !slices.Contains(Compressions, c.Compress) {
		return Result{}, fmt.Errorf("compression %q: want one of %s", c.Compress, strings.Join(Compressions, ", "))
	}
	if len(c.Modules)+len(c.OptionalModules) > 0 && c.ModulesFrom == "" {
		return Result{}, errors.New("kernel modules named but no module tree to take them from (a kernel's lib/modules/<version> directory)")
	}
	if err := os.MkdirAll(filepath.Dir(c.Out), 0o755); err != nil {
		return Result{}, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(c.Out), ".mkinitramfs-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(tmp)

	var res Result
	files, err := stageModules(ctx, c, tmp, &res, log)
	if err != nil {
		return Result{}, err
	}
	cpioPath := filepath.Join(tmp, "initramfs.cpio")
	args := []string{"-o", cpioPath,
		"-initcmd", "init",
		"-uinitcmd", filepath.Base(c.Agent) + " --uinit",
		"-defaultsh", "gosh",
	}
	for _, f := range files {
		args = append(args, "-files", f)
	}
	args = append(args, "github.com/u-root/u-root/cmds/core/init")
	for _, cmd := range Commands {
		args = append(args, "github.com/u-root/u-root/cmds/core/"+cmd)
	}
	args = append(args, c.Agent)
	if err := uroot(ctx, c, args, log); err != nil {
		return Result{}, err
	}

	cpio, err := os.ReadFile(cpioPath)
	if err != nil {
		return Result{}, err
	}
	packed, err := compress(ctx, c.Compress, cpio)
	if err != nil {
		return Result{}, err
	}
	part := filepath.Join(tmp, "out")
	if err := os.WriteFile(part, packed, 0o644); err != nil {
		return Result{}, err
	}
	if err := os.Rename(part, c.Out); err != nil {
		return Result{}, err
	}
	res.Size, res.CPIOSize, res.Took = int64(len(packed)), int64(len(cpio)), time.Since(start)
	return res, nil
}

// stageModules copies the modules and their dependencies into dir/modules, writes the
// load list there, and returns the u-root -files arguments that put them at
// initenv.ModulesDir.
func stageModules(ctx context.Context, c Config, dir string, res *Result, log io.Writer) ([]string, error) {
	if len(c.Modules)+len(c.OptionalModules) == 0 {
		return nil, nil
	}
	root := c.ModulesFrom
	if fi, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("kernel modules: %w", err)
	} else if fi.Mode().IsRegular() {
		root, err = kmod.FromImage(ctx, c.ModulesFrom, dir, c.KernelVersion)
		if errors.Is(err, kmod.ErrNoModules) && len(c.Modules) == 0 {
			fmt.Fprintf(log, "initramfs: no kernel modules: %v\n", err)
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(log, "initramfs: kernel modules of %s from %s\n", filepath.Base(root), c.ModulesFrom)
	}
	tree, err := kmod.Open(root)
	if err != nil {
		return nil, err
	}
	names := slices.Clone(c.Modules)
	for _, m := range c.OptionalModules {
		if tree.Has(m) {
			names = append(names, m)
		} else {
			fmt.Fprintf(log, "initramfs: optional module %s: not in %s and not built in; skipped\n", m, root)
		}
	}
	order, err := tree.Resolve(names)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "initramfs: modules (load order): %s\n", strings.Join(order, " "))
	stage := filepath.Join(dir, "modules")
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return nil, err
	}
	dest := strings.TrimPrefix(initenv.ModulesDir, "/")
	var files []string
	var list []initenv.Module
	for _, rel := range order {
		name := filepath.Base(rel)
		b, err := os.ReadFile(filepath.Join(tree.Root, rel))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(stage, name), b, 0o644); err != nil {
			return nil, err
		}
		files = append(files, filepath.Join(stage, name)+":"+dest+"/"+name)
		list = append(list, initenv.Module{File: name})
		res.Modules = append(res.Modules, name)
	}
	var b bytes.Buffer
	if err := initenv.WriteModuleList(&b, list); err != nil {
		return nil, err
	}
	listFile := filepath.Join(stage, filepath.Base(initenv.ModulesList))
	if err := os.WriteFile(listFile, b.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return append(files, listFile+":"+strings.TrimPrefix(initenv.ModulesList, "/")), nil
}

// uroot runs the u-root tool pinned in go.mod for GOOS=linux GOARCH=c.GOARCH. The tool
// is built for this machine first (`go tool -n u-root`): `GOARCH=arm64 go tool u-root`
// would build the tool itself for arm64 and fail with "exec format error".
func uroot(ctx context.Context, c Config, args []string, log io.Writer) error {
	tool := exec.CommandContext(ctx, "go", "tool", "-n", "u-root")
	tool.Dir = c.ModuleRoot
	out, err := tool.Output()
	if err != nil {
		return fmt.Errorf("go tool -n u-root: %w", err)
	}
	cmd := exec.CommandContext(ctx, strings.TrimSpace(string(out)), args...)
	cmd.Dir = c.ModuleRoot
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+c.GOARCH, "CGO_ENABLED=0")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		log.Write(buf.Bytes())
		return fmt.Errorf("u-root: %w", err)
	}
	return nil
}

// compress packs the cpio archive. gzip is done here; xz and zstd by the xz and zstd
// tools (xz with CRC32 checks: the kernel's XZ decoder does not know CRC64).
func compress(ctx context.Context, format string, cpio []byte) ([]byte, error) {
	var tool []string
	switch format {
	case "none":
		return cpio, nil
	case "gzip":
		var b bytes.Buffer
		zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
		if err != nil {
			return nil, err
		}
		if _, err := zw.Write(cpio); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	case "xz":
		tool = []string{"xz", "--check=crc32", "--lzma2=preset=9e,dict=8MiB", "-T1", "-c"}
	case "zstd":
		tool = []string{"zstd", "-19", "-q", "-c"}
	default:
		return nil, fmt.Errorf("compression %q: want one of %s", format, strings.Join(Compressions, ", "))
	}
	cmd := exec.CommandContext(ctx, tool[0], tool[1:]...)
	cmd.Stdin = bytes.NewReader(cpio)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", tool[0], err, stderr.String())
	}
	return out, nil
}
