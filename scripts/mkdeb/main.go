// Command mkdeb builds the rpi-deploy Debian package, rpi-deploy_VERSION_ARCH.deb, with
// nfpm (github.com/goreleaser/nfpm/v2) used as a library.
//
// What goes into the package is packaging/nfpm.yaml: the binaries, the systemd unit,
// the sysusers, tmpfiles and sysctl snippets, the default configuration (a conffile),
// the maintainer scripts, copyright and docs. mkdeb adds what depends on the build:
// the man pages (help2man output, gzipped), the Debian changelog for the version, and
// the Pi 5 initramfs when one was built. `make deb` runs it; see docs/operations.md.
//
//	go run ./scripts/mkdeb -arch amd64 -bin bin/linux-amd64 -man build/deb/man \
//	    -describe "$(git describe --tags --always --dirty)" -o build/deb [-version V] [-initramfs FILE]
//
// The commit time comes from SOURCE_DATE_EPOCH (also nfpm's mtime of every file, so the
// same commit gives the same package bytes). The package path is printed on stdout.
package main

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// binaries are the programs the package ships in /usr/bin, each with a man page.
var binaries = []string{"rpi-deployd", "rpi-agent", "rpi-image"}

// machines maps a Debian architecture to the ELF machine its binaries must have.
var machines = map[string]elf.Machine{
	"amd64": elf.EM_X86_64,
	"arm64": elf.EM_AARCH64,
}

