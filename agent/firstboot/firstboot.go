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
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"path"
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

// ErrUnsupported is wrapped when the mechanism cannot carry a setting of the profile.
var ErrUnsupported = errors.New("setting not supported by the first-boot mechanism")

var (
	safeRE     = regexp.MustCompile(`^[A-Za-z0-9_+/.@-]*$`)
	userRE     = regexp.MustCompile(`^([a-z_][a-z0-9_-]{0,31})?$`)
	hashRE     = regexp.MustCompile(`^(\$[0-9a-z]+\$[./0-9A-Za-z$=,]+)?$`)
	pskRE      = regexp.MustCompile(`^([0-9a-f]{64})?$`)
	modeRE     = regexp.MustCompile(`^(0?[0-7]{3,4})?$`)
	ownerRE    = regexp.MustCompile(`^([a-z_][a-z0-9_-]{0,31}(:[a-z_][a-z0-9_-]{0,31})?)?$`)
	countryRE  = regexp.MustCompile(`^([A-Z]{2})?$`)
	filePathRE = regexp.MustCompile(`^/[A-Za-z0-9_.+@,=/-]+$`)
)

// check is the agent's last line of defence against values that would break out of
// the shell, YAML or TOML they are written into; the server validates the same
// settings properly (and with better messages) when a profile is saved.
func check(fb agentapi.FirstBoot) error {
	for _, k := range fb.SSHKeys {
		if strings.ContainsAny(k, "\n\r'\"\\") {
			return fmt.Errorf("ssh key %.20q…: contains a quote, backslash or line break", k)
		}
	}
	for name, v := range map[string]string{"timezone": fb.Timezone, "keyboard layout": fb.KeyboardLayout, "locale": fb.Locale} {
		if !safeRE.MatchString(v) {
			return fmt.Errorf("%s %q: unexpected characters", name, v)
		}
	}
	if !userRE.MatchString(fb.User) {
		return fmt.Errorf("user %q: want a lower-case user name", fb.User)
	}
	if !hashRE.MatchString(fb.PasswordHash) {
		return errors.New("password hash: not a crypt(3) hash")
	}
	if w := fb.WiFi; w != nil {
		if !pskRE.MatchString(w.PSK) || !countryRE.MatchString(w.Country) ||
			len(w.SSID) > 32 || strings.ContainsAny(w.SSID, "\\\x00\n\r") {
			return errors.New("wifi: want an SSID of 1-32 bytes without backslash or line break, a 64-hex PSK and a 2-letter country")
		}
	}
	for _, f := range fb.Files {
		if !filePathRE.MatchString(f.Path) || path.Clean(f.Path) != f.Path || !modeRE.MatchString(f.Mode) || !ownerRE.MatchString(f.Owner) {
			return fmt.Errorf("file %q: want a clean absolute path, an octal mode and a user[:group] owner", f.Path)
		}
	}
	return nil
}

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
	if err := check(s.FirstBoot); err != nil {
		return err
	}
	if mech == manifest.FirstBootCustomToml {
		var missing []string
		if s.Locale != "" {
			missing = append(missing, "locale")
		}
		if len(s.Files) > 0 {
			missing = append(missing, "files")
		}
		if len(s.RunOnce) > 0 {
			missing = append(missing, "run_once")
		}
		if len(missing) > 0 {
			return fmt.Errorf("%w: custom.toml has no place for %s; use an image with firstrun or cloud-init",
				ErrUnsupported, strings.Join(missing, ", "))
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
		if nc := NetworkConfig(s.FirstBoot); nc != "" {
			files = append(files, file{"network-config", []byte(nc)})
		} else if _, err := fsys.ReadFile("network-config"); errors.Is(err, fs.ErrNotExist) {
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

// FirstrunScript is firstrun.sh as Raspberry Pi Imager's current generator
// (src/customization_generator.cpp, generateSystemdScript) writes it for these
// settings — hostname, SSH keys, SSH with password, first user and password hash,
// Wi-Fi, keyboard and time zone, each through imager_custom/userconf when the image has
// them and with Imager's own fallback otherwise — and removes itself and its
// cmdline.txt arguments (under /boot/firmware, FirstrunPath). rpi-deploy's additions
// are marked "# rpi-deploy:" (docs/profiles.md): the first user is created when the
// image has no user 1000 to rename, SSH password logins stay on when the profile
// allows them, then the locale, the files and the run-once commands.
func FirstrunScript(fb agentapi.FirstBoot) string {
	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	name := fb.Hostname
	firstrunHostname(line, name)
	user := fb.User
	if user == "" {
		user = "pi"
	}
	needUser := fb.User != "" || fb.PasswordHash != "" || len(fb.SSHKeys) > 0
	if fb.User != "" {
		line("# rpi-deploy: an image without a user 1000 (plain Debian) gets the profile's user")
		line("if ! getent passwd 1000 >/dev/null && [ ! -f /usr/lib/userconf-pi/userconf ]; then")
		line("   useradd -m -u 1000 -s /bin/bash %s", shellQuote(user))
		line("   for g in %s; do getent group \"$g\" >/dev/null && usermod -a -G \"$g\" %s; done", strings.ReplaceAll(userGroups, ",", " "), shellQuote(user))
		line("fi")
	}
	line("FIRSTUSER=$(getent passwd 1000 | cut -d: -f1)")
	line("FIRSTUSERHOME=$(getent passwd 1000 | cut -d: -f6)")
	firstrunSSH(line, fb)
	if needUser {
		firstrunUserconf(line, fb, user)
	}
	firstrunWiFi(line, fb)
	firstrunKeyboardTimezone(line, fb)
	firstrunAdditions(line, fb)
	line("rm -f %s", FirstrunPath)
	line("sed -i 's| systemd.run.*||g' /boot/firmware/cmdline.txt")
	line("exit 0")
	return b.String()
}

// firstrunHostname starts firstrun.sh: the shebang and the hostname, through
// imager_custom set_hostname or /etc/hostname and /etc/hosts.
func firstrunHostname(line func(string, ...any), name string) {
	line("#!/bin/sh")
	line("")
	line("set +e")
	line("")
	line("CURRENT_HOSTNAME=$(cat /etc/hostname | tr -d \" \\t\\n\\r\")")
	line("if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then")
	line("   /usr/lib/raspberrypi-sys-mods/imager_custom set_hostname %s", name)
	line("else")
	line("   echo %s >/etc/hostname", name)
	line("   sed -i \"s/127.0.1.1.*$CURRENT_HOSTNAME/127.0.1.1\\t%s/g\" /etc/hosts", name)
	line("fi")
}

// firstrunSSH installs the SSH keys (imager_custom enable_ssh -k, or the first user's
// authorized_keys) or just enables sshd.
func firstrunSSH(line func(string, ...any), fb agentapi.FirstBoot) {
	if len(fb.SSHKeys) > 0 {
		var args strings.Builder
		for _, k := range fb.SSHKeys {
			args.WriteString(" " + shellQuote(k))
		}
		line("if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then")
		line("   /usr/lib/raspberrypi-sys-mods/imager_custom enable_ssh -k%s", args.String())
		line("else")
		line("   install -o \"$FIRSTUSER\" -m 700 -d \"$FIRSTUSERHOME/.ssh\"")
		line("cat > \"$FIRSTUSERHOME/.ssh/authorized_keys\" <<'EOF'")
		line("%s", strings.Join(fb.SSHKeys, "\n"))
		line("EOF")
		line("   chown \"$FIRSTUSER:$FIRSTUSER\" \"$FIRSTUSERHOME/.ssh/authorized_keys\"")
		line("   chmod 600 \"$FIRSTUSERHOME/.ssh/authorized_keys\"")
		if fb.SSHPasswordAuth {
			line("   # rpi-deploy: the profile keeps SSH password logins on")
		} else {
			line("   echo 'PasswordAuthentication no' >>/etc/ssh/sshd_config")
		}
		line("   systemctl enable ssh")
		line("fi")
	}
	if (fb.EnableSSH || fb.SSHPasswordAuth) && len(fb.SSHKeys) == 0 {
		line("if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then")
		line("   /usr/lib/raspberrypi-sys-mods/imager_custom enable_ssh")
		line("else")
		line("   systemctl enable ssh")
		line("fi")
	}
}

// firstrunUserconf sets the first user's name and password: userconf-pi's userconf,
// or chpasswd and renaming user 1000 the way Imager's fallback does.
func firstrunUserconf(line func(string, ...any), fb agentapi.FirstBoot, user string) {
	line("if [ -f /usr/lib/userconf-pi/userconf ]; then")
	line("   /usr/lib/userconf-pi/userconf %s %s", shellQuote(user), shellQuote(fb.PasswordHash))
	line("else")
	if fb.PasswordHash != "" {
		line("   echo \"$FIRSTUSER:%s\" | chpasswd -e", strings.ReplaceAll(fb.PasswordHash, "$", "\\$"))
	}
	line("   if [ \"$FIRSTUSER\" != \"%s\" ]; then", user)
	line("      usermod -l \"%s\" \"$FIRSTUSER\"", user)
	line("      usermod -m -d \"/home/%s\" \"%s\"", user, user)
	line("      groupmod -n \"%s\" \"$FIRSTUSER\"", user)
	line("      if grep -q \"^autologin-user=\" /etc/lightdm/lightdm.conf ; then")
	line("         sed /etc/lightdm/lightdm.conf -i -e \"s/^autologin-user=.*/autologin-user=%s/\"", user)
	line("      fi")
	line("      if [ -f /etc/systemd/system/getty@tty1.service.d/autologin.conf ]; then")
	line("         sed /etc/systemd/system/getty@tty1.service.d/autologin.conf -i -e \"s/$FIRSTUSER/%s/\"", user)
	line("      fi")
	line("      if [ -f /etc/sudoers.d/010_pi-nopasswd ]; then")
	line("         sed -i \"s/^$FIRSTUSER /%s /\" /etc/sudoers.d/010_pi-nopasswd", user)
	line("      fi")
	line("   fi")
	line("fi")
}

// firstrunWiFi configures the Wi-Fi network (imager_custom set_wlan, or
// wpa_supplicant.conf), or with a country alone unblocks the radio.
func firstrunWiFi(line func(string, ...any), fb agentapi.FirstBoot) {
	if w := fb.WiFi; w != nil && w.SSID != "" {
		line("if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then")
		hidden := ""
		if w.Hidden {
			hidden = " -h "
		}
		line("   /usr/lib/raspberrypi-sys-mods/imager_custom set_wlan %s%s %s %s", hidden, shellQuote(w.SSID), shellQuote(w.PSK), shellQuote(w.Country))
		line("else")
		line("cat >/etc/wpa_supplicant/wpa_supplicant.conf <<'WPAEOF'")
		if w.Country != "" {
			line("country=%s", w.Country)
		}
		line("ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev")
		line("ap_scan=1")
		line("")
		line("update_config=1")
		line("network={")
		if w.Hidden {
			line("\tscan_ssid=1")
		}
		line("\tssid=\"%s\"", strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(w.SSID))
		if w.PSK != "" {
			line("\tkey_mgmt=WPA-PSK SAE")
			line("\tpsk=%s", w.PSK)
			line("\tieee80211w=1")
		} else {
			line("\tkey_mgmt=NONE")
		}
		line("}")
		line("WPAEOF")
		line("   chmod 600 /etc/wpa_supplicant/wpa_supplicant.conf")
		line("   rfkill unblock wifi")
		line("   for filename in /var/lib/systemd/rfkill/*:wlan ; do")
		line("       echo 0 > $filename")
		line("   done")
		line("fi")
	} else if w != nil && w.Country != "" {
		line("rfkill unblock wifi")
		line("for filename in /var/lib/systemd/rfkill/*:wlan ; do")
		line("  echo 0 > $filename")
		line("done")
	}
}

// firstrunKeyboardTimezone sets the keymap and time zone (imager_custom, or
// /etc/default/keyboard and tzdata).
func firstrunKeyboardTimezone(line func(string, ...any), fb agentapi.FirstBoot) {
	if fb.KeyboardLayout != "" || fb.Timezone != "" {
		line("if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then")
		if fb.KeyboardLayout != "" {
			line("   /usr/lib/raspberrypi-sys-mods/imager_custom set_keymap %s", shellQuote(fb.KeyboardLayout))
		}
		if fb.Timezone != "" {
			line("   /usr/lib/raspberrypi-sys-mods/imager_custom set_timezone %s", shellQuote(fb.Timezone))
		}
		line("else")
		if fb.Timezone != "" {
			line("   rm -f /etc/localtime")
			line("   echo \"%s\" >/etc/timezone", fb.Timezone)
			line("   dpkg-reconfigure -f noninteractive tzdata")
		}
		if fb.KeyboardLayout != "" {
			line("cat >/etc/default/keyboard <<'KBEOF'")
			line("XKBMODEL=\"pc105\"")
			line("XKBLAYOUT=\"%s\"", fb.KeyboardLayout)
			line("XKBVARIANT=\"\"")
			line("XKBOPTIONS=\"\"")
			line("")
			line("KBEOF")
			line("   dpkg-reconfigure -f noninteractive keyboard-configuration")
		}
		line("fi")
	}
}

// firstrunAdditions are rpi-deploy's: the locale, the files and the run-once commands.
func firstrunAdditions(line func(string, ...any), fb agentapi.FirstBoot) {
	if fb.Locale != "" {
		line("# rpi-deploy: locale")
		line("%s", localeScript(fb.Locale))
	}
	for i, f := range fb.Files {
		mode, owner := fileMode(f), fileOwner(f)
		line("# rpi-deploy: file %d", i+1)
		line("install -d -m 755 %s", shellQuote(path.Dir(f.Path)))
		line("base64 -d >%s <<'RPIDEPLOYEOF'", shellQuote(f.Path))
		enc := base64.StdEncoding.EncodeToString([]byte(f.Content))
		for len(enc) > 76 {
			line("%s", enc[:76])
			enc = enc[76:]
		}
		line("%s", enc)
		line("RPIDEPLOYEOF")
		line("chmod %s %s", mode, shellQuote(f.Path))
		line("chown %s %s", shellQuote(owner), shellQuote(f.Path))
	}
	for i, c := range fb.RunOnce {
		line("# rpi-deploy: run-once command %d", i+1)
		line("sh -c %s", shellQuote(c))
	}
}

// localeScript sets the system locale the Debian way: the locale enabled in
// /etc/locale.gen and generated when the locales package is there, and LANG in
// /etc/default/locale (what update-locale writes) in any case. cloud-init's own
// "locale:" is not used: on Debian it fails the whole module when the locale is not
// already in /etc/locale.gen.
func localeScript(locale string) string {
	return fmt.Sprintf("if [ -f /etc/locale.gen ] && command -v locale-gen >/dev/null; then sed -i 's/^# *\\(%s \\)/\\1/' /etc/locale.gen && locale-gen; fi; echo 'LANG=%s' >/etc/default/locale",
		regexp.QuoteMeta(locale), locale)
}

// userGroups are the groups Raspberry Pi Imager gives the first user.
const userGroups = "users,adm,dialout,audio,netdev,video,plugdev,cdrom,games,input,gpio,spi,i2c,render,sudo"

// shellQuote quotes s for sh as Raspberry Pi Imager does: in single quotes, each
// single quote written as '"'"'.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

func fileMode(f agentapi.File) string {
	if f.Mode == "" {
		return "0644"
	}
	return f.Mode
}

func fileOwner(f agentapi.File) string {
	if f.Owner == "" {
		return "root:root"
	}
	return f.Owner
}

// yamlQuote writes s as a YAML double-quoted scalar. Go's quoting escapes (\n, \t,
// \", \\, \xNN, \uNNNN, \UNNNNNNNN, \a, \b, \f, \r, \v) are all YAML escapes too.
func yamlQuote(s string) string { return strconv.Quote(s) }

// UserData is the cloud-init user-data for the settings, in the order and shape of
// Raspberry Pi Imager's generateCloudInitUserData, without its "packages:
// avahi-daemon" and apt Check-Date lines (a deploy network has no Debian mirror to
// install from). rpi-deploy's additions: "ssh_pwauth: false" with keys unless the
// profile keeps password logins on (cloud-init otherwise leaves sshd's default), ssh keys without
// a user go to the image's default user, write_files for the files, and runcmd for the
// locale (localeScript, with "locale: false" so that cloud-init's own locale module
// stays out) and the run-once commands (cloud-init runs runcmd once per instance).
func UserData(fb agentapi.FirstBoot) string {
	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	line("#cloud-config")
	line("# written by rpi-deploy")
	line("hostname: %s", fb.Hostname)
	line("manage_etc_hosts: true")
	if fb.Timezone != "" {
		line("timezone: %s", fb.Timezone)
	}
	if fb.KeyboardLayout != "" {
		line("keyboard:")
		line("  model: pc105")
		line("  layout: \"%s\"", fb.KeyboardLayout)
	}
	sshEnabled := fb.EnableSSH || fb.SSHPasswordAuth || len(fb.SSHKeys) > 0
	if sshEnabled {
		line("enable_ssh: true")
	}
	userDataUsers(line, fb)
	switch {
	case fb.SSHPasswordAuth:
		line("ssh_pwauth: true")
	case len(fb.SSHKeys) > 0: // keys, and password logins not asked for: off
		line("ssh_pwauth: false")
	}
	if fb.Locale != "" {
		// cloud-init's own locale module would redo (and on Debian, without the
		// locale generated yet, fail) what localeScript does in runcmd.
		line("locale: false")
	}
	userDataFiles(line, fb)
	userDataRuncmd(line, fb)
	return b.String()
}

// userDataUsers writes the users: list (the profile's user), or the image default
// user's ssh_authorized_keys when the profile names no user.
func userDataUsers(line func(string, ...any), fb agentapi.FirstBoot) {
	if fb.User != "" {
		line("users:")
		line("- name: %s", fb.User)
		line("  groups: %s", userGroups)
		line("  shell: /bin/bash")
		if fb.PasswordHash != "" {
			line("  lock_passwd: false")
			line("  passwd: %s", fb.PasswordHash)
		} else if len(fb.SSHKeys) > 0 {
			line("  lock_passwd: true")
		}
		if len(fb.SSHKeys) > 0 {
			line("  ssh_authorized_keys:")
			for _, k := range fb.SSHKeys {
				line("    - %s", k)
			}
			line("  sudo: ALL=(ALL) NOPASSWD:ALL")
		}
	} else if len(fb.SSHKeys) > 0 {
		line("ssh_authorized_keys:")
		for _, k := range fb.SSHKeys {
			line("  - %s", yamlQuote(k))
		}
	}
}

// userDataFiles writes write_files: for the profile's files, deferred until the users exist.
func userDataFiles(line func(string, ...any), fb agentapi.FirstBoot) {
	if len(fb.Files) == 0 {
		return
	}
	line("write_files:")
	for _, f := range fb.Files {
		line("- path: %s", yamlQuote(f.Path))
		line("  permissions: '%s'", fileMode(f))
		line("  owner: %s", yamlQuote(fileOwner(f)))
		line("  encoding: b64")
		line("  content: %s", base64.StdEncoding.EncodeToString([]byte(f.Content)))
		line("  defer: true")
	}
}

// userDataRuncmd writes runcmd: the locale, unblocking Wi-Fi for a country without a
// network, and the run-once commands.
func userDataRuncmd(line func(string, ...any), fb agentapi.FirstBoot) {
	wifiCountryOnly := fb.WiFi != nil && fb.WiFi.SSID == "" && fb.WiFi.Country != ""
	if len(fb.RunOnce) == 0 && !wifiCountryOnly && fb.Locale == "" {
		return
	}
	line("runcmd:")
	if fb.Locale != "" {
		line("  - [ sh, -c, %s ]", yamlQuote(localeScript(fb.Locale)))
	}
	if wifiCountryOnly {
		line("  - [ rfkill, unblock, wifi ]")
		line("  - [ sh, -c, \"for f in /var/lib/systemd/rfkill/*:wlan; do echo 0 > \\\"$f\\\"; done\" ]")
	}
	for _, c := range fb.RunOnce {
		line("  - [ sh, -c, %s ]", yamlQuote(c))
	}
}

// NetworkConfig is the cloud-init network-config (netplan v2) for a profile with a
// Wi-Fi network: Raspberry Pi Imager's generateCloudInitNetworkConfig (wlan0, DHCP,
// regulatory domain, the access point with its hidden flag and derived PSK) with
// rpi-deploy's wired DHCP default kept beside it, since the board was just deployed
// over that port. Without a Wi-Fi SSID it is "" (keep or default the image's file).
func NetworkConfig(fb agentapi.FirstBoot) string {
	w := fb.WiFi
	if w == nil || w.SSID == "" {
		return ""
	}
	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	b.WriteString(defaultNetworkConfig)
	line("  wifis:")
	line("    wlan0:")
	line("      dhcp4: true")
	if w.Country != "" {
		line("      regulatory-domain: \"%s\"", strings.ToUpper(w.Country))
	}
	line("      access-points:")
	line("        \"%s\":", strings.ReplaceAll(w.SSID, `"`, `\"`))
	if w.Hidden {
		line("          hidden: true")
	}
	line("          password: \"%s\"", w.PSK)
	line("      optional: true")
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
// [system] hostname and, when set, the [user], [ssh], [wlan] and [locale] keys of
// Raspberry Pi Imager's custom.toml format (doc/os_customisation_formats.md,
// read by raspberrypi-sys-mods' init_config): the password hash and the derived PSK
// go with password_encrypted = true. Everything else in old is kept. The format has
// no locale, files or commands; Apply refuses a profile that has them.
func CustomToml(old string, fb agentapi.FirstBoot) string {
	doc := old
	if strings.TrimSpace(doc) == "" {
		doc = "# Raspberry Pi first boot configuration, written by rpi-deploy\n"
	}
	q := strconv.Quote
	doc = setTOML(doc, "", "config_version", "1")
	doc = setTOML(doc, "system", "hostname", q(fb.Hostname))
	if fb.User != "" {
		doc = setTOML(doc, "user", "name", q(fb.User))
		if fb.PasswordHash != "" {
			doc = setTOML(doc, "user", "password", q(fb.PasswordHash))
			doc = setTOML(doc, "user", "password_encrypted", "true")
		}
	}
	if fb.EnableSSH || fb.SSHPasswordAuth || len(fb.SSHKeys) > 0 {
		doc = setTOML(doc, "ssh", "enabled", "true")
	}
	if fb.SSHPasswordAuth || len(fb.SSHKeys) > 0 { // with keys, password logins are off unless asked for
		doc = setTOML(doc, "ssh", "password_authentication", strconv.FormatBool(fb.SSHPasswordAuth))
	}
	if len(fb.SSHKeys) > 0 {
		keys := make([]string, len(fb.SSHKeys))
		for i, k := range fb.SSHKeys {
			keys[i] = q(k)
		}
		doc = setTOML(doc, "ssh", "authorized_keys", "[ "+strings.Join(keys, ", ")+" ]")
	}
	if w := fb.WiFi; w != nil && w.SSID != "" {
		doc = setTOML(doc, "wlan", "ssid", q(w.SSID))
		doc = setTOML(doc, "wlan", "password", q(w.PSK))
		doc = setTOML(doc, "wlan", "password_encrypted", "true")
		doc = setTOML(doc, "wlan", "hidden", strconv.FormatBool(w.Hidden))
		doc = setTOML(doc, "wlan", "country", q(w.Country))
	}
	if fb.KeyboardLayout != "" {
		doc = setTOML(doc, "locale", "keymap", q(fb.KeyboardLayout))
	}
	if fb.Timezone != "" {
		doc = setTOML(doc, "locale", "timezone", q(fb.Timezone))
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
