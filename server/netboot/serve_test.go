package netboot_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/dhcp"
	"github.com/rpi-deploy/rpi-deploy/server/dhcp/dhcptest"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/netnstest"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

var binary string

func TestMain(m *testing.M) {
	var err error
	if binary, err = servertest.Build(servertest.ServerPkg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

type daemon struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
}

var listening = regexp.MustCompile(`rpi-deployd: listening on (http://\S+)`)

// startServe runs `rpi-deployd serve` inside ns and waits for its "listening on" line.
func startServe(t *testing.T, ns *netnstest.NS, args ...string) *daemon {
	t.Helper()
	d := &daemon{stderr: &bytes.Buffer{}}
	d.cmd = ns.Command(context.Background(), binary, append([]string{"serve"}, args...)...)
	pr, pw := io.Pipe()
	d.cmd.Stderr = pw
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			d.stderr.WriteString(sc.Text() + "\n")
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	t.Cleanup(func() { d.stop(t); pw.Close() })
	select {
	case d.url = <-found:
	case <-time.After(20 * time.Second):
		t.Fatalf("rpi-deployd did not start:\n%s", d.stderr)
	}
	return d
}

func (d *daemon) stop(t *testing.T) {
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("rpi-deployd exit: %v\n%s", err, d.stderr)
		}
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-done
		t.Errorf("rpi-deployd did not stop on SIGTERM")
	}
}

func tftpRoot(t *testing.T) (string, []byte) {
	root := t.TempDir()
	kernel := make([]byte, 700_001)
	rand.Read(kernel)
	for name, b := range map[string][]byte{"kernel_2712.img": kernel, "initramfs_2712": []byte("cpio"), "bcm2712-rpi-5-b.dtb": []byte("dtb"),
		"cmdline.txt": []byte("root=PARTUUID=1234-02 rootwait\n")} {
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, kernel
}

func udhcpc(t *testing.T, ns *netnstest.NS, ifc string, extra ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "s.sh")
	os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && env > "+dir+"/env\nexit 0\n"), 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := ns.Run(ctx, "busybox", append([]string{"udhcpc", "-i", ifc, "-f", "-q", "-n", "-t", "3", "-T", "1", "-s", script}, extra...)...)
	b, rerr := os.ReadFile(filepath.Join(dir, "env"))
	if rerr != nil {
		t.Fatalf("udhcpc got no lease: %v %s", err, out)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = strings.Trim(v, "'")
		}
	}
	return m
}

func atftp(t *testing.T, ns *netnstest.NS, name string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "f")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if msg, err := ns.Run(ctx, "atftp", "--option", "blksize 1468", "--option", "tsize 0", "-g", "-r", name, "-l", out, "10.74.0.1", "69"); err != nil {
		t.Fatalf("atftp %s: %v %s", name, err, msg)
	}
	b, _ := os.ReadFile(out)
	return b
}

