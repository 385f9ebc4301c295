package firstboot

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// profileFB is a whole profile as the server sends it: every setting Raspberry Pi
// Imager has, plus locale, a rendered file and run-once commands. The hash is
// `openssl passwd -6 -salt rpideploy secret-pw`, the PSK `wpa_passphrase 'Venue Wi-Fi'
// 'correct horse battery'`.
var profileFB = agentapi.FirstBoot{
	Hostname:        "KXP2-CORO-001",
	Timezone:        "Europe/Rome",
	KeyboardLayout:  "it",
	SSHKeys:         []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXO/TsO7aCl0VCp1X/G8E/9Rz00SKuaqfA3VbDpv7JL op@deploy"},
	User:            "kiosk",
	PasswordHash:    "$6$rpideploy$.bL8lFhHbjAix6mf/5rG1rFJ5Bt6wdfg3hh2wzFYYyWqxzMNdWdrLMKhUUeO16lVL5zdhhVffm3EGPeXXopEA0",
	SSHPasswordAuth: false,
	WiFi: &agentapi.WiFi{SSID: "Venue Wi-Fi", PSK: "c9e242c0945a1aff591be35bb33bda1f56b52d3389631df4a133da7f8c58651c",
		Hidden: true, Country: "IT"},
	Locale: "it_IT.UTF-8",
	Files: []agentapi.File{{Path: "/etc/kiosk/board.json", Mode: "0640", Owner: "kiosk:kiosk",
		Content: "{\"hostname\": \"KXP2-CORO-001\", \"serial\": \"10000000abcdef01\"}\n"}},
	RunOnce: []string{"echo first boot >>/var/log/kiosk-firstboot.log", "systemctl enable kiosk.service || true"},
}

// TestGolden pins each mechanism's files for a whole profile against testdata/
// (go test ./agent/firstboot -run TestGolden -update rewrites them after a reviewed
// change).
func TestGolden(t *testing.T) {
	noFiles := profileFB
	noFiles.Locale, noFiles.Files, noFiles.RunOnce = "", nil, nil
	for _, tc := range []struct {
		mech  string
		fb    agentapi.FirstBoot
		files []string
	}{
		{"firstrun", profileFB, []string{"firstrun.sh", "cmdline.txt"}},
		{"cloud-init", profileFB, []string{"user-data", "meta-data", "network-config", "cmdline.txt"}},
		{"custom.toml", noFiles, []string{"custom.toml", "cmdline.txt"}},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			t.Parallel()
			fsys := mapFS{"cmdline.txt": "console=serial0,115200 console=tty1 root=PARTUUID=4e2f9a01-02 rootfstype=ext4 fsck.repair=yes rootwait\n"}
			if err := Apply(fsys, tc.mech, Settings{FirstBoot: tc.fb, DeploymentID: 42}); err != nil {
				t.Fatal(err)
			}
			for _, name := range tc.files {
				golden := filepath.Join("testdata", tc.mech, name)
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, []byte(fsys[name]), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(string(want), fsys[name]); d != "" {
					t.Errorf("%s (-golden +got):\n%s", golden, d)
				}
			}
			if sh, ok := fsys["firstrun.sh"]; ok {
				// Debian's /bin/sh (dash) must parse what it will run.
				cmd := exec.Command("sh", "-n")
				cmd.Stdin = strings.NewReader(sh)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("sh -n firstrun.sh: %v\n%s", err, out)
				}
			}
		})
	}
}

// TestCustomTomlRefusesExtras pins that a profile custom.toml cannot express is refused
// before anything is written, instead of being dropped silently.
func TestCustomTomlRefusesExtras(t *testing.T) {
	fsys := mapFS{"cmdline.txt": "root=x\n"}
	err := Apply(fsys, "custom.toml", Settings{FirstBoot: profileFB})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Apply = %v, want ErrUnsupported", err)
	}
	if d := cmp.Diff(mapFS{"cmdline.txt": "root=x\n"}, fsys); d != "" {
		t.Errorf("a refused Apply changed files:\n%s", d)
	}
}

