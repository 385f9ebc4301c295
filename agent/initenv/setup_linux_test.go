package initenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// childEnv makes the test binary run setupChild instead of the tests: the parent test
// starts it inside a network namespace with `ip netns exec`.
const childEnv = "INITENV_TEST_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(setupChild(dir))
	}
	os.Exit(m.Run())
}

type childResult struct {
	Env   *Env
	Addrs []string
	Err   string
}

// setupChild runs the DHCP part of Setup (no mounts, no modules) with the kernel command
// line dir/cmdline and prints a childResult as JSON.
func setupChild(dir string) int {
	c := defaultConfig
	c.cmdlinePath = filepath.Join(dir, "cmdline")
	c.modulesDir = filepath.Join(dir, "modules")
	c.mount = false
	c.linkWait = 5 * time.Second
	c.targetWait = 0
	c.dhcpTimeout = 2 * time.Second
	c.dhcpRetries = 2
	c.dhcpFor = 5 * time.Second
	var res childResult
	env, err := c.setup(context.Background(), nil)
	res.Env = env
	if err != nil {
		res.Err = err.Error()
	}
	if ifc, err := net.InterfaceByName("eth0"); err == nil {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() != nil {
				res.Addrs = append(res.Addrs, a.String())
			}
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// netPair makes two network namespaces joined by a veth pair: "eth0" (MAC mac) in the
// agent's and "srv0" with 10.77.0.1/24 in the server's. Both go away at cleanup.
func netPair(t *testing.T, mac string) (agentNS, srvNS string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root for network namespaces (CI runs as root)")
	}
	id := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	agentNS, srvNS = "ie-a-"+id, "ie-s-"+id
	for _, ns := range []string{agentNS, srvNS} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	// ip netns exec bind-mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf, so the
	// lease's DNS settings land there and not in the host's file.
	etc := filepath.Join("/etc/netns", agentNS)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "link", "add", "ie-v"+id[:6], "type", "veth", "peer", "name", "ie-p"+id[:6])
	run(t, "ip", "link", "set", "ie-v"+id[:6], "netns", agentNS, "name", "eth0", "address", mac)
	run(t, "ip", "link", "set", "ie-p"+id[:6], "netns", srvNS, "name", "srv0")
	run(t, "ip", "-n", srvNS, "addr", "add", "10.77.0.1/24", "dev", "srv0")
	run(t, "ip", "-n", srvNS, "link", "set", "srv0", "up")
	run(t, "ip", "-n", agentNS, "link", "set", "lo", "up")
	return agentNS, srvNS
}

// dnsmasq runs a DHCP-only dnsmasq on srv0 in ns with the extra options.
func dnsmasq(t *testing.T, ns string, extra ...string) {
	t.Helper()
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		t.Fatalf("dnsmasq not installed (scripts/deps/initramfs.apt lists it; run make deps): %v", err)
	}
	args := append([]string{"netns", "exec", ns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--port=0", "--interface=srv0", "--bind-interfaces", "--no-ping", "--leasefile-ro",
		"--dhcp-range=10.77.0.50,10.77.0.99,255.255.255.0,1h", "--log-dhcp", "--log-facility=-"}, extra...)
	cmd := exec.Command("ip", args...)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dnsmasq log:\n%s", log.String())
		}
	})
}

func runChild(t *testing.T, ns, cmdline string) childResult {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte(cmdline), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	var res childResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("child output %q: %v\n%s", out, err, stderr.String())
	}
	t.Logf("child log:\n%s", stderr.String())
	return res
}

// TestSetupDHCP runs Setup's network part against dnsmasq, a real DHCP server, over a
// veth pair between two network namespaces.
func TestSetupDHCP(t *testing.T) {
	const mac = "2c:cf:67:00:00:07"
	t.Run("server URL from option 224", func(t *testing.T) {
		agentNS, srvNS := netPair(t, mac)
		// Option 224 only goes to clients that send our class ID, as rpi-deployd does.
		dnsmasq(t, srvNS, "--dhcp-vendorclass=set:agent,rpi-deploy-agent", "--dhcp-option=tag:agent,224,http://10.77.0.1:8080/")
		res := runChild(t, agentNS, "console=ttyAMA0 rpideploy.target=/dev/vda rpideploy.serial=10000000ABCDEF12\n")
		if res.Err != "" {
			t.Fatalf("setup: %s", res.Err)
		}
		want := Env{ServerURL: "http://10.77.0.1:8080", Target: "/dev/vda", Serial: "10000000abcdef12", MAC: mac, IP: res.Env.IP, Interface: "eth0"}
		if *res.Env != want {
			t.Errorf("env = %+v, want %+v", *res.Env, want)
		}
		ip := net.ParseIP(res.Env.IP).To4()
		if ip == nil || ip[0] != 10 || ip[1] != 77 || ip[3] < 50 || ip[3] > 99 {
			t.Errorf("IP %q not from the DHCP range", res.Env.IP)
		}
		if len(res.Addrs) != 1 || res.Addrs[0] != res.Env.IP+"/24" {
			t.Errorf("eth0 addresses %v, want [%s/24]", res.Addrs, res.Env.IP)
		}
	})
	t.Run("command line server wins, MAC override", func(t *testing.T) {
		agentNS, srvNS := netPair(t, mac)
		dnsmasq(t, srvNS, "--dhcp-option=224,http://10.77.0.1:8080")
		res := runChild(t, agentNS, "rpideploy.server=http://10.77.0.1:9999 rpideploy.mac=2C:CF:67:00:00:07")
		if res.Err != "" {
			t.Fatalf("setup: %s", res.Err)
		}
		if res.Env.ServerURL != "http://10.77.0.1:9999" || res.Env.Target != DefaultTarget || res.Env.Serial != "" || res.Env.MAC != mac {
			t.Errorf("env = %+v", *res.Env)
		}
	})
	t.Run("no server anywhere", func(t *testing.T) {
		agentNS, srvNS := netPair(t, mac)
		dnsmasq(t, srvNS)
		res := runChild(t, agentNS, "quiet")
		if !strings.Contains(res.Err, "no rpideploy.server on the kernel command line and no option 224") {
			t.Errorf("error = %q, want the missing-server error", res.Err)
		}
	})
	t.Run("no DHCP server", func(t *testing.T) {
		agentNS, _ := netPair(t, mac)
		res := runChild(t, agentNS, "rpideploy.server=http://10.77.0.1:8080")
		if !strings.Contains(res.Err, "DHCP on eth0: no lease") {
			t.Errorf("error = %q, want a DHCP error", res.Err)
		}
	})
	t.Run("no interface with that MAC", func(t *testing.T) {
		agentNS, _ := netPair(t, mac)
		res := runChild(t, agentNS, "rpideploy.server=http://10.77.0.1:8080 rpideploy.mac=02:00:00:00:00:99")
		if !strings.Contains(res.Err, "no network interface with MAC 02:00:00:00:00:99") {
			t.Errorf("error = %q, want the missing-interface error", res.Err)
		}
	})
	t.Run("bad command line", func(t *testing.T) {
		agentNS, _ := netPair(t, mac)
		res := runChild(t, agentNS, "rpideploy.serial=xyz")
		if !strings.Contains(res.Err, "rpideploy.serial") || res.Env != nil {
			t.Errorf("error = %q env %+v, want a command line error and no env", res.Err, res.Env)
		}
	})
}
