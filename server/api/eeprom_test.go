package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/eeprom"
	"github.com/rpi-deploy/rpi-deploy/image-tools/eeprom/eepromtest"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// curl runs the real curl against the server and returns the HTTP status and body.
func curl(t *testing.T, args ...string) (int, []byte) {
	t.Helper()
	return curlTo(t, filepath.Join(t.TempDir(), "body"), args...)
}

// curlTo is curl with the body saved at out.
func curlTo(t *testing.T, out string, args ...string) (int, []byte) {
	t.Helper()
	cmd := exec.Command("curl", append([]string{"-sS", "-o", out, "-w", "%{http_code}"}, args...)...)
	code, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	body, _ := os.ReadFile(out)
	var status int
	for _, c := range strings.TrimSpace(string(code)) {
		status = status*10 + int(c-'0')
	}
	return status, body
}

// The operator uploads Raspberry Pi's firmware with curl; the server builds the card
// with the same code as rpi-image eeprom-card, and the card downloaded from it holds
// to Raspberry Pi's tools. Bad firmware or an unknown key is a 400 naming the problem
// and the card on offer stays as it was.
func TestEEPROMCardUploadDownload(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	ref := eepromtest.Dir(t)
	auth := "Authorization: Bearer " + srv.Token
	u := srv.URL + "/api/v1/eeprom/"

	if code, body := curl(t, "-H", auth, u+"card"); code != 404 || !strings.Contains(string(body), "no bootloader firmware uploaded yet") {
		t.Fatalf("card before any upload: HTTP %d %s", code, body)
	}
	if code, _ := curl(t, "-X", "PUT", "-F", "pieeprom=@"+filepath.Join(ref, "pieeprom-2026-05-26.bin"),
		"-F", "recovery=@"+filepath.Join(ref, "recovery.bin"), u+"firmware"); code != 401 {
		t.Fatalf("upload without a credential: HTTP %d", code)
	}

	code, body := curl(t, "-H", auth, "-X", "PUT",
		"-F", "pieeprom=@"+filepath.Join(ref, "pieeprom-2026-05-26.bin"),
		"-F", "recovery=@"+filepath.Join(ref, "recovery.bin"),
		"-F", "config=TFTP_PREFIX=2\nHDMI_DELAY=0", u+"firmware")
	if code != 200 {
		t.Fatalf("upload: HTTP %d %s", code, body)
	}
	var info domain.EEPROMCard
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	conf := eeprom.DefaultConfig()
	conf.Set("TFTP_PREFIX", "2")
	conf.Set("HDMI_DELAY", "0")
	if info.Firmware != "pieeprom-2026-05-26.bin" || info.Version != "bootloader 2026-05-26" || info.Config != string(conf.Bytes()) {
		t.Errorf("card info %+v", info)
	}

	card := filepath.Join(t.TempDir(), "card.img")
	hdr := filepath.Join(t.TempDir(), "headers")
	if code, _ := curlTo(t, card, "-H", auth, "-D", hdr, u+"card.img"); code != 200 {
		t.Fatalf("download: HTTP %d", code)
	}
	img, err := os.ReadFile(card)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(img)
	if hex.EncodeToString(sum[:]) != info.SHA256 || int64(len(img)) != info.Size {
		t.Errorf("downloaded card: %d bytes sha256 %x; info says %d, %s", len(img), sum, info.Size, info.SHA256)
	}
	if h, _ := os.ReadFile(hdr); !strings.Contains(string(h), `filename="rpi-deploy-eeprom-card-2026-05-26.img"`) {
		t.Errorf("headers:\n%s", h)
	}
	eepromtest.CheckCard(t, card, "pieeprom.upd", conf.Bytes(), info.Built)

	pie := eepromtest.ReadFile(t, "pieeprom-2026-05-26.bin")
	bad := filepath.Join(t.TempDir(), "pieeprom-bad.bin")
	if err := os.WriteFile(bad, pie[:len(pie)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		form []string
		want string
	}{
		{"truncated firmware", []string{"-F", "pieeprom=@" + bad, "-F", "recovery=@" + filepath.Join(ref, "recovery.bin")}, "1048576 bytes, a Pi 5 bootloader image has 2097152"},
		{"recovery as firmware", []string{"-F", "pieeprom=@" + filepath.Join(ref, "recovery.bin"), "-F", "recovery=@" + filepath.Join(ref, "recovery.bin")}, "not a Raspberry Pi 5 bootloader image"},
		{"unknown key", []string{"-F", "pieeprom=@" + filepath.Join(ref, "pieeprom-2026-05-26.bin"), "-F", "recovery=@" + filepath.Join(ref, "recovery.bin"), "-F", "config=BOOT_ORDR=0xf21"}, `unknown bootloader config key \"BOOT_ORDR\"`},
		{"bad boot order", []string{"-F", "pieeprom=@" + filepath.Join(ref, "pieeprom-2026-05-26.bin"), "-F", "recovery=@" + filepath.Join(ref, "recovery.bin"), "-F", "config=BOOT_ORDER=0xf291"}, "is not a boot mode"},
		{"no recovery", []string{"-F", "pieeprom=@" + filepath.Join(ref, "pieeprom-2026-05-26.bin")}, `form field \"recovery\"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := curl(t, append(append([]string{"-H", auth, "-X", "PUT"}, c.form...), u+"firmware")...)
			if code != 400 || !strings.Contains(string(body), c.want) {
				t.Fatalf("HTTP %d %s; want 400 saying %q", code, body, c.want)
			}
			code, body = curl(t, "-H", auth, u+"card")
			var now domain.EEPROMCard
			if code != 200 || json.Unmarshal(body, &now) != nil || now.SHA256 != info.SHA256 {
				t.Errorf("the card on offer changed after a refused upload: HTTP %d %s", code, body)
			}
			after, err := os.ReadFile(filepath.Join(srv.DataDir, "eeprom", "card.img"))
			if err != nil || !bytes.Equal(after, img) {
				t.Errorf("card.img on disk changed after a refused upload (%v)", err)
			}
		})
	}
}