// TestServeNetboot drives the real rpi-deployd binary in a network namespace, with
// --dhcp-only-boards: a Pi bootloader's DHCP exchange (scapy) right after a flood of
// DISCOVERs from random MACs, its TFTP reads with the
// per-board cmdline.txt, the agent's DHCP with option 224 (a plain DHCP client gets
// nothing), and then checks that the lease and the board's
// netboot events are in the SQLite database, and that a restarted server (configured
// through the config file this time) gives the board its address back.
func TestServeNetboot(t *testing.T) {
	netnstest.Require(t)
	l := netnstest.NewLink(t, "10.74.0.1/24", "")
	root, kernel := tftpRoot(t)
	data := t.TempDir()
	d := startServe(t, l.Server, "--data", data, "--listen", "10.74.0.1:0", "--dhcp-mode", "full",
		"--dhcp-interface", l.ServerIf, "--dhcp-range", "10.74.0.100-10.74.0.150", "--tftp-root", root,
		"--dhcp-only-boards")

	var mac string
	l.Client.MustDo(t, func() error {
		ifc, err := net.InterfaceByName(l.ClientIf)
		if err == nil {
			mac = ifc.HardwareAddr.String()
		}
		return err
	})

	// The bootloader: DISCOVER/REQUEST with the option 97 a real Pi 4 sent (serial
	// 5b154510, the TFTP prefix that board asked for).
	const serial = "5b154510"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// First the issue-13 attack: 150 Pi-shaped DISCOVERs from random MACs that never
	// REQUEST (Pi-shaped, so that --dhcp-only-boards answers them). The range has 51
	// addresses; the server holds at most half of them for the flood.
	flood, _ := filepath.Abs("../dhcp/testdata/discover_flood.py")
	fc := l.Client.Command(ctx, "/usr/bin/python3", flood, l.ClientIf, "150", "pi")
	fc.Env = append(fc.Environ(), "OPT97_HEX="+capturedOption97(t))
	fout, err := fc.Output()
	var fr struct {
		Offers  int      `json:"offers"`
		Offered []string `json:"offered"`
	}
	if err != nil || json.Unmarshal(fout, &fr) != nil || fr.Offers == 0 || len(fr.Offered) > 25 {
		t.Errorf("flood: %v %s; want offers, for at most 25 distinct addresses", err, fout)
	}
	// The real board right after it.
	script, _ := filepath.Abs("../dhcp/testdata/pi_dora.py")
	out, err := l.Client.Run(ctx, "/usr/bin/python3", script, l.ClientIf, capturedOption97(t), "dora")
	if err != nil {
		t.Fatal(err)
	}
	var ack struct {
		YIAddr  string            `json:"yiaddr"`
		Options map[string]string `json:"options"`
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &ack) != nil || ack.Options["53"] != "05" {
		t.Fatalf("no ACK for the bootloader:\n%s\n%s", out, d.stderr)
	}
	if ack.Options["43"] != hex.EncodeToString(dhcp.PXEMenu) {
		t.Errorf("option 43 = %s", ack.Options["43"])
	}
	l.Client.MustRun(t, "ip", "addr", "add", ack.YIAddr+"/24", "dev", l.ClientIf)

	// TFTP: the per-board cmdline.txt names the server, the board and its MAC.
	cmdline := string(atftp(t, l.Client, serial+"/cmdline.txt"))
	for _, want := range []string{"rpideploy.server=" + d.url, "rpideploy.board=" + serial, "rpideploy.mac=" + mac} {
		if !strings.Contains(cmdline, want) {
			t.Errorf("cmdline.txt %q lacks %q", cmdline, want)
		}
	}
	if f := strings.Fields(cmdline); lastConsole(f) != "console=tty1" {
		t.Errorf("cmdline.txt %q: last console %q, want console=tty1 (HDMI shows the agent by default)", cmdline, lastConsole(f))
	}
	if strings.Contains(cmdline, "PARTUUID") {
		t.Errorf("served the image's cmdline.txt: %q", cmdline)
	}
	if got := atftp(t, l.Client, serial+"/kernel_2712.img"); !bytes.Equal(got, kernel) {
		t.Errorf("kernel: %d bytes differ", len(got))
	}
	l.Client.MustRun(t, "ip", "addr", "flush", "dev", l.ClientIf)

	// A plain DHCP client is not a board: --dhcp-only-boards leaves it unanswered.
	{
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := l.Client.Run(ctx, "busybox", "udhcpc", "-i", l.ClientIf, "-f", "-q", "-n", "-t", "2", "-T", "1", "-s", "/bin/true")
		cancel()
		if err == nil || !strings.Contains(out, "no lease") {
			t.Errorf("plain udhcpc with --dhcp-only-boards: %v %s, want no lease", err, out)
		}
	}

	// The agent's Linux DHCP: same address, option 224 = the agent URL.
	lease := udhcpc(t, l.Client, l.ClientIf, "-V", "rpi-deploy-agent", "-O", "224")
	if got, _ := hex.DecodeString(lease["opt224"]); string(got) != d.url || lease["ip"] != ack.YIAddr {
		t.Errorf("agent lease %s, option 224 %q; want %s and %q", lease["ip"], got, ack.YIAddr, d.url)
	}
	d.stop(t) // the server records every queued event before it exits

	st, err := store.Open(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	leases, err := st.DHCPLeases(context.Background(), domain.DefaultSite)
	if err != nil || len(leases) != 1 || leases[0].MAC != mac || leases[0].IP != ack.YIAddr || leases[0].Serial != serial || leases[0].Kind != "agent" {
		t.Errorf("stored leases %+v, %v; want %s at %s, serial %s, kind agent", leases, err, mac, ack.YIAddr, serial)
	}
	evs, err := st.BoardEvents(context.Background(), "", mac, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind+" "+e.Detail)
	}
	all := strings.Join(kinds, "\n")
	for _, want := range []string{"dhcp.offer serial " + serial + ": dhcp.offer " + ack.YIAddr, "dhcp.ack serial " + serial + ": dhcp.ack " + ack.YIAddr,
		"tftp.file serial " + serial + ": tftp.file cmdline.txt", "tftp.start serial " + serial + ": tftp.start kernel_2712.img 700001 bytes",
		"tftp.file serial " + serial + ": tftp.file kernel_2712.img 700001 bytes"} {
		if !strings.Contains(all, want) {
			t.Errorf("board events lack %q:\n%s", want, all)
		}
	}
	st.Close()

	// Restart, configured by the config file: the board gets its address back.
	cfg := filepath.Join(t.TempDir(), "rpi-deployd.json")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`{"data": %q, "listen": "10.74.0.1:0", "netboot": {"dhcp_mode": "full",
		"dhcp_interface": %q, "dhcp_range": "10.74.0.100-10.74.0.150", "lease_time": "30m"}}`, data, l.ServerIf)), 0o644)
	startServe(t, l.Server, "--config", cfg)
	again := udhcpc(t, l.Client, l.ClientIf)
	if again["ip"] != ack.YIAddr || again["lease"] != "1800" {
		t.Errorf("after restart: %s (lease %s), want %s for 1800 s", again["ip"], again["lease"], ack.YIAddr)
	}
}

