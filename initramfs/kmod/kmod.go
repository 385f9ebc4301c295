// Package kmod picks kernel modules and everything they depend on out of a kernel's
// module tree (lib/modules/<version> of a Debian kernel package or of a master image's
// root file system), in the order they must be loaded.
//
// Dependencies come from each module's own .modinfo section ("depends="), so a tree
// without modules.dep (Debian's packages leave depmod to the installer) works as well as
// one with it. Modules may be plain (.ko) or compressed (.ko.xz, .ko.zst, .ko.gz).
// Modules listed in modules.builtin are part of the kernel and are skipped.
package kmod

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/u-root/u-root/pkg/kmodule"
)

// ErrNotFound is returned for a module that is neither in the tree nor built in.
var ErrNotFound = errors.New("kernel module not found")

// Tree is a kernel's module tree.
type Tree struct {
	Root    string            // the lib/modules/<version> directory
	files   map[string]string // module name → path relative to Root
	builtin map[string]bool   // module names built into the kernel
}

// Name normalises a module name as the kernel does: "-" and "_" are the same.
func Name(s string) string { return strings.ReplaceAll(s, "-", "_") }

// moduleName returns the module name of a file name ("virtio-net.ko.xz" → "virtio_net"),
// or "" for a file that is no module.
func moduleName(file string) string {
	base := filepath.Base(file)
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(base, ext) {
			return Name(strings.TrimSuffix(base, ext))
		}
	}
	return ""
}

// Open indexes the module tree at root (a lib/modules/<version> directory).
func Open(root string) (*Tree, error) {
	t := &Tree{Root: root, files: map[string]string{}, builtin: map[string]bool{}}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if name := moduleName(path); name != "" {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			if _, dup := t.files[name]; !dup {
				t.files[name] = rel
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index kernel modules in %q: %w", root, err)
	}
	if len(t.files) == 0 {
		return nil, fmt.Errorf("index kernel modules in %q: no modules there (want a lib/modules/<version> directory)", root)
	}
	if f, err := os.Open(filepath.Join(root, "modules.builtin")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if name := moduleName(sc.Text()); name != "" {
				t.builtin[name] = true
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read modules.builtin: %w", err)
		}
	}
	return t, nil
}

// Has reports whether name is a module of the tree or built into the kernel.
func (t *Tree) Has(name string) bool {
	name = Name(name)
	_, ok := t.files[name]
	return ok || t.builtin[name]
}

// Resolve returns the files (relative to Root) of the named modules and of all modules
// they depend on, dependencies before their users, each once. Built-in modules are left
// out. A name that is neither a module nor built in is an ErrNotFound error.
func (t *Tree) Resolve(names []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 0 new, 1 visiting, 2 done
	var visit func(name, from string) error
	visit = func(name, from string) error {
		name = Name(name)
		switch state[name] {
		case 1:
			return fmt.Errorf("kernel module %q: dependency cycle through %q", name, from)
		case 2:
			return nil
		}
		if t.builtin[name] {
			state[name] = 2
			return nil
		}
		rel, ok := t.files[name]
		if !ok {
			if from != "" {
				return fmt.Errorf("kernel module %q (needed by %q): %w in %q", name, from, ErrNotFound, t.Root)
			}
			return fmt.Errorf("kernel module %q: %w in %q", name, ErrNotFound, t.Root)
		}
		state[name] = 1
		deps, err := Depends(filepath.Join(t.Root, rel))
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, rel)
		return nil
	}
	for _, n := range names {
		if err := visit(n, ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// Depends reads the "depends=" entry of the .modinfo section of the module file at
// path (decompressing .xz, .zst and .gz modules).
func Depends(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read kernel module: %w", err)
	}
	defer f.Close()
	r, err := kmodule.CompressionReader(f)
	if err != nil {
		return nil, fmt.Errorf("read kernel module %q: %w", path, err)
	}
	img, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read kernel module %q: %w", path, err)
	}
	e, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return nil, fmt.Errorf("kernel module %q: %w", path, err)
	}
	sec := e.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("kernel module %q: no .modinfo section", path)
	}
	info, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("kernel module %q: .modinfo: %w", path, err)
	}
	for _, kv := range bytes.Split(info, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}
