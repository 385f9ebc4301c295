package eeprom

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rpi-deploy/rpi-deploy/image-tools/eeprom/eepromtest"
)

func realImage(t *testing.T) (*Image, []byte) {
	t.Helper()
	b, err := os.ReadFile(eepromtest.Pieeprom(t))
	if err != nil {
		t.Fatal(err)
	}
	im, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(Raspberry Pi's image): %v", err)
	}
	return im, b
}

// The factory config we read is what Raspberry Pi's tool prints.
func TestConfigOfRealImage(t *testing.T) {
	im, _ := realImage(t)
	want := eepromtest.Tool(t, nil, "rpi-eeprom-config", eepromtest.Pieeprom(t))
	if diff := cmp.Diff(string(want), string(im.Config())); diff != "" {
		t.Errorf("config (-rpi-eeprom-config +ours):\n%s", diff)
	}
	built, ok := im.Built()
	if !ok || built.Format("2006-01-02") != "2026-05-26" {
		t.Errorf("Built() = %v, %v; want 2026-05-26 (the file's name)", built, ok)
	}
	if v := im.Version(); v != "bootloader 2026-05-26" {
		t.Errorf("Version() = %q", v)
	}
}

// Version names what an older bootloader lacks, by its build timestamp (the real
// image with only the timestamp's digits changed).
func TestVersionOfOlderBootloaders(t *testing.T) {
	_, real := realImage(t)
	cases := []struct{ stamp, want string }{
		{"1779807685", "bootloader 2026-05-26"},
		{"1750000000", "bootloader 2025-06-15; lacks TFTP files above 96 MB (needs 2025-09-23)"},
		{"1700000000", "bootloader 2023-11-14; lacks set_reboot_order (needs 2025-01-22), TFTP files above 96 MB (needs 2025-09-23)"},
		{"1690000000", "bootloader 2023-07-22; lacks DHCP option 97 with the serial (needs 2023-10-30), set_reboot_order (needs 2025-01-22), TFTP files above 96 MB (needs 2025-09-23)"},
	}
	for _, c := range cases {
		b := bytes.Replace(real, []byte("BUILD_TIMESTAMP=1779807685"), []byte("BUILD_TIMESTAMP="+c.stamp), 1)
		im, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if got := im.Version(); got != c.want {
			t.Errorf("timestamp %s: Version() = %q, want %q", c.stamp, got, c.want)
		}
	}
}

