//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/image-tools/osimg"
	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/netnstest"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

const (
	osBootWait = 10 * time.Minute // QEMU start to the first-boot mechanism done, at most
	sshWait    = 8 * time.Minute  // QEMU start to an SSH login, at most
	sshPort    = "2222"           // the host side of QEMU's hostfwd, in the test's own namespace

	// The first-boot profile the product carries (issue 12): the user it creates (or
	// renames the image's first user to), its password, and what it must leave.
	profileUser     = "kiosk"
	profilePassword = "e2e-Profile-pw"
	profileTimezone = "Europe/Rome"
	profileLocale   = "it_IT.UTF-8"
	profileFile     = "/etc/kiosk/board.conf"
	runOnceLog      = "/var/lib/rpi-deploy-run-once.log"
)

// TestSecondBoot flashes a real Debian bookworm arm64 OS image (image-tools/osimg) onto
// the card through rpi-deployd and the agent in QEMU, as TestBootFlashVerify does, then
// boots the card's own system: its root file system and its own cmdline.txt as the
// agent left it (the kernel and a small initrd come from outside, as QEMU's virt
// machine cannot boot kernel_2712.img). The OS must run its first-boot mechanism and
// take the allocated name; a further boot must be clean. Both flavours.
func TestSecondBoot(t *testing.T) {
	initramfs, kernel := input(t, envInitramfs), input(t, envKernel)
	for _, tool := range []string{"qemu-system-aarch64", "mmdebstrap", "ssh", "ssh-keygen", "debugfs", "mtype", "sfdisk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (make deps): %v", tool, err)
		}
	}
	for _, flavour := range []string{osimg.Firstrun, osimg.CloudInit} {
		t.Run(flavour, func(t *testing.T) {
			img, err := osimg.Build(context.Background(), osimg.Options{Flavour: flavour,
				KernelDir: filepath.Dir(kernel), Log: testLog{t}})
			if err != nil {
				t.Fatalf("build the %s OS image: %v", flavour, err)
			}
			t.Logf("OS image %s: built in %.0f s (cached: %v)", img.Dir, img.Info.Seconds, img.Cached)
			secondBoot(t, img, initramfs)
		})
	}
}

