package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/eeprom"
	"github.com/rpi-deploy/rpi-deploy/image-tools/eeprom/eepromtest"
)

const cardStamp = 1796416200 // 2026-12-04 20:30 UTC

func eepromCard(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"eeprom-card"}, args...), &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// The card from the CLI (--stop: pieeprom.bin, as Raspberry Pi's recovery images):
// our defaults with the overrides, held to Raspberry Pi's tools
// (eepromtest.CheckCard); the output names the bootloader version.
func TestEepromCardCLI(t *testing.T) {
	out := filepath.Join(t.TempDir(), "card.img")
	stdout, stderr, err := eepromCard(t, "--firmware", eepromtest.Dir(t), "--boot-order", "0xf12",
		"--set", "TFTP_PREFIX=2", "--set", "DHCP_TIMEOUT=60000", "--stop", "--timestamp", "1796416200", "-o", out)
	if err != nil {
		t.Fatalf("eeprom-card: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "pieeprom-2026-05-26.bin as pieeprom.bin, bootloader 2026-05-26") {
		t.Errorf("output does not name the bootloader:\n%s", stdout)
	}
	want := "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf12\nNET_INSTALL_ENABLED=0\nNET_INSTALL_AT_POWER_ON=0\n" +
		"DHCP_TIMEOUT=60000\nDHCP_REQ_TIMEOUT=4000\nTFTP_FILE_TIMEOUT=300000\nNET_BOOT_MAX_RETRIES=-1\nTFTP_PREFIX=2\n"
	if !strings.Contains(stdout, want) {
		t.Errorf("output lacks the embedded config %q:\n%s", want, stdout)
	}
	eepromtest.CheckCard(t, out, "pieeprom.bin", []byte(want), time.Unix(cardStamp, 0))
}

// Bad input: an error that names the problem, and no card image (nor a temporary
// file) left behind; an existing file at -o is left as it was.
func TestEepromCardBadInput(t *testing.T) {
	ref := eepromtest.Dir(t)
	pie := eepromtest.ReadFile(t, "pieeprom-2026-05-26.bin")
	rec := eepromtest.ReadFile(t, "recovery.bin")
	fwDir := func(t *testing.T, pieeprom []byte) string {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, "pieeprom-2026-05-26.bin"), pieeprom, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "recovery.bin"), rec, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	cases := []struct {
		name string
		args func(t *testing.T) []string
		want string
		is   error
	}{
		{"truncated firmware", func(t *testing.T) []string { return []string{"--firmware", fwDir(t, pie[:len(pie)-1000])} },
			"2096152 bytes, a Pi 5 bootloader image has 2097152", eeprom.ErrNotBootloader},
		{"wrong firmware", func(t *testing.T) []string {
			return []string{"--firmware", fwDir(t, bytes.Repeat([]byte("not firmware"), len(pie)/12+1)[:len(pie)])}
		}, "no section magic at byte 0", eeprom.ErrNotBootloader},
		{"no firmware", func(t *testing.T) []string { return []string{"--firmware", t.TempDir()} },
			"github.com/raspberrypi/rpi-eeprom", eeprom.ErrNoFirmware},
		{"firmware flag missing", func(t *testing.T) []string { return nil }, "needs --firmware", errUsage},
		{"unknown key", func(t *testing.T) []string { return []string{"--firmware", ref, "--set", "BOOT_ORDR=0xf21"} },
			`unknown bootloader config key "BOOT_ORDR"`, eeprom.ErrUnknownKey},
		{"boot order digit", func(t *testing.T) []string { return []string{"--firmware", ref, "--boot-order", "0xf281"} },
			`digit '8' is not a boot mode`, eeprom.ErrBadValue},
		{"boot order digit via set", func(t *testing.T) []string { return []string{"--firmware", ref, "--set", "BOOT_ORDER=0xc21"} },
			`digit 'c' is not a boot mode`, eeprom.ErrBadValue},
		{"timeout below minimum", func(t *testing.T) []string {
			return []string{"--firmware", ref, "--set", "TFTP_FILE_TIMEOUT=100"}
		}, "below the minimum 5000", eeprom.ErrBadValue},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "card.img")
			_, _, err := eepromCard(t, append(c.args(t), "-o", out)...)
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("eeprom-card = %v; want %v saying %q", err, c.is, c.want)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
	t.Run("existing card kept", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "card.img")
		if err := os.WriteFile(out, []byte("an older card"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := eepromCard(t, "--firmware", ref, "--set", "NOPE=1", "-o", out); err == nil {
			t.Fatal("an unknown key was accepted")
		}
		if b, _ := os.ReadFile(out); string(b) != "an older card" {
			t.Errorf("the existing file at -o was changed: %q", b)
		}
	})
}

// rpi-image write puts the card on two loop devices ("card readers") at once; each
// then holds the card, byte for byte, and passes the card checks.
func TestWriteCardCLI(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root for losetup (run as root, as CI does)")
	}
	dir := t.TempDir()
	card := filepath.Join(dir, "card.img")
	if _, stderr, err := eepromCard(t, "--firmware", eepromtest.Dir(t), "--timestamp", "1796416200", "-o", card); err != nil {
		t.Fatalf("eeprom-card: %v\n%s", err, stderr)
	}
	var devs []string
	for i := range 2 {
		backing := filepath.Join(dir, "reader"+string(rune('0'+i)))
		if err := os.WriteFile(backing, bytes.Repeat([]byte{0xa5}, 64<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("losetup", "--find", "--show", backing).CombinedOutput()
		if err != nil {
			t.Fatalf("losetup: %v: %s", err, out)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
		devs = append(devs, dev)
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), append([]string{"write", card}, devs...), &stdout, &stderr); err != nil {
		t.Fatalf("write: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "writing and reading back 2 cards: done") {
		t.Errorf("no progress report:\n%s", stderr.String())
	}
	want, err := os.ReadFile(card)
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range devs {
		if !strings.Contains(stdout.String(), dev+": OK") {
			t.Errorf("no OK line for %s:\n%s", dev, stdout.String())
		}
		f, err := os.Open(dev)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want))
		_, err = f.ReadAt(got, 0)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s does not hold the card", dev)
		}
		copyPath := filepath.Join(dir, filepath.Base(dev)+".img")
		if err := os.WriteFile(copyPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		eepromtest.CheckCard(t, copyPath, "pieeprom.upd", eeprom.DefaultConfig().Bytes(), time.Unix(cardStamp, 0))
	}
}