// For the same config, our image is byte for byte what rpi-eeprom-config --config
// --out writes, and rpi-eeprom-config reads our config back unchanged.
func TestWithConfigMatchesRpiEepromConfig(t *testing.T) {
	im, _ := realImage(t)
	long := DefaultConfig()
	for i := 0; len(long.Bytes()) < MaxConfigSize-40; i++ {
		long.Settings = append(long.Settings, Setting{"TFTP_PREFIX_STR", fmt.Sprintf("board-%04d/", i)})
	}
	cases := map[string][]byte{
		"default":        DefaultConfig().Bytes(),
		"imager network": eepromtest.ReadFile(t, "boot-conf-network.txt"),
		"shorter":        []byte("[all]\nBOOT_ORDER=0xf21\n"),
		"one byte":       []byte("\n"),
		"near the limit": long.Bytes(),
		"exactly max":    bytes.Repeat([]byte("#"), MaxConfigSize),
	}
	dir := t.TempDir()
	for name, conf := range cases {
		t.Run(name, func(t *testing.T) {
			confPath := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".txt")
			outPath := confPath + ".bin"
			if err := os.WriteFile(confPath, conf, 0o644); err != nil {
				t.Fatal(err)
			}
			eepromtest.Tool(t, nil, "rpi-eeprom-config", "--config", confPath, "--out", outPath, eepromtest.Pieeprom(t))
			want, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatal(err)
			}
			got, err := im.WithConfig(conf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("image differs from rpi-eeprom-config's at byte %d", firstDiff(got, want))
			}
			ours := filepath.Join(dir, "ours.bin")
			if err := os.WriteFile(ours, got, 0o644); err != nil {
				t.Fatal(err)
			}
			if read := eepromtest.Tool(t, nil, "rpi-eeprom-config", ours); !bytes.Equal(read, conf) {
				t.Errorf("rpi-eeprom-config reads %q from our image, want %q", read, conf)
			}
			again, err := Parse(got)
			if err != nil {
				t.Fatalf("Parse(our image): %v", err)
			}
			if !bytes.Equal(again.Config(), conf) {
				t.Errorf("Config() of our image = %q", again.Config())
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestWithConfigTooLarge(t *testing.T) {
	im, orig := realImage(t)
	before := append([]byte(nil), orig...)
	if _, err := im.WithConfig(bytes.Repeat([]byte("#"), MaxConfigSize+1)); err == nil {
		t.Fatal("a config of MaxConfigSize+1 bytes was embedded")
	}
	if !bytes.Equal(before, orig) {
		t.Error("a failed WithConfig changed the image it was given")
	}
}

// Files that are not a Pi 5 bootloader image are refused with a reason.
func TestParseRefuses(t *testing.T) {
	im, real := realImage(t)
	conf := -1
	for _, s := range im.Sections() {
		if s.Name == ConfigFile {
			conf = s.Offset
		}
	}
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), real...)) }
	recovery := eepromtest.ReadFile(t, "recovery.bin")
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "0 bytes"},
		{"truncated", real[:ImageSize-4096], "2093056 bytes"},
		{"Pi 4 size", real[:512<<10], "a Pi 4 one has"},
		{"recovery.bin", recovery, "105396 bytes"},
		{"zeroed", make([]byte, ImageSize), "no sections"},
		{"erased", bytes.Repeat([]byte{0xff}, ImageSize), "no sections"},
		{"bad first magic", mod(func(b []byte) []byte { b[0] = 0x12; return b }), "no section magic at byte 0"},
		{"first is a file", mod(func(b []byte) []byte { b[2], b[3] = 0xf1, 0x1f; return b }), "not the boot code"},
		{"length past end", mod(func(b []byte) []byte { b[4] = 0x7f; return b }), "past the end"},
		{"config renamed", mod(func(b []byte) []byte {
			copy(b[conf+8:], "bootconf.txX")
			return b
		}), "no bootconf.txt section"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.in)
			if !errors.Is(err, ErrNotBootloader) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse = %v; want ErrNotBootloader saying %q", err, c.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		key, value string
		want       error
		says       string
	}{
		{"BOOT_ORDER", "0xf21", nil, ""},
		{"BOOT_ORDER", "0xF12", nil, ""},
		{"BOOT_ORDER", "0xf461", nil, ""},
		{"BOOT_ORDER", "0xf291", ErrBadValue, `digit '9' is not a boot mode`},
		{"BOOT_ORDER", "0xf2a1", ErrBadValue, `digit 'a' is not a boot mode`},
		{"BOOT_ORDER", "f21", ErrBadValue, "not 0x"},
		{"BOOT_ORDER", "0x", ErrBadValue, "not 0x"},
		{"BOOT_ORDER", "0x1234567f1", ErrBadValue, "eight"},
		{"BOOT_ORDR", "0xf21", ErrUnknownKey, `"BOOT_ORDR"`},
		{"boot_order", "0xf21", ErrUnknownKey, `"boot_order"`},
		{"TFTP_FILE_TIMEOUT", "1000", ErrBadValue, "below the minimum 5000"},
		{"TFTP_FILE_TIMEOUT", "5m", ErrBadValue, "not a number"},
		{"NET_BOOT_MAX_RETRIES", "-1", nil, ""},
		{"NET_BOOT_MAX_RETRIES", "-2", ErrBadValue, "-1 means forever"},
		{"TFTP_PREFIX_STR", "a\nBOOT_ORDER=0x1", ErrBadValue, "line break"},
		{"HTTP_HOST", "deploy.example", nil, ""},
	}
	for _, c := range cases {
		t.Run(c.key+"="+c.value, func(t *testing.T) {
			err := Check(c.key, c.value)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Check = %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("Check = %v; want %v saying %q", err, c.want, c.says)
			}
		})
	}
}