// testLog sends build output to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func secondBoot(t *testing.T, img *osimg.Image, initramfs string) {
	ctx := context.Background()
	dir := t.TempDir()
	parts, err := testimg.ReadPartitions(ctx, img.Path)
	if err != nil || len(parts) != 2 {
		t.Fatalf("OS image partitions %v: %v", parts, err)
	}
	boot, root := parts[0].Offset, parts[1].Offset
	origCmdline, err := testimg.MType(ctx, img.Path, boot, "cmdline.txt")
	if err != nil {
		t.Fatal(err)
	}

	// The operator's key: the product's first-boot settings carry it to the card.
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "e2e@rpi-deploy", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}

	packed := filepath.Join(dir, "os-"+img.Flavour+".img.zst")
	man, err := pack.Pack(ctx, pack.Options{Input: img.Path, Output: packed, Concurrency: 2})
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	if man.FirstBoot != img.Flavour {
		t.Fatalf("pack detected first-boot mechanism %q, want %q", man.FirstBoot, img.Flavour)
	}
	fi, err := os.Stat(img.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("OS image: %d MiB raw, %d MiB data, %d MiB packed", fi.Size()>>20, man.DataBytes>>20, man.CompressedSize>>20)
	card := filepath.Join(dir, "card.img")
	writeJunk(t, card, fi.Size()+32<<20)

	// The flash, as TestBootFlashVerify: rpi-deployd and the agent in namespaces.
	l := netnstest.NewLink(t, serverCIDR, "")
	l.AddBridgeTap(t, "tap0")
	useNamespace(l.Server)
	srv := startServer(t, l)
	if err := srv.Do(ctx, http.MethodPost, "/api/v1/products", domain.ProductSpec{Code: "KXP2", Name: "KXP2",
		Naming: mgmtapi.NamingPool, FirstBoot: &agentapi.FirstBoot{EnableSSH: true,
			SSHKeys: []string{strings.TrimSpace(string(pub))}}}, nil); err != nil {
		t.Fatalf("product first-boot settings: %v", err)
	}
	// The product's first-boot profile: a user with a password and the key, SSH
	// password logins off, time zone, locale, a file templated over the board's facts
	// and a run-once command.
	if err := srv.Do(ctx, http.MethodPut, "/api/v1/profiles/e2e", map[string]any{
		"user": profileUser, "password": profilePassword, "ssh_authorized_keys": []string{strings.TrimSpace(string(pub))},
		"ssh_password_auth": false, "timezone": profileTimezone, "locale": profileLocale,
		"files": []map[string]string{{"path": profileFile, "mode": "0640", "owner": profileUser + ":" + profileUser,
			"content": "hostname={{.Hostname}}\nserial={{.Serial}}\n"}},
		"run_once": []string{"echo ran >>" + runOnceLog},
	}, nil); err != nil {
		t.Fatalf("profile: %v", err)
	}
	if err := srv.Do(ctx, http.MethodPut, "/api/v1/profile-links/product/KXP2", map[string]string{"profile": "e2e"}, nil); err != nil {
		t.Fatalf("attach the profile: %v", err)
	}
	fleet := srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 1, Image: packed})
	g := bootQEMU(t, vm{ns: l.Client, kernel: img.Kernel, initramfs: initramfs, card: card,
		cmdline: "rpideploy.target=/dev/vda rpideploy.serial=" + serial})
	if err := g.wait(bootWait + 4*time.Minute); err != nil {
		t.Fatalf("flash: QEMU: %v\nconsole (last lines):\n%s", err, g.tail(80))
	}
	var board struct {
		mgmtapi.Board
		Deployments []mgmtapi.Deployment `json:"deployments"`
	}
	if err := srv.Do(ctx, http.MethodGet, "/api/v1/boards/"+serial, nil, &board); err != nil {
		t.Fatalf("board %s: %v", serial, err)
	}
	if len(board.Deployments) != 1 || board.Deployments[0].State != mgmtapi.DeployVerified || board.Deployments[0].Image != fleet.ImageName {
		t.Fatalf("deployments %+v, want one verified of %s\nconsole (last lines):\n%s", board.Deployments, fleet.ImageName, g.tail(60))
	}
	d := board.Deployments[0]
	name := d.Hostname
	if !regexp.MustCompile(`^KXP2-CORO-\d{3}$`).MatchString(name) {
		t.Fatalf("allocated hostname %q, want KXP2-CORO-NNN", name)
	}
	t.Logf("flashed and verified in %.0f s as %s", g.took.Seconds(), name)

	// The card as the agent left it: the boot files of the mechanism.
	cmdline, err := testimg.MType(ctx, card, boot, "cmdline.txt")
	if err != nil {
		t.Fatal(err)
	}
	instance := fmt.Sprintf("rpi-deploy-%d", d.ID)
	switch img.Flavour {
	case osimg.Firstrun:
		if !strings.Contains(string(cmdline), " systemd.run=/boot/firmware/firstrun.sh ") {
			t.Fatalf("the agent's cmdline.txt does not run firstrun.sh: %q", cmdline)
		}
	case osimg.CloudInit:
		if !strings.Contains(string(cmdline), " ds=nocloud;i="+instance) {
			t.Fatalf("the agent's cmdline.txt lacks ds=nocloud;i=%s: %q", instance, cmdline)
		}
	}

	// The OS's own boots run in a namespace of their own: QEMU's user network is
	// restricted (no packet of the guest leaves), and its SSH forward listens on that
	// namespace's loopback only.
	ns := netnstest.New(t)
	knownHosts := filepath.Join(dir, "known_hosts")
	ssh := func(limit time.Duration, g *guest, strict, command string, opts ...string) (string, error) {
		var out []byte
		var err error
		for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(3 * time.Second) {
			select {
			case <-g.exited:
				return "", fmt.Errorf("QEMU exited: %v", g.err)
			default:
			}
			args := append([]string{"-i", key, "-p", sshPort, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
				"-o", "StrictHostKeyChecking=" + strict, "-o", "UserKnownHostsFile=" + knownHosts, "-o", "LogLevel=ERROR"}, opts...)
			cmd := ns.Command(ctx, "ssh", append(args, profileUser+"@127.0.0.1", command)...)
			if out, err = cmd.CombinedOutput(); err == nil {
				return string(out), nil
			}
			if !strings.Contains(string(out), "Connection") && !strings.Contains(string(out), "kex_exchange") {
				break // not a "not up yet": the login or the command failed
			}
		}
		return string(out), fmt.Errorf("ssh %q: %v", command, err)
	}
	osCmdline := strings.TrimSpace(string(cmdline)) + " console=ttyAMA0"

	// The first boot of the OS: the first-boot mechanism names it.
	g2 := bootOS(t, ns, img, card, osCmdline)
	var took time.Duration
	switch img.Flavour {
	case osimg.Firstrun:
		// firstrun.sh runs as the kernel command line's unit, then systemd reboots
		// (systemd.run_success_action=reboot), which -no-reboot makes a QEMU exit.
		if err := g2.wait(osBootWait); err != nil {
			t.Fatalf("first OS boot: %v\nconsole (last lines):\n%s", err, g2.tail(80))
		}
		took = g2.took
		if !strings.Contains(g2.log(), "reboot: Restarting system") {
			t.Errorf("first OS boot did not end in a reboot:\n%s", g2.tail(40))
		}
	case osimg.CloudInit:
		out, err := ssh(sshWait, g2, "accept-new", "cloud-init status --wait --long; hostname")
		if err != nil {
			t.Fatalf("first OS boot: %v: %s\nconsole (last lines):\n%s", err, out, g2.tail(80))
		}
		took = time.Since(g2.start)
		if !strings.Contains(out, "status: done") || !strings.Contains(out, "\n"+name+"\n") {
			t.Errorf("first OS boot: cloud-init status and hostname:\n%s", out)
		}
		if out, err := ssh(time.Minute, g2, "yes", "sudo systemctl poweroff"); err != nil && !strings.Contains(out, "closed") {
			t.Logf("poweroff: %v: %s", err, out)
		}
		if err := g2.wait(3 * time.Minute); err != nil {
			t.Fatalf("first OS boot, power-off: %v\nconsole (last lines):\n%s", err, g2.tail(80))
		}
	}
	checkNamed(t, card, boot, root, name, origCmdline, cmdline, img.Flavour, instance, g2)

	// A further boot: clean, no first-boot run, and an SSH login with the product's
	// key (and, from the second login on, the host key of the first: a first-boot
	// rerun would have made new host keys).
	g3 := bootOS(t, ns, img, card, strings.TrimSpace(string(mustMType(t, card, boot, "cmdline.txt")))+" console=ttyAMA0")
	out, err := ssh(sshWait, g3, map[bool]string{true: "accept-new", false: "yes"}[img.Flavour == osimg.Firstrun],
		// cloud-init removes boot-finished at the start of every boot and writes it at
		// the end: wait for that before the power-off (no cloud-init: no wait).
		"cloud-init status --wait >/dev/null 2>&1; hostname; cat /etc/hostname; cat /proc/cmdline; ls /var/lib/cloud/instances 2>/dev/null; echo end")
	if err != nil {
		t.Fatalf("further boot: %v: %s\nconsole (last lines):\n%s", err, out, g3.tail(80))
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 3 || lines[0] != name || lines[1] != name {
		t.Errorf("further boot: hostname, /etc/hostname = %q, want %s", lines[:min(2, len(lines))], name)
	}
	if strings.Contains(out, "systemd.run") {
		t.Errorf("further boot: the command line still runs firstrun.sh:\n%s", out)
	}
	if img.Flavour == osimg.CloudInit && !strings.Contains(out, "\n"+instance+"\nend") {
		t.Errorf("further boot: cloud-init instances are not just %s:\n%s", instance, out)
	}
	if strings.Contains(g3.log(), "Command from Kernel Command Line") {
		t.Errorf("further boot ran a command from the kernel command line:\n%s", g3.tail(40))
	}
	checkProfile(t, g3, ssh, name)
	if out, err := ssh(time.Minute, g3, "yes", "sudo systemctl poweroff"); err != nil && !strings.Contains(out, "closed") {
		t.Logf("poweroff: %v: %s", err, out)
	}
	if err := g3.wait(3 * time.Minute); err != nil {
		t.Fatalf("further boot, power-off: %v\nconsole (last lines):\n%s", err, g3.tail(80))
	}
	checkNamed(t, card, boot, root, name, origCmdline, cmdline, img.Flavour, instance, g3)
	if !t.Failed() {
		// One line for the name (issue 11), one for the profile's login (issue 12).
		fmt.Printf("second-boot: %s hostname=%s seconds=%.0f\n", img.Flavour, name, took.Seconds())
		fmt.Printf("second-boot: %s ssh-login=ok user=%s\n", img.Flavour, profileUser)
		t.Logf("further boot: SSH login after %.0f s, powered off after %.0f s", g3.at("login").Seconds(), g3.took.Seconds())
	}
}

