package firstboot

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
)

type mapFS map[string]string

func (m mapFS) ReadFile(name string) ([]byte, error) {
	s, ok := m[name]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return []byte(s), nil
}

func (m mapFS) WriteFile(name string, data []byte) error { m[name] = string(data); return nil }

const cmd = "console=serial0,115200 root=PARTUUID=1234abcd-02 rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n"

func TestApply(t *testing.T) {
	fb := agentapi.FirstBoot{Hostname: "KXP2-CORO-001", Timezone: "Europe/Rome", KeyboardLayout: "it", SSHKeys: []string{"ssh-ed25519 AAAA op@x"}}
	for _, tc := range []struct {
		mech  string
		start mapFS
		want  map[string][]string // file → substrings it must hold
	}{
		{"firstrun", mapFS{"cmdline.txt": cmd}, map[string][]string{
			"firstrun.sh": {"#!/bin/sh\n", "imager_custom set_hostname KXP2-CORO-001\n", "echo KXP2-CORO-001 >/etc/hostname", "127.0.1.1\\tKXP2-CORO-001", "rm -f /boot/firmware/firstrun.sh", "exit 0\n"},
			"cmdline.txt": {strings.TrimSpace(cmd) + " systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target\n"},
		}},
		{"cloud-init", mapFS{"cmdline.txt": "root=x resize\n", "network-config": "network:\n  version: 2\n"}, map[string][]string{
			"user-data":      {"#cloud-config\n", "hostname: KXP2-CORO-001\n", "manage_etc_hosts: true\n", "timezone: Europe/Rome\n"},
			"meta-data":      {"instance-id: rpi-deploy-42\n"},
			"network-config": {"network:\n  version: 2\n"},
			"cmdline.txt":    {"root=x resize ds=nocloud;i=rpi-deploy-42\n"},
		}},
		{"custom.toml", mapFS{"cmdline.txt": "root=x\n", "custom.toml": "# hi\nconfig_version = 1\n\n[system]\nhostname = \"raspberrypi\"\n\n[user]\nname = \"pi\"\n"}, map[string][]string{
			"custom.toml": {"# hi\nconfig_version = 1\n\n[system]\nhostname = \"KXP2-CORO-001\"\n\n[user]\nname = \"pi\"\n", "[locale]\nkeymap = \"it\"\ntimezone = \"Europe/Rome\"\n", "authorized_keys = [ \"ssh-ed25519 AAAA op@x\" ]"},
			"cmdline.txt": {"root=x init=/usr/lib/raspberrypi-sys-mods/firstboot\n"},
		}},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			if err := Apply(tc.start, tc.mech, Settings{FirstBoot: fb, DeploymentID: 42}); err != nil {
				t.Fatal(err)
			}
			for name, subs := range tc.want {
				for _, s := range subs {
					if !strings.Contains(tc.start[name], s) {
						t.Errorf("%s lacks %q:\n%s", name, s, tc.start[name])
					}
				}
			}
			// Applying twice gives the same files (a re-run after a failed commit).
			before := map[string]string(tc.start)
			again := mapFS{}
			for k, v := range before {
				again[k] = v
			}
			if err := Apply(again, tc.mech, Settings{FirstBoot: fb, DeploymentID: 42}); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(before, map[string]string(again)); d != "" {
				t.Errorf("second Apply changed files (-first +second):\n%s", d)
			}
		})
	}
}

func TestApplyRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		mech string
		fb   agentapi.FirstBoot
	}{
		"shell in hostname": {"firstrun", agentapi.FirstBoot{Hostname: "a;reboot"}},
		"empty hostname":    {"firstrun", agentapi.FirstBoot{}},
		"quote in key":      {"firstrun", agentapi.FirstBoot{Hostname: "a", SSHKeys: []string{"x'y"}}},
		"unknown mechanism": {"rpi-preseed", agentapi.FirstBoot{Hostname: "a"}},
		"no mechanism":      {"", agentapi.FirstBoot{Hostname: "a"}},
	} {
		t.Run(name, func(t *testing.T) {
			m := mapFS{"cmdline.txt": cmd}
			if err := Apply(m, tc.mech, Settings{FirstBoot: tc.fb}); err == nil {
				t.Fatal("Apply succeeded")
			}
			if d := cmp.Diff(mapFS{"cmdline.txt": cmd}, m); d != "" {
				t.Errorf("a refused Apply changed files:\n%s", d)
			}
		})
	}
}

// TestFirstrunPaths pins the paths of the firstrun mechanism on Bookworm, where the
// boot partition is mounted at /boot/firmware: Raspberry Pi OS's imager_fixup hook
// (which greps the command line for `systemd\.run=/boot/firstrun\.sh`) must find
// nothing to rewrite, and the script's own clean-up, run by the real bash and sed on a
// copy of cmdline.txt, must give back the command line the image came with.
func TestFirstrunPaths(t *testing.T) {
	const orig = "console=serial0,115200 console=tty1 root=PARTUUID=4e2f9a01-02 rootfstype=ext4 fsck.repair=yes rootwait\n"
	fsys := mapFS{"cmdline.txt": orig}
	if err := Apply(fsys, "firstrun", Settings{FirstBoot: agentapi.FirstBoot{Hostname: "KXP2-CORO-001"}}); err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`systemd\.run=/boot/firstrun\.sh`).MatchString(fsys["cmdline.txt"]) {
		t.Errorf("cmdline.txt would be rewritten by imager_fixup: %q", fsys["cmdline.txt"])
	}
	if !strings.Contains(fsys["cmdline.txt"], " systemd.run="+FirstrunPath+" ") {
		t.Errorf("cmdline.txt does not run %s: %q", FirstrunPath, fsys["cmdline.txt"])
	}
	dir := t.TempDir()
	cmdline := filepath.Join(dir, "cmdline.txt")
	if err := os.WriteFile(cmdline, []byte(fsys["cmdline.txt"]), 0o644); err != nil {
		t.Fatal(err)
	}
	var cleanup []string
	for _, line := range strings.Split(fsys["firstrun.sh"], "\n") {
		if strings.Contains(line, "/boot/firmware/") && (strings.HasPrefix(line, "rm ") || strings.HasPrefix(line, "sed ")) {
			cleanup = append(cleanup, strings.ReplaceAll(line, "/boot/firmware/", dir+"/"))
		}
	}
	if len(cleanup) != 2 {
		t.Fatalf("firstrun.sh has %d clean-up lines on /boot/firmware, want rm and sed:\n%s", len(cleanup), fsys["firstrun.sh"])
	}
	if err := os.WriteFile(filepath.Join(dir, "firstrun.sh"), []byte(fsys["firstrun.sh"]), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", "-euc", strings.Join(cleanup, "\n")).CombinedOutput(); err != nil {
		t.Fatalf("clean-up: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(cmdline); err != nil || string(got) != orig {
		t.Errorf("cmdline.txt after the clean-up = %q (%v), want %q", got, err, orig)
	}
	if _, err := os.Stat(filepath.Join(dir, "firstrun.sh")); !os.IsNotExist(err) {
		t.Errorf("firstrun.sh is still there after the clean-up (%v)", err)
	}
}
