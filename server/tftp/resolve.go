package tftp

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"
)

// ErrRefused marks a name that tries to leave the TFTP root or is not a plain relative
// path; such requests are logged as refused.
var ErrRefused = errors.New("path refused")

var (
	serialPrefix = regexp.MustCompile(`^[0-9a-fA-F]{8}$`)
	macPrefix    = regexp.MustCompile(`^[0-9a-fA-F]{2}(-[0-9a-fA-F]{2}){5}$`)
)

// Name is a request name split into the bootloader's TFTP prefix and the file.
type Name struct {
	Prefix string // "abcd1234" (serial) or "dc-a6-32-01-36-c2" (MAC), lower case; "" when none
	File   string // the path below the prefix, e.g. "overlays/vc4-kms-v3d.dtbo"
}

// Serial is the prefix when it is a serial (8 hex digits), else "".
func (n Name) Serial() string {
	if serialPrefix.MatchString(n.Prefix) {
		return n.Prefix
	}
	return ""
}

// MAC is the prefix as aa:bb:cc:dd:ee:ff when it is a MAC, else "".
func (n Name) MAC() string {
	if macPrefix.MatchString(n.Prefix) {
		return strings.ReplaceAll(n.Prefix, "-", ":")
	}
	return ""
}

// ParseName checks a requested file name and splits off the board prefix. It refuses
// (ErrRefused) empty and absolute names, backslashes, NUL bytes and any ".." element.
func ParseName(raw string) (Name, error) {
	switch {
	case raw == "":
		return Name{}, fmt.Errorf("empty name: %w", ErrRefused)
	case strings.HasPrefix(raw, "/"):
		return Name{}, fmt.Errorf("absolute name %q: %w", raw, ErrRefused)
	case strings.ContainsAny(raw, "\\\x00"):
		return Name{}, fmt.Errorf("name %q has a backslash or NUL: %w", raw, ErrRefused)
	}
	for _, el := range strings.Split(raw, "/") {
		if el == ".." {
			return Name{}, fmt.Errorf("name %q leaves the root: %w", raw, ErrRefused)
		}
	}
	clean := path.Clean(raw)
	if clean == "." || !fs.ValidPath(clean) {
		return Name{}, fmt.Errorf("name %q: %w", raw, ErrRefused)
	}
	first, rest, found := strings.Cut(clean, "/")
	if found && (serialPrefix.MatchString(first) || macPrefix.MatchString(first)) {
		return Name{Prefix: strings.ToLower(first), File: rest}, nil
	}
	return Name{File: clean}, nil
}

// open opens n inside root: the board's directory first, then (if fallback) the shared
// root. An empty File opens nothing (fs.ErrNotExist). A symlink that leaves the root is refused by os.Root.
func open(root *os.Root, n Name, fallback bool) (*os.File, string, error) {
	if n.File == "" {
		return nil, "", fs.ErrNotExist
	}
	if n.Prefix != "" {
		p := n.Prefix + "/" + n.File
		f, err := openRegular(root, p)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || !fallback {
			return f, p, err
		}
	}
	f, err := openRegular(root, n.File)
	return f, n.File, err
}

func openRegular(root *os.Root, p string) (*os.File, error) {
	f, err := root.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return nil, err
		}
		// os.Root refuses symlinks (and anything else) that lead out of the root.
		return nil, fmt.Errorf("%s: %w: %w", p, ErrRefused, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file: %w", p, fs.ErrNotExist)
	}
	return f, nil
}
