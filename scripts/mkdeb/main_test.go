package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var commit = time.Date(2026, 12, 4, 19, 30, 0, 0, time.UTC)

func TestDebVersion(t *testing.T) {
	for _, tc := range []struct {
		name, describe, want string
	}{
		{"tag", "v1.2.3", "1.2.3"},
		{"tag without v", "1.2.3", "1.2.3"},
		{"after a tag", "v1.2.3-4-gdeadbee", "1.2.3+git4.deadbee"},
		{"after a tag, dirty", "v1.2.3-4-gdeadbee-dirty", "1.2.3+git4.deadbee.dirty"},
		{"no tag", "b28c3c7", "0.0~git20261204.b28c3c7"},
		{"no tag, dirty", "b28c3c7-dirty", "0.0~git20261204.b28c3c7.dirty"},
		{"newline from the shell", "b28c3c7\n", "0.0~git20261204.b28c3c7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DebVersion(tc.describe, commit)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("DebVersion(%q) = %q, want %q", tc.describe, got, tc.want)
			}
		})
	}
}

// Versions must sort as the commits do; dpkg itself is the judge.
func TestDebVersionOrderByDpkg(t *testing.T) {
	dpkg := needTool(t, "dpkg")
	order := []string{"0.0~git20261204.b28c3c7", "0.0~git20261205.0a1b2c3", "1.2.3", "1.2.3+git4.deadbee", "1.2.3+git4.deadbee+1", "1.2.4"}
	for i := 1; i < len(order); i++ {
		if out, err := exec.Command(dpkg, "--compare-versions", order[i-1], "lt", order[i]).CombinedOutput(); err != nil {
			t.Errorf("dpkg: %s is not before %s: %v %s", order[i-1], order[i], err, out)
		}
	}
}

func TestBadVersions(t *testing.T) {
	for _, tc := range []struct{ name, describe string }{
		{"no git", "dev"},
		{"empty", ""},
		{"release candidate tag", "v1.2.3-rc1"},
		{"space", "v1.2 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if v, err := DebVersion(tc.describe, commit); !errors.Is(err, ErrVersion) {
				t.Errorf("DebVersion(%q) = %q, %v; want ErrVersion", tc.describe, v, err)
			}
		})
	}
	for _, v := range []string{"", "v1.0", "1.0-", "1.0-a:b", "1.0_1", "a1", "1.0 1"} {
		if err := CheckDebVersion(v); !errors.Is(err, ErrVersion) {
			t.Errorf("CheckDebVersion(%q) = %v, want ErrVersion", v, err)
		}
	}
	for _, v := range []string{"1.0", "1:1.0-1", "0.0~git20261204.b28c3c7", "1.0-1+b1", "2.0~rc1-0.1"} {
		if err := CheckDebVersion(v); err != nil {
			t.Errorf("CheckDebVersion(%q) = %v", v, err)
		}
	}
}

