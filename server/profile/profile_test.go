package profile

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// realKey is a public key made by the real ssh-keygen (ssh-keygen -t ed25519).
const realKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXO/TsO7aCl0VCp1X/G8E/9Rz00SKuaqfA3VbDpv7JL op@deploy"

func valid() Input {
	return Input{Profile: Profile{Name: "kiosk", User: "kiosk", SSHKeys: []string{realKey}, Locale: "en_GB.UTF-8",
		Timezone: "Europe/London", Keyboard: "gb", RunOnce: []string{"touch /var/lib/kiosk/first"},
		Files: []File{{Path: "/etc/kiosk/board.conf", Mode: "0640", Owner: "kiosk:kiosk", Content: "name={{.Hostname}}\nserial={{.Serial}}\n"}}},
		Password: "secret-pw", WiFi: &WiFiInput{WiFi: WiFi{SSID: "Venue Wi-Fi", Country: "GB"}, Passphrase: "correct horse battery"}}
}

// TestPrepareRefuses pins one 400 per kind of bad input, each naming its field, and
// that the refusal says which field.
func TestPrepareRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Input)
		field  string
	}{
		{"bad name", func(in *Input) { in.Name = "Kiosk Profile" }, "name"},
		{"bad timezone", func(in *Input) { in.Timezone = "Europe/Atlantis" }, "timezone"},
		{"timezone path", func(in *Input) { in.Timezone = "../../etc/passwd" }, "timezone"},
		{"Local timezone", func(in *Input) { in.Timezone = "Local" }, "timezone"},
		{"bad locale", func(in *Input) { in.Locale = "en_XX.UTF-8" }, "locale"},
		{"bad keyboard", func(in *Input) { in.Keyboard = "qwertz" }, "keyboard"},
		{"malformed key", func(in *Input) { in.SSHKeys = []string{"ssh-ed25519 AAAAnotbase64!! x"} }, "ssh_authorized_keys[0]"},
		{"key with newline", func(in *Input) { in.SSHKeys = []string{realKey, realKey + "\n" + realKey} }, "ssh_authorized_keys[1]"},
		{"key with options", func(in *Input) { in.SSHKeys = []string{"no-pty " + realKey} }, "ssh_authorized_keys[0]"},
		{"short passphrase", func(in *Input) { in.WiFi.Passphrase = "short" }, "wifi.passphrase"},
		{"long passphrase", func(in *Input) { in.WiFi.Passphrase = strings.Repeat("x", 64) }, "wifi.passphrase"},
		{"psk 63 hex", func(in *Input) { in.WiFi.Passphrase, in.WiFi.PSK = "", strings.Repeat("a", 63) }, "wifi.psk"},
		{"psk not hex", func(in *Input) { in.WiFi.Passphrase, in.WiFi.PSK = "", strings.Repeat("g", 64) }, "wifi.psk"},
		{"no passphrase", func(in *Input) { in.WiFi.Passphrase = "" }, "wifi.passphrase"},
		{"lower-case country", func(in *Input) { in.WiFi.Country = "gb" }, "wifi.country"},
		{"ssid too long", func(in *Input) { in.WiFi.SSID = strings.Repeat("s", 33) }, "wifi.ssid"},
		{"relative path", func(in *Input) { in.Files[0].Path = "etc/kiosk.conf" }, "files[0].path"},
		{"dot-dot path", func(in *Input) { in.Files[0].Path = "/etc/../../proc/x" }, "files[0].path"},
		{"boot partition", func(in *Input) { in.Files[0].Path = "/boot/firmware/config.txt" }, "files[0].path"},
		{"proc", func(in *Input) { in.Files[0].Path = "/proc/sys/kernel/x" }, "files[0].path"},
		{"unknown fact", func(in *Input) { in.Files[0].Content = "{{.Hostname}} {{.Colour}}" }, "files[0].content"},
		{"template syntax", func(in *Input) { in.Files[0].Content = "{{.Hostname" }, "files[0].content"},
		{"bad mode", func(in *Input) { in.Files[0].Mode = "rw-r--r--" }, "files[0].mode"},
		{"bad owner", func(in *Input) { in.Files[0].Owner = "kiosk;reboot" }, "files[0].owner"},
		{"root user", func(in *Input) { in.User = "root" }, "user"},
		{"bad user", func(in *Input) { in.User = "Kiosk User" }, "user"},
		{"password without user", func(in *Input) { in.User = "" }, "user"},
		{"bad hash", func(in *Input) { in.Password, in.PasswordHash = "", "$1$md5$old" }, "password_hash"},
		{"both password and hash", func(in *Input) { in.PasswordHash = "$6$x$y" }, "password"},
		{"empty command", func(in *Input) { in.RunOnce = []string{"  "} }, "run_once[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := valid()
			in.Files = slices.Clone(in.Files)
			w := *in.WiFi
			in.WiFi = &w
			tc.change(&in)
			_, err := Prepare(in, Profile{})
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Prepare = %v, want a field error", err)
			}
			if pe.Field != tc.field {
				t.Errorf("field = %q (%v), want %q", pe.Field, err, tc.field)
			}
		})
	}
}

