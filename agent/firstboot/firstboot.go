// Package firstboot gives a freshly written card its name for the first boot, the
// way the image's own first-boot machinery expects it (pi5-boot.md §4):
//
//   - "firstrun" (Bookworm): firstrun.sh as Raspberry Pi Imager writes it, plus
//     " systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot
//     systemd.unit=kernel-command-line.target" on cmdline.txt, with the paths where
//     Bookworm mounts the boot partition (see FirstrunPath);
//   - "cloud-init" (Trixie): user-data (#cloud-config, hostname, manage_etc_hosts),
//     meta-data (instance-id rpi-deploy-<deployment>), network-config kept (a DHCP
//     default when missing), " ds=nocloud;i=<instance-id>" on cmdline.txt;
//   - "custom.toml" (raspberrypi-sys-mods firstboot): [system] hostname (and [ssh],
//     [locale] when set) in custom.toml, keeping the rest of an existing file; the
//     firstboot init= argument on cmdline.txt if it is missing.
//
// It works on any FS with ReadFile/WriteFile (the boot partition's FAT opened with
// image-tools/fat on the card).
package firstboot

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
)

// FS is the boot partition as naming needs it. Names are relative to its root.
type FS interface {
	ReadFile(name string) ([]byte, error)
	WriteFile(name string, data []byte) error
}

// Settings say what to write.
type Settings struct {
	agentapi.FirstBoot
	// DeploymentID makes the cloud-init instance id: "rpi-deploy-<id>".
	DeploymentID int64
}

// ErrMechanism is wrapped for an unknown or absent mechanism.
var ErrMechanism = errors.New("unknown first-boot mechanism")

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// ValidHostname reports whether s is a single DNS label (RFC 1123), safe in a shell
// script, YAML and TOML without quoting tricks.
func ValidHostname(s string) bool { return hostnameRE.MatchString(s) }

// Mechanism picks the mechanism: the deployment's override, else the manifest's.
func Mechanism(m *manifest.Manifest, fb agentapi.FirstBoot) string {
	if fb.Mechanism != "" {
		return fb.Mechanism
	}
	return m.FirstBoot
}

// Files lists what Apply writes for mech, for logs and tests.
func Files(mech string) []string {
	switch mech {
	case manifest.FirstBootFirstrun:
		return []string{"firstrun.sh", "cmdline.txt"}
	case manifest.FirstBootCloudInit:
		return []string{"user-data", "meta-data", "network-config", "cmdline.txt"}
	case manifest.FirstBootCustomToml:
		return []string{"custom.toml", "cmdline.txt"}
	}
	return nil
}

// Apply writes the first-boot files of mech with s onto fsys.
func Apply(fsys FS, mech string, s Settings) error {
	if !ValidHostname(s.Hostname) {
		return fmt.Errorf("hostname %q: want letters, digits and inner hyphens, at most 63", s.Hostname)
	}
	for _, k := range s.SSHKeys {
		if strings.ContainsAny(k, "\n\r'\"\\") {
			return fmt.Errorf("ssh key %.20q…: contains a quote, backslash or line break", k)
		}
	}
	for _, v := range []string{s.Timezone, s.KeyboardLayout} {
		if !regexp.MustCompile(`^[A-Za-z0-9_+/-]*$`).MatchString(v) {
			return fmt.Errorf("timezone or keyboard layout %q: unexpected characters", v)
		}
	}
	cmdline, err := fsys.ReadFile("cmdline.txt")
	if err != nil {
		return fmt.Errorf("read cmdline.txt: %w", err)
	}
	var files []file
	switch mech {
	case manifest.FirstBootFirstrun:
		files = append(files, file{"firstrun.sh", []byte(FirstrunScript(s.FirstBoot))})
		cmdline = EditCmdline(cmdline, []string{"systemd.run", "systemd.run_success_action", "systemd.unit"},
			"systemd.run="+FirstrunPath, "systemd.run_success_action=reboot", "systemd.unit=kernel-command-line.target")
	case manifest.FirstBootCloudInit:
		id := fmt.Sprintf("rpi-deploy-%d", s.DeploymentID)
		files = append(files, file{"user-data", []byte(UserData(s.FirstBoot))},
			file{"meta-data", []byte(MetaData(id))})
		if _, err := fsys.ReadFile("network-config"); errors.Is(err, fs.ErrNotExist) {
			files = append(files, file{"network-config", []byte(defaultNetworkConfig)})
		} else if err != nil {
			return fmt.Errorf("read network-config: %w", err)
		}
		cmdline = EditCmdline(cmdline, []string{"ds"}, "ds=nocloud;i="+id)
	case manifest.FirstBootCustomToml:
		old, err := fsys.ReadFile("custom.toml")
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("read custom.toml: %w", err)
		}
		files = append(files, file{"custom.toml", []byte(CustomToml(string(old), s.FirstBoot))})
		if !hasArg(cmdline, "init=/usr/lib/raspberrypi-sys-mods/firstboot") {
			cmdline = EditCmdline(cmdline, []string{"init"}, "init=/usr/lib/raspberrypi-sys-mods/firstboot")
		}
	default:
		return fmt.Errorf("%w: %q (want %q, %q or %q)", ErrMechanism, mech,
			manifest.FirstBootFirstrun, manifest.FirstBootCloudInit, manifest.FirstBootCustomToml)
	}
	files = append(files, file{"cmdline.txt", cmdline})
	for _, f := range files {
		if err := fsys.WriteFile(f.name, f.data); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	return nil
}

