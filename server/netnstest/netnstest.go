// Package netnstest gives tests their own Linux network namespaces joined by veth
// pairs (and, for QEMU guests, a bridge with a tap device), so DHCP, TFTP and boot
// tests send traffic only inside namespaces the test created. Everything it creates
// is removed in t.Cleanup, also when the test fails. It needs root (CAP_SYS_ADMIN,
// CAP_NET_ADMIN); Require fails the test when that is impossible here.
//
// Typical use:
//
//	l := netnstest.NewLink(t, "10.77.0.1/24", "") // server end addressed, client end bare
//	l.Server.Do(t, func() error { ...open sockets... })  // sockets live in the namespace
//	out := l.Client.Run(t, "dhclient", "-1", ...)
package netnstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// NS is one network namespace created for a test; Name is what `ip netns` knows it by.
type NS struct {
	Name string
}

// Link is a veth pair between two fresh namespaces.
type Link struct {
	Server, Client     *NS
	ServerIf, ClientIf string // interface names inside their namespaces
}

// Require fails t unless the process may create network namespaces (root with `ip`):
// CI runs as root with iproute2 installed, so a missing one is a broken setup, not a
// reason to skip.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("netnstest: needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("netnstest: needs ip (iproute2; make deps)")
	}
}

// New creates an empty namespace with lo up and removes it when t ends.
func New(t testing.TB) *NS {
	t.Helper()
	Require(t)
	ns := &NS{Name: "rdt-" + randHex(4)}
	mustIP(t, "netns", "add", ns.Name)
	t.Cleanup(func() {
		// Kill what the test left running inside, then remove the namespace.
		if out, err := exec.Command("ip", "netns", "pids", ns.Name).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				if pid == strconv.Itoa(os.Getpid()) {
					continue // a thread of ours that Do left behind (the runtime may wedge the main thread)
				}
				_ = exec.Command("kill", "-9", pid).Run()
			}
		}
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			t.Logf("netnstest: ip netns del %s: %v: %s", ns.Name, err, out)
		}
	})
	ns.MustRun(t, "ip", "link", "set", "lo", "up")
	return ns
}

// NewLink creates two namespaces joined by a veth pair, both ends up. serverCIDR and
// clientCIDR (e.g. "10.77.0.1/24") are assigned when not empty.
func NewLink(t testing.TB, serverCIDR, clientCIDR string) *Link {
	t.Helper()
	l := &Link{Server: New(t), Client: New(t), ServerIf: "veth-srv", ClientIf: "veth-cli"}
	tmpA, tmpB := "rdv"+randHex(4), "rdv"+randHex(4)
	mustIP(t, "link", "add", tmpA, "type", "veth", "peer", "name", tmpB)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", tmpA).Run() }) // gone already unless setup failed
	mustIP(t, "link", "set", tmpA, "netns", l.Server.Name)
	mustIP(t, "link", "set", tmpB, "netns", l.Client.Name)
	l.Server.MustRun(t, "ip", "link", "set", tmpA, "name", l.ServerIf)
	l.Client.MustRun(t, "ip", "link", "set", tmpB, "name", l.ClientIf)
	for _, e := range []struct {
		ns   *NS
		ifc  string
		cidr string
	}{{l.Server, l.ServerIf, serverCIDR}, {l.Client, l.ClientIf, clientCIDR}} {
		if e.cidr != "" {
			e.ns.MustRun(t, "ip", "addr", "add", e.cidr, "dev", e.ifc)
		}
		e.ns.MustRun(t, "ip", "link", "set", e.ifc, "up")
	}
	return l
}

// AddBridgeTap turns the client end of l into a port of bridge br0 in the client
// namespace and adds tap device tapName on the same bridge, for a QEMU guest run in
// that namespace (-netdev tap,ifname=tapName,script=no,downscript=no).
func (l *Link) AddBridgeTap(t testing.TB, tapName string) {
	t.Helper()
	ns := l.Client
	ns.MustRun(t, "ip", "link", "add", "br0", "type", "bridge")
	ns.MustRun(t, "ip", "link", "set", l.ClientIf, "master", "br0")
	ns.MustRun(t, "ip", "tuntap", "add", "dev", tapName, "mode", "tap")
	ns.MustRun(t, "ip", "link", "set", tapName, "master", "br0")
	ns.MustRun(t, "ip", "link", "set", tapName, "up")
	ns.MustRun(t, "ip", "link", "set", "br0", "up")
}

// Command returns cmd prepared to run inside the namespace (ip netns exec).
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Run runs a command inside the namespace and returns its combined output.
func (ns *NS) Run(ctx context.Context, name string, args ...string) (string, error) {
	var buf bytes.Buffer
	c := ns.Command(ctx, name, args...)
	c.Stdout, c.Stderr = &buf, &buf
	err := c.Run()
	if err != nil {
		err = fmt.Errorf("%s %s in netns %s: %w: %s", name, strings.Join(args, " "), ns.Name, err, buf.String())
	}
	return buf.String(), err
}

// MustRun is Run that fails the test on error.
func (ns *NS) MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := ns.Run(context.Background(), name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Do runs fn on an OS thread that has entered the namespace. Sockets fn opens belong
// to the namespace and stay there when other goroutines use them later. The thread
// is thrown away afterwards (it is never unlocked), so no other goroutine ever runs in
// the namespace by accident.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		f, err := os.Open("/var/run/netns/" + ns.Name)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns.Name, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// MustDo is Do that fails the test on error.
func (ns *NS) MustDo(t testing.TB, fn func() error) {
	t.Helper()
	if err := ns.Do(fn); err != nil {
		t.Fatal(err)
	}
}

// Start starts a long-running command inside the namespace; it is killed when the test
// ends. Its output goes to out (nil discards).
func (ns *NS) Start(t testing.TB, out *bytes.Buffer, name string, args ...string) *exec.Cmd {
	t.Helper()
	c := ns.Command(context.Background(), name, args...)
	if out != nil {
		c.Stdout, c.Stderr = out, out
	}
	if err := c.Start(); err != nil {
		t.Fatalf("start %s in netns %s: %v", name, ns.Name, err)
	}
	t.Cleanup(func() {
		_ = c.Process.Kill()
		_ = c.Wait()
	})
	return c
}

func mustIP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("netnstest: no randomness"))
	}
	return hex.EncodeToString(b)
}
