package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/agent/mailbox"
)

// TestNextBootFromCardWithoutVcio: on a host without /dev/vcio (as in QEMU) the agent
// says in its log that the EEPROM decides, and goes on to reboot.
func TestNextBootFromCardWithoutVcio(t *testing.T) {
	if _, err := os.Stat("/dev/vcio"); err == nil {
		t.Skip("/dev/vcio exists: this is a Raspberry Pi; the test would change its next boot")
	}
	var buf bytes.Buffer
	nextBootFromCard(slog.New(slog.NewTextHandler(&buf, nil)), "boot_local", mailbox.SetRebootOrder)
	if got := buf.String(); !strings.Contains(got, "level=INFO") || !strings.Contains(got, "no /dev/vcio") || !strings.Contains(got, "why=boot_local") {
		t.Errorf("log = %q", got)
	}
}

// TestNextBootFromCardOrder: the order asked for is SD first, then network (0xf21),
// and a firmware refusal is a warning that names the consequence, not a failure.
func TestNextBootFromCardOrder(t *testing.T) {
	var asked uint32
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	nextBootFromCard(log, "verified flash", func(o uint32) error { asked = o; return nil })
	if asked != 0xf21 || !strings.Contains(buf.String(), "SD card first") {
		t.Errorf("asked %#x, log %q", asked, buf.String())
	}
	buf.Reset()
	nextBootFromCard(log, "verified flash", func(uint32) error { return errors.Join(mailbox.ErrRejected) })
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "BOOT_ORDER=0xf12") {
		t.Errorf("log after a refusal = %q", buf.String())
	}
}