type file struct {
	name string
	data []byte
}

func hasArg(cmdline []byte, arg string) bool {
	for _, a := range strings.Fields(string(cmdline)) {
		if a == arg {
			return true
		}
	}
	return false
}

// EditCmdline returns the one-line cmdline with every argument whose key is in drop
// removed and add appended, ending in a newline.
func EditCmdline(cmdline []byte, drop []string, add ...string) []byte {
	var out []string
	for _, a := range strings.Fields(string(cmdline)) {
		key, _, _ := strings.Cut(a, "=")
		keep := true
		for _, d := range drop {
			if key == d {
				keep = false
			}
		}
		if keep {
			out = append(out, a)
		}
	}
	return []byte(strings.Join(append(out, add...), " ") + "\n")
}

// FirstrunPath is where firstrun.sh is when it runs: Bookworm mounts the boot partition
// at /boot/firmware. Raspberry Pi Imager writes /boot/firstrun.sh and relies on
// Raspberry Pi OS's initramfs hook imager_fixup (raspberrypi-sys-mods) to rewrite
// "/boot/" to "/boot/firmware/" in cmdline.txt and the script, at the price of one more
// reboot; the hook acts only when the command line holds "systemd.run=/boot/firstrun.sh",
// so with the final paths written here it has nothing to do, and an image without the
// hook (or without an initramfs) runs the script as well.
const FirstrunPath = "/boot/firmware/firstrun.sh"

// FirstrunScript is firstrun.sh as Raspberry Pi Imager generates it for these
// settings: it sets the hostname (imager_custom when present, else /etc/hostname and
// the 127.0.1.1 line of /etc/hosts), SSH, keyboard and time zone, then removes itself
// and its cmdline.txt arguments (under /boot/firmware, FirstrunPath) and exits 0.
func FirstrunScript(fb agentapi.FirstBoot) string {
	var b strings.Builder
	name := fb.Hostname
	b.WriteString("#!/bin/bash\n\nset +e\n\n")
	b.WriteString("CURRENT_HOSTNAME=`cat /etc/hostname | tr -d \" \\t\\n\\r\"`\n")
	b.WriteString("if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then\n")
	fmt.Fprintf(&b, "   /usr/lib/raspberrypi-sys-mods/imager_custom set_hostname %s\n", name)
	b.WriteString("else\n")
	fmt.Fprintf(&b, "   echo %s >/etc/hostname\n", name)
	fmt.Fprintf(&b, "   sed -i \"s/127.0.1.1.*$CURRENT_HOSTNAME/127.0.1.1\\t%s/g\" /etc/hosts\n", name)
	b.WriteString("fi\n")
	if fb.EnableSSH || len(fb.SSHKeys) > 0 {
		b.WriteString("FIRSTUSER=`getent passwd 1000 | cut -d: -f1`\n")
		b.WriteString("FIRSTUSERHOME=`getent passwd 1000 | cut -d: -f6`\n")
		b.WriteString("if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then\n")
		if len(fb.SSHKeys) > 0 {
			b.WriteString("   /usr/lib/raspberrypi-sys-mods/imager_custom enable_ssh -k")
			for _, k := range fb.SSHKeys {
				fmt.Fprintf(&b, " '%s'", k)
			}
			b.WriteString("\n")
		} else {
			b.WriteString("   /usr/lib/raspberrypi-sys-mods/imager_custom enable_ssh\n")
		}
		b.WriteString("else\n")
		if len(fb.SSHKeys) > 0 {
			b.WriteString("   install -o \"$FIRSTUSER\" -m 700 -d \"$FIRSTUSERHOME/.ssh\"\n")
			b.WriteString("   install -o \"$FIRSTUSER\" -m 600 <(printf \"")
			for _, k := range fb.SSHKeys {
				fmt.Fprintf(&b, "%s\\n", k)
			}
			b.WriteString("\") \"$FIRSTUSERHOME/.ssh/authorized_keys\"\n")
			b.WriteString("   echo 'PasswordAuthentication no' >>/etc/ssh/sshd_config\n")
		}
		b.WriteString("   systemctl enable ssh\n")
		b.WriteString("fi\n")
	}
	if fb.KeyboardLayout != "" || fb.Timezone != "" {
		b.WriteString("if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then\n")
		if fb.KeyboardLayout != "" {
			fmt.Fprintf(&b, "   /usr/lib/raspberrypi-sys-mods/imager_custom set_keymap '%s'\n", fb.KeyboardLayout)
		}
		if fb.Timezone != "" {
			fmt.Fprintf(&b, "   /usr/lib/raspberrypi-sys-mods/imager_custom set_timezone '%s'\n", fb.Timezone)
		}
		b.WriteString("else\n")
		if fb.Timezone != "" {
			b.WriteString("   rm -f /etc/localtime\n")
			fmt.Fprintf(&b, "   echo \"%s\" >/etc/timezone\n", fb.Timezone)
			b.WriteString("   dpkg-reconfigure -f noninteractive tzdata\n")
		}
		if fb.KeyboardLayout != "" {
			b.WriteString("cat >/etc/default/keyboard <<'KBEOF'\n")
			fmt.Fprintf(&b, "XKBMODEL=\"pc105\"\nXKBLAYOUT=\"%s\"\nXKBVARIANT=\"\"\nXKBOPTIONS=\"\"\n\nKBEOF\n", fb.KeyboardLayout)
			b.WriteString("   dpkg-reconfigure -f noninteractive keyboard-configuration\n")
		}
		b.WriteString("fi\n")
	}
	b.WriteString("rm -f " + FirstrunPath + "\n")
	b.WriteString("sed -i 's| systemd.run.*||g' /boot/firmware/cmdline.txt\n")
	b.WriteString("exit 0\n")
	return b.String()
}