func TestConfigSet(t *testing.T) {
	c := DefaultConfig()
	for _, kv := range []string{"BOOT_ORDER=0xf12", "TFTP_PREFIX=2", " HDMI_DELAY = 0 "} {
		if err := c.SetLine(kv); err != nil {
			t.Fatal(err)
		}
	}
	want := "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf12\nNET_INSTALL_ENABLED=0\nNET_INSTALL_AT_POWER_ON=0\n" +
		"DHCP_TIMEOUT=45000\nDHCP_REQ_TIMEOUT=4000\nTFTP_FILE_TIMEOUT=300000\nNET_BOOT_MAX_RETRIES=-1\nTFTP_PREFIX=2\nHDMI_DELAY=0\n"
	if diff := cmp.Diff(want, string(c.Bytes())); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if err := c.SetLine("NOPE"); !errors.Is(err, ErrBadValue) {
		t.Errorf("SetLine(NOPE) = %v", err)
	}
	if err := c.SetLine("WIFI_PSK=x"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("SetLine(WIFI_PSK=x) = %v", err)
	}
}

// The card: MBR with one FAT32 partition that fsck.fat passes; recovery.bin as
// given; pieeprom.bin that rpi-eeprom-config reads our config from; pieeprom.sig
// byte for byte what rpi-eeprom-digest writes for the same timestamp.
func TestBuildCard(t *testing.T) {
	fw, err := LoadFirmware(eepromtest.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	if fw.Name != "pieeprom-2026-05-26.bin" {
		t.Errorf("firmware name %q", fw.Name)
	}
	conf := DefaultConfig()
	if err := conf.Set("TFTP_PREFIX", "2"); err != nil {
		t.Fatal(err)
	}
	stamp := time.Date(2026, 12, 4, 20, 30, 0, 0, time.UTC)
	for _, stop := range []bool{false, true} {
		card, err := BuildCard(fw, CardOptions{Config: &conf, Time: stamp, Stop: stop})
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{false: UpdateName, true: StopName}[stop]
		if card.Name != want {
			t.Errorf("Stop=%v: card.Name = %q, want %q", stop, card.Name, want)
		}
		img := filepath.Join(t.TempDir(), "card.img")
		if err := os.WriteFile(img, card.Image, 0o644); err != nil {
			t.Fatal(err)
		}
		eepromtest.CheckCard(t, img, want, conf.Bytes(), stamp)
	}
}

func TestLoadFirmwareRefuses(t *testing.T) {
	ref := eepromtest.Dir(t)
	pie := eepromtest.ReadFile(t, "pieeprom-2026-05-26.bin")
	rec := eepromtest.ReadFile(t, "recovery.bin")
	write := func(dir, name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		setup func(dir string) string
		want  string
	}{
		{"missing path", func(dir string) string { return filepath.Join(dir, "nope") }, "github.com/raspberrypi/rpi-eeprom"},
		{"empty folder", func(dir string) string { return dir }, "no pieeprom.bin or pieeprom-*.bin"},
		{"no recovery.bin", func(dir string) string { write(dir, "pieeprom.bin", pie); return dir }, "recovery.bin must lie beside"},
		{"truncated", func(dir string) string {
			write(dir, "pieeprom.bin", pie[:1<<20])
			write(dir, "recovery.bin", rec)
			return filepath.Join(dir, "pieeprom.bin")
		}, "1048576 bytes"},
		{"recovery swapped", func(dir string) string {
			write(dir, "pieeprom.bin", rec)
			write(dir, "recovery.bin", pie)
			return dir
		}, "105396 bytes"},
		{"recovery is the image", func(dir string) string {
			write(dir, "pieeprom.bin", pie)
			write(dir, "recovery.bin", pie)
			return dir
		}, "recovery.bin is a bootloader image"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadFirmware(c.setup(t.TempDir()))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("LoadFirmware = %v; want an error saying %q", err, c.want)
			}
		})
	}
	if fw, err := LoadFirmware(filepath.Join(ref, "pieeprom-2026-05-26.bin")); err != nil || fw.Name != "pieeprom-2026-05-26.bin" {
		t.Errorf("LoadFirmware(FILE) = %v, %v", fw, err)
	}
}
