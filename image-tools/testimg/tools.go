package testimg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrMissingTool is wrapped by RequireTools when an outside tool is not installed.
var ErrMissingTool = errors.New("missing tool")

// tools are the outside programs Build and the check helpers run, with the Debian
// package that provides each (scripts/deps/diskfmt.apt lists them).
var tools = []struct{ name, pkg string }{
	{"sfdisk", "fdisk"},
	{"mkfs.vfat", "dosfstools"},
	{"fsck.fat", "dosfstools"},
	{"mcopy", "mtools"},
	{"mdel", "mtools"},
	{"mtype", "mtools"},
	{"mkfs.ext4", "e2fsprogs"},
	{"debugfs", "e2fsprogs"},
	{"dumpe2fs", "e2fsprogs"},
	{"e2fsck", "e2fsprogs"},
}

// RequireTools reports the first outside tool that is missing, naming the Debian
// package that provides it (install with `make deps`).
func RequireTools() error {
	for _, t := range tools {
		if _, err := lookTool(t.name); err != nil {
			return fmt.Errorf("%w: %s not found in PATH, /usr/sbin or /sbin (Debian package %q; run make deps)", ErrMissingTool, t.name, t.pkg)
		}
	}
	return nil
}

// lookTool finds name in PATH, or in the sbin directories that a non-root PATH lacks.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s", ErrMissingTool, name)
}

// run runs a tool with stdin and returns its stdout; the error carries stderr.
func run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	out, _, err := runFull(ctx, stdin, name, args...)
	return out, err
}

// runFull is run that also returns stderr.
func runFull(ctx context.Context, stdin []byte, name string, args ...string) (stdout, stderr []byte, err error) {
	p, err := lookTool(name)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, p, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "LC_ALL=C.UTF-8")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var outb, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &errb
	if err := cmd.Run(); err != nil {
		return outb.Bytes(), errb.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()+"\n"+outb.String()))
	}
	return outb.Bytes(), errb.Bytes(), nil
}