func TestServeStartupErrors(t *testing.T) {
	netnstest.Require(t)
	l := netnstest.NewLink(t, "10.73.0.1/24", "")
	data := t.TempDir()
	for _, tc := range []struct {
		ns   *netnstest.NS
		args []string
		want string
	}{
		{l.Client, []string{"--dhcp-mode", "proxy", "--dhcp-interface", l.ClientIf}, "has no IPv4 address"},
		{l.Server, []string{"--dhcp-mode", "full", "--dhcp-interface", "nosuch0", "--dhcp-range", "10.73.0.10-10.73.0.20"}, `dhcp interface "nosuch0"`},
		{l.Server, []string{"--dhcp-mode", "full", "--dhcp-interface", l.ServerIf, "--dhcp-range", "10.99.0.10-10.99.0.20"}, "outside the network"},
		{l.Server, []string{"--tftp-root", t.TempDir()}, "lacks kernel_2712.img"},
		{l.Server, []string{"--dhcp-mode", "full", "--dhcp-interface", l.ServerIf, "--dhcp-range", "nonsense"}, "want FIRST-LAST"},
		{l.Server, []string{"--console", "vga"}, `console "vga": want "hdmi"`},
		{l.Server, []string{"--dhcp-mode", "proxy", "--dhcp-interface", l.ServerIf, "--dhcp-only-boards"}, "dhcp_only_boards is for dhcp mode full"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := tc.ns.Run(ctx, binary, append([]string{"serve", "--data", data, "--listen", "127.0.0.1:0"}, tc.args...)...)
		cancel()
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("serve %v: %v\n%s\nwant an error with %q", tc.args, err, out, tc.want)
		}
	}
}

// capturedOption97 is the hex of a real Pi 4's option 97 (server/dhcp/testdata/option97-rpi4.txt).
func capturedOption97(t testing.TB) string {
	t.Helper()
	v, err := dhcptest.CapturedOption97()
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(v)
}

// lastConsole is the last console= argument: the one Linux makes /dev/console.
func lastConsole(args []string) string {
	last := ""
	for _, a := range args {
		if strings.HasPrefix(a, "console=") {
			last = a
		}
	}
	return last
}