// TestGoldenParses reads the golden files with real parsers (Python's PyYAML, the
// YAML loader cloud-init itself uses, and tomllib) and checks the values that carry
// the profile: what a quoting mistake would break.
func TestGoldenParses(t *testing.T) {
	const script = `
import json, sys, tomllib, yaml
ud = yaml.safe_load(open(sys.argv[1] + "/cloud-init/user-data"))
nc = yaml.safe_load(open(sys.argv[1] + "/cloud-init/network-config"))
ct = tomllib.load(open(sys.argv[1] + "/custom.toml/custom.toml", "rb"))
ap = nc["network"]["wifis"]["wlan0"]["access-points"]
print(json.dumps({
  "user": ud["users"][0]["name"], "hash": ud["users"][0]["passwd"], "key": ud["users"][0]["ssh_authorized_keys"][0],
  "pwauth": ud["ssh_pwauth"], "file": ud["write_files"][0]["path"], "cmd": ud["runcmd"][-1][2],
  "ssid": list(ap)[0], "psk": list(ap.values())[0]["password"], "eth0": nc["network"]["ethernets"]["eth0"]["dhcp4"],
  "toml_hash": ct["user"]["password"], "toml_psk": ct["wlan"]["password"], "toml_key": ct["ssh"]["authorized_keys"][0],
}, sort_keys=True))
`
	out, err := exec.Command("python3", "-c", script, "testdata").CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	fb := profileFB
	want := fmt.Sprintf(`{"cmd": %q, "eth0": true, "file": %q, "hash": %q, "key": %q, "psk": %q, "pwauth": false, "ssid": %q, "toml_hash": %q, "toml_key": %q, "toml_psk": %q, "user": %q}`,
		fb.RunOnce[1], fb.Files[0].Path, fb.PasswordHash, fb.SSHKeys[0], fb.WiFi.PSK, fb.WiFi.SSID, fb.PasswordHash, fb.SSHKeys[0], fb.WiFi.PSK, fb.User)
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("parsed golden files:\n got %s\nwant %s", got, want)
	}
}

// TestSSHPasswordLogins pins when each mechanism turns SSH password logins off: with
// keys unless the profile keeps them on, and never for "enable SSH" alone (which
// would lock out a password-only user).
func TestSSHPasswordLogins(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		fb                    agentapi.FirstBoot
		firstrun, cloud, toml string // "" = must not appear
	}{
		{"ssh only", agentapi.FirstBoot{Hostname: "h", EnableSSH: true}, "", "", ""},
		{"keys", agentapi.FirstBoot{Hostname: "h", SSHKeys: profileFB.SSHKeys},
			"echo 'PasswordAuthentication no' >>/etc/ssh/sshd_config", "ssh_pwauth: false", "password_authentication = false"},
		{"keys and passwords", agentapi.FirstBoot{Hostname: "h", SSHKeys: profileFB.SSHKeys, SSHPasswordAuth: true},
			"", "ssh_pwauth: true", "password_authentication = true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct{ text, want, off string }{
				{FirstrunScript(tc.fb), tc.firstrun, "PasswordAuthentication no"},
				{UserData(tc.fb), tc.cloud, "ssh_pwauth"},
				{CustomToml("", tc.fb), tc.toml, "password_authentication"},
			} {
				if tc := c.want; tc != "" && !strings.Contains(c.text, tc) {
					t.Errorf("lacks %q:\n%s", tc, c.text)
				}
				if c.want == "" && strings.Contains(c.text, c.off) {
					t.Errorf("has %q:\n%s", c.off, c.text)
				}
			}
		})
	}
}

// TestFirstrunWritesFiles runs the file and run-once part of firstrun.sh with the real
// sh, base64, install and chmod, under a temporary directory instead of /: the files
// come out byte for byte with their modes, and each command runs once.
func TestFirstrunWritesFiles(t *testing.T) {
	dir := t.TempDir()
	fb := agentapi.FirstBoot{Hostname: "h", Files: []agentapi.File{
		{Path: "/etc/kiosk/board.json", Mode: "0640", Content: profileFB.Files[0].Content},
		{Path: "/opt/app/empty", Content: ""},
		{Path: "/opt/app/odd", Mode: "0600", Content: "quotes ' \" $HOME `x` \\ and\nRPIDEPLOYEOF\nbinary \x00\xff end"},
	}, RunOnce: []string{"echo once >>" + dir + "/runs", "printf '%s\\n' \"it's\" >>" + dir + "/runs"}}
	var part []string
	in := false
	for _, l := range strings.Split(FirstrunScript(fb), "\n") {
		if strings.HasPrefix(l, "# rpi-deploy: file") || strings.HasPrefix(l, "# rpi-deploy: run-once") {
			in = true
		}
		if strings.HasPrefix(l, "rm -f "+FirstrunPath) {
			break
		}
		if in && !strings.HasPrefix(l, "chown ") { // the owners exist on the card only
			part = append(part, strings.NewReplacer("'/etc/", "'"+dir+"/etc/", "'/opt/", "'"+dir+"/opt/").Replace(l))
		}
	}
	cmd := exec.Command("sh", "-e")
	cmd.Stdin = strings.NewReader(strings.Join(part, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh: %v\n%s\n%s", err, out, strings.Join(part, "\n"))
	}
	for _, f := range fb.Files {
		got, err := os.ReadFile(dir + f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != f.Content {
			t.Errorf("%s = %q, want %q", f.Path, got, f.Content)
		}
		st, _ := os.Stat(dir + f.Path)
		want := map[string]os.FileMode{"0640": 0o640, "": 0o644, "0600": 0o600}[f.Mode]
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", f.Path, st.Mode().Perm(), want)
		}
	}
	if runs, _ := os.ReadFile(dir + "/runs"); string(runs) != "once\nit's\n" {
		t.Errorf("run-once output %q", runs)
	}
}
