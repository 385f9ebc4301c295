// Package eepromtest finds Raspberry Pi's own bootloader files and tools for tests:
// pieeprom-*.bin, recovery.bin, rpi-eeprom-config and rpi-eeprom-digest from the
// public raspberrypi/rpi-eeprom repository, kept beside the clone (not in it) at
// ../shared/reference/rpi-eeprom relative to the repository root (or in a folder
// further up, for a worktree).
package eepromtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
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

// Recovery is the path of Raspberry Pi's recovery.bin.
func Recovery(t testing.TB) string { return filepath.Join(Dir(t), "recovery.bin") }

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