// checkNamed reads the powered-off card with debugfs and mtools: the name in
// /etc/hostname and on the 127.0.1.1 line of /etc/hosts, and the boot files as the
// mechanism promises to leave them (firstrun: script gone, cmdline.txt as the image
// had it; cloud-init: seed and cmdline.txt kept, one instance).
func checkNamed(t *testing.T, card string, boot, root int64, name string, origCmdline, agentCmdline []byte, flavour, instance string, g *guest) {
	t.Helper()
	ctx := context.Background()
	fail := func(format string, args ...any) {
		t.Fatalf("the card's OS did not name itself: %s\nconsole (last lines):\n%s", fmt.Sprintf(format, args...), g.tail(60))
	}
	if b, err := testimg.DebugfsCat(ctx, card, root, "/etc/hostname"); err != nil || strings.TrimSpace(string(b)) != name {
		fail("/etc/hostname = %q (%v), want %s", b, err, name)
	}
	hosts, err := testimg.DebugfsCat(ctx, card, root, "/etc/hosts")
	if err != nil || !regexp.MustCompile(`(?m)^127\.0\.1\.1\s.*\b`+name+`\b`).Match(hosts) {
		fail("/etc/hosts has no 127.0.1.1 line naming %s (%v):\n%s", name, err, hosts)
	}
	files, err := testimg.MList(ctx, card, boot, "/")
	if err != nil {
		t.Fatal(err)
	}
	cmdline := mustMType(t, card, boot, "cmdline.txt")
	switch flavour {
	case osimg.Firstrun:
		for _, f := range files {
			if f == "firstrun.sh" {
				fail("firstrun.sh is still on the boot partition")
			}
		}
		if string(cmdline) != string(origCmdline) {
			fail("cmdline.txt = %q, want the image's own %q", cmdline, origCmdline)
		}
	case osimg.CloudInit:
		if string(cmdline) != string(agentCmdline) {
			fail("cmdline.txt = %q, want it kept as %q", cmdline, agentCmdline)
		}
		if _, err := testimg.DebugfsCat(ctx, card, root, "/var/lib/cloud/instances/"+instance+"/boot-finished"); err != nil {
			fail("cloud-init did not finish instance %s: %v", instance, err)
		}
	}
}

