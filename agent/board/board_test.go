package board

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
)

// fakePi writes the files a Pi 5 has (contents as on real boards).
func fakePi(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, s := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const cpuinfoPi5 = "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n\nRevision\t: d04170\nSerial\t\t: 6e0cb1a2d64e1f3b\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n"

func TestIdentify(t *testing.T) {
	full := map[string]string{
		"proc/device-tree/serial-number": "6e0cb1a2d64e1f3b\x00",
		"proc/device-tree/model":         "Raspberry Pi 5 Model B Rev 1.0\x00",
		"proc/cpuinfo":                   cpuinfoPi5,
		"sys/class/net/eth0/address":     "2C:CF:67:00:00:01\n",
		"sys/block/mmcblk0/size":         "62333952\n",
		"sys/block/mmcblk0/device/cid":   "9f544953443332474230ff0d84016f00\n",
	}
	want := agentapi.Hello{Serial: "6e0cb1a2d64e1f3b", MAC: "2c:cf:67:00:00:01", Model: "Raspberry Pi 5 Model B Rev 1.0", Revision: "d04170",
		Disk: agentapi.Disk{Device: "/dev/mmcblk0", SizeBytes: 62333952 * 512, CID: "9f544953443332474230ff0d84016f00"}}
	t.Run("pi5", func(t *testing.T) {
		got, err := Identify(Options{Root: fakePi(t, full)})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("(-want +got)\n%s", d)
		}
	})
	t.Run("cpuinfo only", func(t *testing.T) {
		files := map[string]string{"proc/cpuinfo": cpuinfoPi5, "sys/class/net/eth0/address": "2c:cf:67:00:00:01"}
		got, err := Identify(Options{Root: fakePi(t, files), Target: "/nonexistent/card.img"})
		if err != nil {
			t.Fatal(err)
		}
		if got.Serial != want.Serial || got.Model != want.Model {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("host mode overrides", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "card.img")
		os.WriteFile(target, make([]byte, 8192), 0o644)
		got, err := Identify(Options{Root: t.TempDir(), Target: target, Serial: "00000000ABCD1234", MAC: "02-00-00-00-00-07"})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(agentapi.Hello{Serial: "00000000abcd1234", MAC: "02:00:00:00:00:07", Disk: agentapi.Disk{Device: target, SizeBytes: 8192}}, got); d != "" {
			t.Errorf("(-want +got)\n%s", d)
		}
	})
	t.Run("no serial", func(t *testing.T) {
		if _, err := Identify(Options{Root: t.TempDir(), MAC: "02:00:00:00:00:07"}); !errors.Is(err, ErrNoSerial) {
			t.Errorf("err = %v, want ErrNoSerial", err)
		}
	})
	t.Run("bad serial", func(t *testing.T) {
		if _, err := Identify(Options{Root: t.TempDir(), Serial: "xyz", MAC: "02:00:00:00:00:07"}); err == nil {
			t.Error("accepted serial xyz")
		}
	})
}