func TestPrepareSecrets(t *testing.T) {
	p, err := Prepare(valid(), Profile{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.PasswordHash, "$6$") || p.WiFi.PSK != "c9e242c0945a1aff591be35bb33bda1f56b52d3389631df4a133da7f8c58651c" {
		t.Fatalf("hash %q psk %q: want a $6$ hash and wpa_passphrase's PSK", p.PasswordHash, p.WiFi.PSK)
	}
	if again, _ := Crypt("secret-pw", p.PasswordHash); again != p.PasswordHash {
		t.Errorf("the stored hash does not verify the password")
	}
	// Saved again without secrets: the stored hash and PSK stay.
	in := valid()
	in.Password, in.WiFi.Passphrase = "", ""
	q, err := Prepare(in, p)
	if err != nil {
		t.Fatal(err)
	}
	if q.PasswordHash != p.PasswordHash || q.WiFi.PSK != p.WiFi.PSK {
		t.Errorf("secrets not kept: %+v", q)
	}
	// A new SSID needs its passphrase again: the PSK is derived from the SSID.
	in.WiFi.SSID = "Other"
	if _, err := Prepare(in, p); err == nil {
		t.Error("a new SSID kept the old PSK")
	}
	// clear_password drops the hash.
	in = valid()
	in.Password, in.ClearPassword = "", true
	if q, err := Prepare(in, p); err != nil || q.PasswordHash != "" {
		t.Errorf("clear_password: %v %q", err, q.PasswordHash)
	}
	// The redacted form carries neither secret.
	r := Redact(p)
	if r.PasswordHash != "" || r.WiFi.PSK != "set" || !r.PasswordSet || p.WiFi.PSK == "set" {
		t.Errorf("Redact = %+v (original %+v)", r, p)
	}
}

func TestMerge(t *testing.T) {
	yes, no := true, false
	product := Profile{Name: "base", User: "kiosk", PasswordHash: "$6$a$b", SSHKeys: []string{realKey}, SSHPasswordAuth: &no,
		WiFi: &WiFi{SSID: "Venue", PSK: strings.Repeat("a", 64), Country: "GB"}, Locale: "en_GB.UTF-8", Timezone: "Europe/London",
		Files: []File{{Path: "/etc/a", Content: "a"}}, RunOnce: []string{"a"}}
	venue := Profile{Name: "rome", Timezone: "Europe/Rome", Keyboard: "it"}
	batch := Profile{Name: "test-rig", WiFi: &WiFi{SSID: "Rig", PSK: strings.Repeat("b", 64), Hidden: true, Country: "IT"}, SSHPasswordAuth: &yes}
	got := Merge(product, venue, Profile{}, batch)
	want := Profile{Name: "base+rome+test-rig", User: "kiosk", PasswordHash: "$6$a$b", SSHKeys: []string{realKey}, SSHPasswordAuth: &yes,
		WiFi: batch.WiFi, Locale: "en_GB.UTF-8", Timezone: "Europe/Rome", Keyboard: "it",
		Files: []File{{Path: "/etc/a", Content: "a"}}, RunOnce: []string{"a"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Merge (-want +got):\n%s", d)
	}
	// Another user at a higher layer does not inherit the lower user's password.
	if m := Merge(product, Profile{Name: "x", User: "ops"}); m.PasswordHash != "" || m.User != "ops" {
		t.Errorf("Merge with a new user = %+v", m)
	}
	// The same user again keeps it.
	if m := Merge(product, Profile{Name: "x", User: "kiosk"}); m.PasswordHash != product.PasswordHash {
		t.Errorf("Merge with the same user dropped its password: %+v", m)
	}
}

func TestRender(t *testing.T) {
	f := Facts{Hostname: "KXP2-CORO-001", Serial: "10000000abcdef01", MAC: "d8:3a:dd:01:02:03", Venue: "CORO", Product: "KXP2",
		Batch: 7, DeploymentID: 42, ImageName: "kiosk-1.4", ImageSHA256: "ab12"}
	got, err := Render(`{"host":"{{.Hostname}}","serial":"{{.Serial}}","mac":"{{.MAC}}","at":"{{.Venue}}/{{.Product}}/{{.Batch}}/{{.DeploymentID}}","image":"{{.ImageName}}@{{.ImageSHA256}}"}`, f)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"host":"KXP2-CORO-001","serial":"10000000abcdef01","mac":"d8:3a:dd:01:02:03","at":"CORO/KXP2/7/42","image":"kiosk-1.4@ab12"}`; got != want {
		t.Errorf("Render = %s\nwant %s", got, want)
	}
	if _, err := Render("{{.Password}}", f); err == nil {
		t.Error("an unknown fact rendered")
	}
}

// TestListsMatchDebian checks the embedded locale and keyboard lists against the
// files they were derived from, as installed on this Debian machine (locales,
// xkb-data in scripts/deps/profiles.apt).
func TestListsMatchDebian(t *testing.T) {
	sup, err := os.ReadFile("/usr/share/i18n/SUPPORTED")
	if err != nil {
		t.Fatal(err)
	}
	var locales []string
	for _, l := range strings.Split(string(sup), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			locales = append(locales, f[0])
		}
	}
	if d := cmp.Diff(locales, Locales()); d != "" {
		t.Errorf("locales differ from /usr/share/i18n/SUPPORTED (-debian +embedded):\n%s", d)
	}
	out, err := exec.Command("awk", `/^! layout/{f=1;next} /^!/{f=0} f&&NF{print $1}`, "/usr/share/X11/xkb/rules/base.lst").Output()
	if err != nil {
		t.Fatal(err)
	}
	layouts := strings.Fields(string(out))
	slices.Sort(layouts)
	if d := cmp.Diff(slices.Compact(layouts), KeyboardLayouts()); d != "" {
		t.Errorf("keyboard layouts differ from base.lst (-debian +embedded):\n%s", d)
	}
}