func mustMType(t *testing.T, card string, boot int64, name string) []byte {
	t.Helper()
	b, err := testimg.MType(context.Background(), card, boot, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bootOS boots the card's own system in QEMU inside ns: Debian's kernel, the osimg
// initrd (root=PARTUUID= from the command line), the command line given (the card's
// cmdline.txt and the virt machine's UART as the console), the user network
// restricted to the guest with port 22 forwarded from ns's 127.0.0.1:sshPort.
func bootOS(t *testing.T, ns *netnstest.NS, img *osimg.Image, card, cmdline string) *guest {
	t.Helper()
	args := []string{"-M", "virt", "-cpu", "cortex-a76", "-smp", "2", "-m", "1024",
		"-nographic", "-no-reboot",
		"-kernel", img.Kernel, "-initrd", img.Initrd, "-append", cmdline,
		"-drive", "file=" + card + ",format=raw,if=none,id=sd,cache=unsafe",
		"-device", "virtio-blk-pci,drive=sd",
		"-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:" + sshPort + "-:22",
		"-device", "virtio-net-pci,netdev=n0,mac=" + mac + ",romfile=",
		"-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
	}
	g := &guest{out: &lines{markers: map[string]string{"login": "login:"}}, exited: make(chan struct{})}
	g.cmd = ns.Command(context.Background(), "qemu-system-aarch64", args...)
	g.run(t)
	return g
}

// checkProfile logs into the further boot as the profile's user with the profile's
// key and checks what the profile promised: the user with the profile's password
// (its shadow hash re-made by the real openssl from the password), SSH password
// logins refused (the server offers publickey only), time zone and locale applied, the
// templated file holding this board's hostname and serial, the run-once command run
// exactly once over two boots.
func checkProfile(t *testing.T, g *guest, ssh func(time.Duration, *guest, string, string, ...string) (string, error), name string) {
	t.Helper()
	out, err := ssh(time.Minute, g, "yes", `echo "user=$(id -un)"; echo "home=$HOME"; echo "tz=$(cat /etc/timezone)"; `+
		`echo "localtime=$(readlink -f /etc/localtime)"; echo "lang=$(. /etc/default/locale; echo $LANG)"; `+
		`echo "file=$(sudo stat -c %U:%a `+profileFile+`)"; `+
		`sudo sed 's/^/content:/' `+profileFile+`; echo "runs=$(sudo grep -c '^ran$' `+runOnceLog+`)"; `+
		`echo "shadow=$(sudo getent shadow `+profileUser+` | cut -d: -f2)"`)
	if err != nil {
		t.Fatalf("profile: login as %s with the profile's key: %v: %s\nconsole (last lines):\n%s", profileUser, err, out, g.tail(60))
	}
	got := map[string]string{}
	var content []string
	for _, l := range strings.Split(out, "\n") {
		if c, ok := strings.CutPrefix(l, "content:"); ok {
			content = append(content, c)
		} else if k, v, ok := strings.Cut(l, "="); ok {
			got[k] = v
		}
	}
	want := map[string]string{"user": profileUser, "home": "/home/" + profileUser, "tz": profileTimezone,
		"localtime": "/usr/share/zoneinfo/" + profileTimezone, "lang": profileLocale, "file": profileUser + ":640", "runs": "1"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("profile: %s = %q, want %q", k, got[k], v)
		}
	}
	// The OS images leave out Debian's locales package (no locale-gen): the locale is
	// applied as LANG in /etc/default/locale, which is what is checked above.
	if wantContent := []string{"hostname=" + name, "serial=" + strings.ToLower(serial)}; strings.Join(content, "|") != strings.Join(wantContent, "|") {
		t.Errorf("profile: %s = %q, want %q", profileFile, content, wantContent)
	}
	parts := strings.Split(got["shadow"], "$")
	if len(parts) != 4 || parts[1] != "6" {
		t.Errorf("profile: shadow hash of %s = %q, want a $6$ hash", profileUser, got["shadow"])
	} else if remade, err := exec.Command("openssl", "passwd", "-6", "-salt", parts[2], profilePassword).Output(); err != nil ||
		strings.TrimSpace(string(remade)) != got["shadow"] {
		t.Errorf("profile: shadow hash %q is not the profile's password (openssl: %s %v)", got["shadow"], remade, err)
	}
	// Password logins are refused: the server offers publickey only.
	out, err = ssh(time.Minute, g, "yes", "true", "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive")
	if err == nil || !strings.Contains(out, "Permission denied (publickey)") {
		t.Errorf("profile: a login without the key: %v: %q, want Permission denied (publickey)", err, out)
	}
}
