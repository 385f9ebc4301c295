// Package eepromtest finds Raspberry Pi's own bootloader files and tools for tests:
// pieeprom-*.bin, recovery.bin, rpi-eeprom-config and rpi-eeprom-digest from the
// public raspberrypi/rpi-eeprom repository, kept beside the clone (not in it) at
// ../shared/reference/rpi-eeprom relative to the repository root (or in a folder
// further up, for a worktree).
package eepromtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Dir returns the folder of Raspberry Pi's files; the test fails if it is missing.
func Dir(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			// ../shared beside the clone (CI); a git worktree may sit a level deeper.
			for up := filepath.Dir(d); ; up = filepath.Dir(up) {
				ref := filepath.Join(up, "shared", "reference", "rpi-eeprom")
				if _, err := os.Stat(filepath.Join(ref, "rpi-eeprom-config")); err == nil {
					return ref
				}
				if filepath.Dir(up) == up {
					t.Fatalf("Raspberry Pi's bootloader files are missing: no shared/reference/rpi-eeprom/rpi-eeprom-config beside the repository root %s or above it", d)
				}
			}
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", wd)
		}
	}
}

// Pieeprom is the path of Raspberry Pi's Pi 5 bootloader image.
func Pieeprom(t testing.TB) string { return filepath.Join(Dir(t), "pieeprom-2026-05-26.bin") }

// ReadFile reads one of Raspberry Pi's files by name.
func ReadFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Tool runs one of Raspberry Pi's scripts (rpi-eeprom-config with python3,
// rpi-eeprom-digest with sh) with env added to the environment, and returns its
// standard output; the test fails if it exits non-zero.
func Tool(t testing.TB, env []string, name string, args ...string) []byte {
	t.Helper()
	interp := "sh"
	if name == "rpi-eeprom-config" {
		interp = "python3"
	}
	cmd := exec.Command(interp, append([]string{filepath.Join(Dir(t), name)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.Bytes())
	}
	return out
}

// CheckCard holds a card image to Raspberry Pi's tools and the real FAT tools: an MBR
// with one FAT32 partition (type 0x0c) from sector 2048 that fsck.fat -n passes and
// minfo calls FAT32; recovery.bin identical to Raspberry Pi's; the bootloader image
// (name: pieeprom.upd or pieeprom.bin, the other absent) from which rpi-eeprom-config
// prints exactly conf and that is byte for byte what rpi-eeprom-config --config --out
// makes of Raspberry Pi's image with conf; pieeprom.sig byte for byte what
// rpi-eeprom-digest writes for it with SOURCE_DATE_EPOCH=stamp.
func CheckCard(t testing.TB, img, name string, conf []byte, stamp time.Time) {
	t.Helper()
	dir := t.TempDir()
	out := func(name string, args ...string) string {
		t.Helper()
		b, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, b)
		}
		return string(b)
	}
	table := out("sfdisk", "--dump", img)
	if !strings.Contains(table, "label: dos") || !strings.Contains(table, "start=        2048") || !strings.Contains(table, "type=c") {
		t.Errorf("partition table:\n%s", table)
	}
	part := fmt.Sprintf("%s@@%d", img, 2048*512)
	whole := mustRead(t, img)
	partFile := filepath.Join(dir, "part.img")
	if err := os.WriteFile(partFile, whole[2048*512:], 0o644); err != nil {
		t.Fatal(err)
	}
	fsck := out("fsck.fat", "-n", "-v", partFile)
	t.Logf("fsck.fat -n -v:\n%s", fsck)
	if !strings.Contains(fsck, "2 FATs, 32 bit entries") { // and exit status 0: nothing to fix
		t.Errorf("fsck.fat does not call it FAT32:\n%s", fsck)
	}
	if info := out("minfo", "-i", part, "::"); !strings.Contains(info, "fat_bits=32") && !strings.Contains(info, "FAT32") {
		t.Errorf("minfo does not call it FAT32:\n%s", info)
	}
	listing := out("mdir", "-b", "-i", part, "::/")
	other := map[string]string{"pieeprom.upd": "pieeprom.bin", "pieeprom.bin": "pieeprom.upd"}[name]
	if other == "" {
		t.Fatalf("CheckCard: name %q is neither pieeprom.upd nor pieeprom.bin", name)
	}
	if strings.Contains(listing, other) {
		t.Errorf("the card holds %s besides %s:\n%s", other, name, listing)
	}
	for _, f := range []string{"recovery.bin", name, "pieeprom.sig", "README.txt"} {
		if !strings.Contains(listing, f) {
			t.Errorf("the card lacks %s:\n%s", f, listing)
		}
		out("mcopy", "-n", "-i", part, "::/"+f, filepath.Join(dir, f))
	}
	if got, want := mustRead(t, filepath.Join(dir, "recovery.bin")), ReadFile(t, "recovery.bin"); !bytes.Equal(got, want) {
		t.Error("recovery.bin on the card differs from Raspberry Pi's")
	}
	pie := filepath.Join(dir, name)
	if got := Tool(t, nil, "rpi-eeprom-config", pie); !bytes.Equal(got, conf) {
		t.Errorf("rpi-eeprom-config prints %q from the card's %s, want %q", got, name, conf)
	}
	// Byte for byte what Raspberry Pi's tool makes of its own image and the same config.
	confFile, toolOut := filepath.Join(dir, "bootconf.txt"), filepath.Join(dir, "tool.bin")
	if err := os.WriteFile(confFile, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	Tool(t, nil, "rpi-eeprom-config", "--config", confFile, "--out", toolOut, Pieeprom(t))
	if !bytes.Equal(mustRead(t, pie), mustRead(t, toolOut)) {
		t.Errorf("the card's %s differs from rpi-eeprom-config --config --out of the same config", name)
	}
	digest := filepath.Join(dir, "digest.sig")
	Tool(t, []string{fmt.Sprintf("SOURCE_DATE_EPOCH=%d", stamp.Unix())}, "rpi-eeprom-digest", "-i", pie, "-o", digest)
	if got, want := mustRead(t, filepath.Join(dir, "pieeprom.sig")), mustRead(t, digest); !bytes.Equal(got, want) {
		t.Errorf("pieeprom.sig = %q, rpi-eeprom-digest writes %q", got, want)
	}
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