// UserData is the cloud-init user-data for the settings.
func UserData(fb agentapi.FirstBoot) string {
	var b strings.Builder
	b.WriteString("#cloud-config\n# written by rpi-deploy\n")
	fmt.Fprintf(&b, "hostname: %s\nmanage_etc_hosts: true\n", fb.Hostname)
	if fb.Timezone != "" {
		fmt.Fprintf(&b, "timezone: %s\n", fb.Timezone)
	}
	if fb.KeyboardLayout != "" {
		fmt.Fprintf(&b, "keyboard:\n  model: pc105\n  layout: \"%s\"\n", fb.KeyboardLayout)
	}
	if fb.EnableSSH || len(fb.SSHKeys) > 0 {
		b.WriteString("enable_ssh: true\n")
	}
	if len(fb.SSHKeys) > 0 {
		b.WriteString("ssh_pwauth: false\nssh_authorized_keys:\n")
		for _, k := range fb.SSHKeys {
			fmt.Fprintf(&b, "  - %s\n", strconv.Quote(k))
		}
	}
	return b.String()
}

// MetaData is the cloud-init meta-data with instance id id.
func MetaData(id string) string {
	return "# written by rpi-deploy\ndsmode: local\ninstance-id: " + id + "\n"
}

const defaultNetworkConfig = `# written by rpi-deploy: DHCP on the wired port
network:
  version: 2
  ethernets:
    eth0:
      dhcp4: true
      optional: true
`

// CustomToml returns old (a custom.toml, possibly empty) with config_version = 1,
// [system] hostname and, when set, [ssh] and [locale] keys set; everything else in
// old is kept.
func CustomToml(old string, fb agentapi.FirstBoot) string {
	doc := old
	if strings.TrimSpace(doc) == "" {
		doc = "# Raspberry Pi first boot configuration, written by rpi-deploy\n"
	}
	doc = setTOML(doc, "", "config_version", "1")
	doc = setTOML(doc, "system", "hostname", strconv.Quote(fb.Hostname))
	if fb.EnableSSH || len(fb.SSHKeys) > 0 {
		doc = setTOML(doc, "ssh", "enabled", "true")
	}
	if len(fb.SSHKeys) > 0 {
		q := make([]string, len(fb.SSHKeys))
		for i, k := range fb.SSHKeys {
			q[i] = strconv.Quote(k)
		}
		doc = setTOML(doc, "ssh", "password_authentication", "false")
		doc = setTOML(doc, "ssh", "authorized_keys", "[ "+strings.Join(q, ", ")+" ]")
	}
	if fb.KeyboardLayout != "" {
		doc = setTOML(doc, "locale", "keymap", strconv.Quote(fb.KeyboardLayout))
	}
	if fb.Timezone != "" {
		doc = setTOML(doc, "locale", "timezone", strconv.Quote(fb.Timezone))
	}
	return doc
}

// setTOML sets key = value in [section] ("" = the top level before any section) of a
// line-oriented TOML document, replacing an existing assignment or adding one (and
// the section when missing).
func setTOML(doc, section, key, value string) string {
	lines := strings.Split(strings.TrimRight(doc, "\n"), "\n")
	cur, insertAt, found := "", -1, false
	if section == "" {
		insertAt = 0
		for insertAt < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[insertAt]), "#") {
			insertAt++
		}
	}
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			if cur == section && section != "" {
				break
			}
			cur = strings.TrimSpace(strings.Trim(t, "[]"))
			if cur == section {
				insertAt = i + 1
			}
			continue
		}
		if cur != section {
			continue
		}
		if k, _, ok := strings.Cut(t, "="); ok && strings.TrimSpace(k) == key {
			lines[i] = key + " = " + value
			found = true
			break
		}
		if t != "" && section != "" {
			insertAt = i + 1
		}
	}
	switch {
	case found:
	case insertAt >= 0:
		lines = append(lines[:insertAt], append([]string{key + " = " + value}, lines[insertAt:]...)...)
	default:
		lines = append(lines, "", "["+section+"]", key+" = "+value)
	}
	return strings.Join(lines, "\n") + "\n"
}
