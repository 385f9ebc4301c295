package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// TestProfileCLI drives `rpi-deployd profile …` against a real server: set from a
// file and from stdin, list, show (secrets as "set"), attach to a product and
// override for a venue, effective, detach, rm; a bad field exits 1 naming it.
func TestProfileCLI(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	dir := t.TempDir()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "k")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	key, _ := os.ReadFile(filepath.Join(dir, "k.pub"))
	file := filepath.Join(dir, "kiosk.json")
	if err := os.WriteFile(file, []byte(`{"user": "kiosk", "password": "cli-secret-pw", "ssh_authorized_keys": ["`+strings.TrimSpace(string(key))+`"],
		"ssh_password_auth": false, "wifi": {"ssid": "Venue", "passphrase": "cli-wifi-passphrase", "country": "GB"},
		"timezone": "Europe/London", "locale": "en_GB.UTF-8", "keyboard": "gb",
		"files": [{"path": "/etc/kiosk.conf", "content": "{{.Hostname}}\n"}], "run_once": ["true"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(stdin, want string, args ...string) string {
		t.Helper()
		out, errs, code := runCLI(t, srv, stdin, args...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want %q", args, code, out, errs, want)
		}
		return out
	}
	run("", "venue CORO", "venue", "add", "CORO")
	run("", "profile kiosk saved: user kiosk (password set), 1 ssh keys, ssh password auth false, wifi \"Venue\"", "profile", "set", "kiosk", "--file", file)
	run(`{"timezone": "Europe/Rome", "keyboard": "it"}`, "profile rome saved: timezone Europe/Rome, keyboard it", "profile", "set", "rome")
	show := run("", `"password_set": true`, "profile", "show", "kiosk")
	for _, secret := range []string{"cli-secret-pw", "cli-wifi-passphrase", "$6$"} {
		if strings.Contains(show, secret) {
			t.Errorf("profile show prints %q:\n%s", secret, show)
		}
	}
	run("", "product KXP2: profile kiosk attached", "profile", "attach", "kiosk", "--product", "KXP2")
	run("", "venue CORO: profile rome attached", "profile", "attach", "rome", "--venue", "CORO")
	if out := run("", "kiosk  product KXP2", "profile", "list"); !strings.Contains(out, "rome   venue CORO") {
		t.Errorf("profile list:\n%s", out)
	}
	eff := run("", `"name": "kiosk+rome"`, "profile", "effective", "--product", "KXP2", "--venue", "CORO")
	if !strings.Contains(eff, `"timezone": "Europe/Rome"`) || !strings.Contains(eff, `"user": "kiosk"`) {
		t.Errorf("effective profile:\n%s", eff)
	}
	// A bad field: exit 1, the message names it, nothing changes.
	_, errs, code := runCLI(t, srv, `{"timezone": "Europe/Nowhere"}`, "profile", "set", "rome")
	if code != 1 || !strings.Contains(errs, "field timezone") {
		t.Errorf("bad timezone: exit %d, stderr %q", code, errs)
	}
	if _, errs, code := runCLI(t, srv, "", "profile", "rm", "rome"); code != 1 || !strings.Contains(errs, "attached") {
		t.Errorf("rm of an attached profile: exit %d %q", code, errs)
	}
	run("", "venue CORO: profile detached", "profile", "detach", "--venue", "CORO")
	run("", "profile rome deleted", "profile", "rm", "rome")
	if _, _, code := runCLI(t, srv, "", "profile", "attach", "kiosk"); code != 2 {
		t.Errorf("attach without a scope: exit %d, want 2", code)
	}
}
