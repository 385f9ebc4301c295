package initenv

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// Where the initramfs build puts kernel modules. They are kept out of /lib/modules so
// that u-root's init does not load them itself (it loads /lib/modules/*.ko in glob
// order, without dependencies).
const (
	ModulesDir  = "/lib/rpi-deploy/modules"
	ModulesList = ModulesDir + "/load.list"
)

// Module is one line of the ModulesList file.
type Module struct {
	File   string // path relative to ModulesDir, e.g. "virtio_net.ko" or "macb.ko.xz"
	Params string // module parameters, e.g. "debug=1"; may be empty
}

// ParseModuleList reads a ModulesList file: one module a line, in load order
// (dependencies first), the file name relative to ModulesDir, optionally followed by
// the module parameters. Blank lines and lines starting with # are skipped. A file name
// that is absolute or climbs out of ModulesDir is an error.
func ParseModuleList(r io.Reader) ([]Module, error) {
	var mods []Module
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		file, params, _ := strings.Cut(line, " ")
		if path.IsAbs(file) || path.Clean(file) != file || strings.HasPrefix(file, "../") || file == ".." {
			return nil, fmt.Errorf("module list line %d: %q is not a clean relative path", n, file)
		}
		mods = append(mods, Module{File: file, Params: strings.TrimSpace(params)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read module list: %w", err)
	}
	return mods, nil
}

// WriteModuleList writes mods in the ModulesList format.
func WriteModuleList(w io.Writer, mods []Module) error {
	var b strings.Builder
	b.WriteString("# kernel modules rpi-agent --uinit loads, in this order (written by the initramfs build)\n")
	for _, m := range mods {
		b.WriteString(m.File)
		if m.Params != "" {
			b.WriteString(" " + m.Params)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