// options is what one package build needs. Every path is relative to the working
// directory (the repository root when run by make).
type options struct {
	Config    string    // nfpm configuration; default packaging/nfpm.yaml
	Arch      string    // Debian architecture: amd64 or arm64
	Version   string    // Debian version; empty: derived from Describe and Commit
	Describe  string    // `git describe --tags --always --dirty`
	Commit    time.Time // the commit's time (SOURCE_DATE_EPOCH)
	BinDir    string    // holds the binaries built for Arch
	ManDir    string    // holds NAME.1 for each binary (help2man); empty: no man pages
	Initramfs string    // the Pi 5 initramfs to ship; empty: none
	OutDir    string    // where the .deb is written
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mkdeb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.Config, "config", "packaging/nfpm.yaml", "nfpm configuration")
	fs.StringVar(&o.Arch, "arch", "", "Debian architecture: amd64 or arm64")
	fs.StringVar(&o.Version, "version", "", "Debian version (default: derived from -describe and SOURCE_DATE_EPOCH)")
	fs.StringVar(&o.Describe, "describe", "", "git describe --tags --always --dirty")
	fs.StringVar(&o.BinDir, "bin", "", "directory with rpi-deployd, rpi-agent and rpi-image built for -arch")
	fs.StringVar(&o.ManDir, "man", "", "directory with rpi-deployd.1, rpi-agent.1 and rpi-image.1")
	fs.StringVar(&o.Initramfs, "initramfs", "", "Pi 5 initramfs to ship in /usr/lib/rpi-deploy (optional)")
	fs.StringVar(&o.OutDir, "o", ".", "output directory")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.Commit = time.Now()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "mkdeb: SOURCE_DATE_EPOCH=%q is not a number of seconds\n", s)
			return 2
		}
		o.Commit = time.Unix(sec, 0).UTC()
	}
	path, err := build(o)
	if err != nil {
		fmt.Fprintf(stderr, "mkdeb: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, path)
	return 0
}

// build writes the package into o.OutDir and returns its path. On error nothing is
// left in o.OutDir.
func build(o options) (string, error) {
	version, err := checkInputs(o)
	if err != nil {
		return "", err
	}
	info, err := readConfig(o, version)
	if err != nil {
		return "", err
	}

	tmp, err := os.MkdirTemp(o.OutDir, ".mkdeb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)

	// The changelog: native version (no Debian revision), so changelog.gz.
	changelog := fmt.Sprintf("%s (%s) unstable; urgency=medium\n\n  * Built from git %s.\n\n -- %s  %s\n",
		info.Name, version, describeOr(o.Describe, version), info.Maintainer, o.Commit.UTC().Format(time.RFC1123Z))
	if err := addGzip(info, tmp, "changelog", []byte(changelog), "/usr/share/doc/"+info.Name+"/changelog.gz"); err != nil {
		return "", err
	}
	if o.ManDir != "" {
		for _, b := range binaries {
			page, err := os.ReadFile(filepath.Join(o.ManDir, b+".1"))
			if err != nil {
				return "", fmt.Errorf("man page: %w", err)
			}
			if err := addGzip(info, tmp, b+".1", page, "/usr/share/man/man1/"+b+".1.gz"); err != nil {
				return "", err
			}
		}
	}
	if o.Initramfs != "" {
		info.Contents = append(info.Contents, &files.Content{
			Source:      o.Initramfs,
			Destination: "/usr/lib/rpi-deploy/initramfs_2712",
			FileInfo:    &files.ContentFileInfo{Mode: 0o644},
		})
	}
	sort.SliceStable(info.Contents, func(i, j int) bool { return info.Contents[i].Destination < info.Contents[j].Destination })

	packager := deb.Default
	name := filepath.Join(o.OutDir, packager.ConventionalFileName(info))
	f, err := os.CreateTemp(tmp, "deb-")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := packager.Package(info, f); err != nil {
		return "", fmt.Errorf("package: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return "", err
	}
	return name, nil
}

// checkInputs checks the architecture, the binaries and the initramfs, and returns the
// package version (o.Version, checked, or made from git describe).
func checkInputs(o options) (string, error) {
	want, ok := machines[o.Arch]
	if !ok {
		return "", fmt.Errorf("architecture %q: want amd64 or arm64", o.Arch)
	}
	version := o.Version
	if version == "" {
		v, err := DebVersion(o.Describe, o.Commit)
		if err != nil {
			return "", err
		}
		version = v
	} else if err := CheckDebVersion(version); err != nil {
		return "", err
	}
	for _, b := range binaries {
		if err := checkELF(filepath.Join(o.BinDir, b), want); err != nil {
			return "", err
		}
	}
	if o.Initramfs != "" {
		if fi, err := os.Stat(o.Initramfs); err != nil {
			return "", fmt.Errorf("initramfs: %w", err)
		} else if !fi.Mode().IsRegular() || fi.Size() == 0 {
			return "", fmt.Errorf("initramfs %q: not a non-empty regular file", o.Initramfs)
		}
	}
	return version, nil
}

// readConfig reads packaging/nfpm.yaml with ARCH, VERSION and BIN filled in; any other
// variable is an error.
func readConfig(o options, version string) (*nfpm.Info, error) {
	vars := map[string]string{"ARCH": o.Arch, "VERSION": version, "BIN": o.BinDir}
	var unknown []string
	config, err := nfpm.ParseFileWithEnvMapping(o.Config, func(k string) string {
		v, ok := vars[k]
		// nfpm itself asks for NFPM_*PASSPHRASE (package signing, unused here).
		if !ok && !strings.HasPrefix(k, "NFPM_") {
			unknown = append(unknown, k)
		}
		return v
	})
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", o.Config, err)
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%q uses unknown variables %s (known: ARCH, VERSION, BIN)", o.Config, strings.Join(unknown, ", "))
	}
	info, err := config.Get("deb")
	if err != nil {
		return nil, fmt.Errorf("%q: %w", o.Config, err)
	}
	info = nfpm.WithDefaults(info)
	if info.VersionSchema != "none" {
		return nil, fmt.Errorf("%q: version_schema must be none (the version is already a Debian version)", o.Config)
	}
	info.MTime = o.Commit
	return info, nil
}

// checkELF reports whether path is an executable ELF file for machine m.
func checkELF(path string, m elf.Machine) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("binary: %w (run make build or make cross)", err)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("binary %q is not executable", path)
	}
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("binary %q is not an ELF executable: %w", path, err)
	}
	defer f.Close()
	if f.Machine != m {
		return fmt.Errorf("binary %q is for %v, the package for %v", path, f.Machine, m)
	}
	return nil
}

// addGzip writes data gzipped (no name, no time: reproducible, as Debian wants) into
// dir and adds it to the package at dst.
func addGzip(info *nfpm.Info, dir, name string, data []byte, dst string) error {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	src := filepath.Join(dir, name+".gz")
	if err := os.WriteFile(src, buf.Bytes(), 0o644); err != nil {
		return err
	}
	for _, c := range info.Contents {
		if c.Destination == dst {
			return fmt.Errorf("%s is generated by mkdeb; remove it from the nfpm configuration", dst)
		}
	}
	info.Contents = append(info.Contents, &files.Content{
		Source:      src,
		Destination: dst,
		FileInfo:    &files.ContentFileInfo{Mode: 0o644},
	})
	return nil
}

func describeOr(describe, version string) string {
	if describe == "" {
		return "version " + version
	}
	return describe
}