// fixture lays out what make deb hands mkdeb: the three binaries (copies of this
// machine's /usr/bin/true, a small real ELF executable of its architecture) and
// help2man-style man pages. The working directory becomes the repository root, as
// under make.
func fixture(t *testing.T) options {
	t.Helper()
	exe, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	o := options{
		Config:   "packaging/nfpm.yaml",
		Arch:     runtime.GOARCH,
		Describe: "b28c3c7",
		Commit:   commit,
		BinDir:   filepath.Join(dir, "bin"),
		ManDir:   filepath.Join(dir, "man"),
		OutDir:   filepath.Join(dir, "out"),
	}
	for _, d := range []string{o.BinDir, o.ManDir, o.OutDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range binaries {
		if err := os.WriteFile(filepath.Join(o.BinDir, b), exe, 0o755); err != nil {
			t.Fatal(err)
		}
		page := ".TH " + strings.ToUpper(b) + " 1\n.SH NAME\n" + b + " \\- test page\n"
		if err := os.WriteFile(filepath.Join(o.ManDir, b+".1"), []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir("../..")
	if _, err := os.Stat(o.Config); err != nil {
		t.Fatal(err)
	}
	return o
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (scripts/deps/deb.apt lists it; run make deps): %v", name, err)
	}
	return p
}

func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(needTool(t, "dpkg-deb"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// The package as dpkg-deb reads it: name, version, architecture, the conffile, the
// maintainer scripts, every file where the Debian layout wants it.
func TestBuildPackage(t *testing.T) {
	o := fixture(t)
	initramfs := filepath.Join(t.TempDir(), "initramfs_2712")
	if err := os.WriteFile(initramfs, []byte("070701 not really a cpio, but bytes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o.Initramfs = initramfs
	path, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(o.OutDir, "rpi-deploy_0.0~git20261204.b28c3c7_"+runtime.GOARCH+".deb"); path != want {
		t.Errorf("path %q, want %q", path, want)
	}
	fields := map[string]string{}
	for _, f := range []string{"Package", "Version", "Architecture", "Depends", "Section", "Maintainer"} {
		fields[f] = strings.TrimSpace(dpkgDeb(t, "-f", path, f))
	}
	if diff := cmp.Diff(map[string]string{
		"Package":      "rpi-deploy",
		"Version":      "0.0~git20261204.b28c3c7",
		"Architecture": runtime.GOARCH,
		"Depends":      "systemd",
		"Section":      "net",
		"Maintainer":   "rpi-deploy developers <dev@rpi-deploy.invalid>",
	}, fields); diff != "" {
		t.Errorf("control fields (-want +got):\n%s", diff)
	}

	listing := dpkgDeb(t, "-c", path)
	mode := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(listing), "\n") {
		f := strings.Fields(line)
		mode[strings.TrimPrefix(f[len(f)-1], ".")] = f[0] + " " + f[1]
	}
	for file, want := range map[string]string{
		"/usr/bin/rpi-deployd":                    "-rwxr-xr-x root/root",
		"/usr/bin/rpi-agent":                      "-rwxr-xr-x root/root",
		"/usr/bin/rpi-image":                      "-rwxr-xr-x root/root",
		"/lib/systemd/system/rpi-deployd.service": "-rw-r--r-- root/root",
		"/usr/lib/sysusers.d/rpi-deploy.conf":     "-rw-r--r-- root/root",
		"/usr/lib/tmpfiles.d/rpi-deploy.conf":     "-rw-r--r-- root/root",
		"/usr/lib/sysctl.d/60-rpi-deploy.conf":    "-rw-r--r-- root/root",
		"/etc/rpi-deploy/rpi-deployd.json":        "-rw-r--r-- root/root",
		"/usr/share/doc/rpi-deploy/copyright":     "-rw-r--r-- root/root",
		"/usr/share/doc/rpi-deploy/changelog.gz":  "-rw-r--r-- root/root",
		"/usr/share/man/man1/rpi-deployd.1.gz":    "-rw-r--r-- root/root",
		"/usr/share/man/man1/rpi-agent.1.gz":      "-rw-r--r-- root/root",
		"/usr/share/man/man1/rpi-image.1.gz":      "-rw-r--r-- root/root",
		"/usr/lib/rpi-deploy/initramfs_2712":      "-rw-r--r-- root/root",
	} {
		if got := mode[file]; got != want {
			t.Errorf("%s: %q, want %q", file, got, want)
		}
	}

	control := t.TempDir()
	dpkgDeb(t, "-e", path, control)
	conffiles, err := os.ReadFile(filepath.Join(control, "conffiles"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(conffiles)); got != "/etc/rpi-deploy/rpi-deployd.json" {
		t.Errorf("conffiles %q", got)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		got, err := os.ReadFile(filepath.Join(control, s))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile("packaging/deb/" + s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from packaging/deb/%s", s, s)
		}
	}

	// The files are packaging/'s, byte for byte: one source for install.sh and the package.
	data := t.TempDir()
	dpkgDeb(t, "-x", path, data)
	for src, dst := range map[string]string{
		"packaging/rpi-deployd.service": "lib/systemd/system/rpi-deployd.service",
		"packaging/sysusers.conf":       "usr/lib/sysusers.d/rpi-deploy.conf",
		"packaging/tmpfiles.conf":       "usr/lib/tmpfiles.d/rpi-deploy.conf",
		"packaging/sysctl.conf":         "usr/lib/sysctl.d/60-rpi-deploy.conf",
		"packaging/rpi-deployd.json":    "etc/rpi-deploy/rpi-deployd.json",
		initramfs:                       "usr/lib/rpi-deploy/initramfs_2712",
	} {
		a, _ := os.ReadFile(src)
		b, err := os.ReadFile(filepath.Join(data, dst))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s in the package differs from %s (%v)", dst, src, err)
		}
	}
	// The changelog is gzip without a name or time (lintian: package-contains-timestamped-gzip).
	gz, err := os.ReadFile(filepath.Join(data, "usr/share/doc/rpi-deploy/changelog.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if len(gz) < 10 || !bytes.Equal(gz[4:8], []byte{0, 0, 0, 0}) || gz[3]&0x08 != 0 {
		t.Errorf("changelog.gz header % x has a time or a name", gz[:10])
	}
}

// The same inputs give the same bytes (every mtime is the commit's).
func TestBuildReproducible(t *testing.T) {
	o := fixture(t)
	a, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	b, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	second, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Error("two builds of the same inputs differ")
	}
}

// Bad input is a clear error and leaves nothing in the output directory.
func TestBuildErrors(t *testing.T) {
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, o *options)
		want   string
	}{
		{"unknown architecture", func(t *testing.T, o *options) { o.Arch = "riscv64" }, `architecture "riscv64"`},
		{"binaries of the other architecture", func(t *testing.T, o *options) { o.Arch = other }, "is for"},
		{"missing binary", func(t *testing.T, o *options) { os.Remove(filepath.Join(o.BinDir, "rpi-agent")) }, "rpi-agent: no such file"},
		{"binary not executable", func(t *testing.T, o *options) { os.Chmod(filepath.Join(o.BinDir, "rpi-image"), 0o644) }, "is not executable"},
		{"binary not ELF", func(t *testing.T, o *options) {
			os.WriteFile(filepath.Join(o.BinDir, "rpi-deployd"), []byte("#!/bin/sh\n"), 0o755)
		}, "not an ELF executable"},
		{"bad version", func(t *testing.T, o *options) { o.Version = "v1.0" }, "not a Debian version"},
		{"underivable version", func(t *testing.T, o *options) { o.Describe = "dev" }, "set DEB_VERSION"},
		{"missing initramfs", func(t *testing.T, o *options) { o.Initramfs = "build/no-such-initramfs" }, "no such file"},
		{"empty initramfs", func(t *testing.T, o *options) {
			o.Initramfs = filepath.Join(t.TempDir(), "empty")
			os.WriteFile(o.Initramfs, nil, 0o644)
		}, "not a non-empty regular file"},
		{"missing man page", func(t *testing.T, o *options) { os.Remove(filepath.Join(o.ManDir, "rpi-image.1")) }, "rpi-image.1: no such file"},
		{"unknown variable in the configuration", func(t *testing.T, o *options) {
			cfg := filepath.Join(t.TempDir(), "nfpm.yaml")
			os.WriteFile(cfg, []byte("name: rpi-deploy\narch: ${ARCH}\nversion: ${VERSON}\nversion_schema: none\n"), 0o644)
			o.Config = cfg
		}, "unknown variables VERSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := fixture(t)
			tc.change(t, &o)
			path, err := build(o)
			if err == nil {
				t.Fatalf("built %s", path)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			left, _ := os.ReadDir(o.OutDir)
			if len(left) > 0 {
				t.Errorf("left in the output directory: %v", left)
			}
		})
	}
}

// The command line: the path on stdout, exit 0; a bad flag value: a message, exit 2.
func TestRun(t *testing.T) {
	o := fixture(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1796412600") // 2026-12-04 19:30:00 UTC
	var stdout, stderr bytes.Buffer
	code := run([]string{"-arch", o.Arch, "-bin", o.BinDir, "-man", o.ManDir, "-describe", "v1.2.3-4-gdeadbee", "-o", o.OutDir}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := filepath.Join(o.OutDir, "rpi-deploy_1.2.3+git4.deadbee_"+runtime.GOARCH+".deb") + "\n"
	if stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	if got := dpkgDeb(t, "-I", strings.TrimSpace(stdout.String())); !strings.Contains(got, "Version: 1.2.3+git4.deadbee") {
		t.Errorf("dpkg-deb -I:\n%s", got)
	}

	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"-arch", o.Arch}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "SOURCE_DATE_EPOCH") {
		t.Errorf("bad SOURCE_DATE_EPOCH: exit %d, %q", code, stderr.String())
	}
}
