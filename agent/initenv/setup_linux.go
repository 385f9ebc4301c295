package initenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/dhclient"
	"github.com/u-root/u-root/pkg/kmodule"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// config is what Setup does, with the paths and waits it uses. Tests point it at their
// own files and interfaces; Setup uses defaultConfig.
type config struct {
	cmdlinePath string        // /proc/cmdline
	modulesDir  string        // ModulesDir
	mount       bool          // mount /proc, /sys, /dev, /tmp where missing
	linkWait    time.Duration // how long to wait for the network interface to appear
	targetWait  time.Duration // how long to wait for the target device to appear
	dhcpTimeout time.Duration // one DHCP exchange attempt
	dhcpRetries int           // attempts per round
	dhcpFor     time.Duration // give up on DHCP after this long
}

var defaultConfig = config{
	cmdlinePath: "/proc/cmdline",
	modulesDir:  ModulesDir,
	mount:       true,
	linkWait:    15 * time.Second,
	targetWait:  20 * time.Second,
	dhcpTimeout: 4 * time.Second,
	dhcpRetries: 3,
	dhcpFor:     2 * time.Minute,
}

// Setup prepares the initramfs for the agent: mounts, kernel modules, the kernel command
// line and DHCP on the network interface (see the package comment). It returns an error
// the caller should show with Rescue when the agent cannot go on: a malformed
// rpideploy.* value, no network interface, no DHCP lease, or no server URL.
// A nil log discards.
func Setup(ctx context.Context, log *slog.Logger) (*Env, error) {
	return defaultConfig.setup(ctx, log)
}

func (c config) setup(ctx context.Context, log *slog.Logger) (*Env, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.mount {
		if err := mountBasics(log); err != nil {
			return nil, err
		}
	}
	modErr := loadModules(log, c.modulesDir)

	raw, err := os.ReadFile(c.cmdlinePath)
	if err != nil {
		return nil, fmt.Errorf("read kernel command line: %w", err)
	}
	cl, err := ParseCmdline(string(raw))
	if err != nil {
		return nil, fmt.Errorf("kernel command line: %w", err)
	}
	env := &Env{ServerURL: cl.Server, Target: cl.Target, Serial: cl.Serial, MAC: cl.MAC}
	if env.Target == "" {
		env.Target = DefaultTarget
	}
	log.Info("kernel command line", "server", cl.Server, "target", env.Target, "serial", cl.Serial, "mac", cl.MAC)

	link, err := findLink(ctx, cl.MAC, c.linkWait)
	if err != nil {
		return nil, errors.Join(err, modErr)
	}
	env.Interface = link.Attrs().Name
	if env.MAC == "" {
		env.MAC = link.Attrs().HardwareAddr.String()
	}

	lease, err := c.dhcp(ctx, log, link)
	if err != nil {
		return nil, errors.Join(err, modErr)
	}
	env.IP = lease.P.YourIPAddr.String()
	if env.ServerURL == "" {
		u, err := ServerURLFromLease(lease.P)
		if err != nil {
			return nil, err
		}
		if u == "" {
			return nil, fmt.Errorf("no %s on the kernel command line and no option 224 in the DHCP lease from %s: is rpi-deployd's DHCP in full mode?", KeyServer, lease.P.ServerIdentifier())
		}
		env.ServerURL = u
	}

	waitForDevice(ctx, log, env.Target, c.targetWait)
	log.Info("environment ready", "server", env.ServerURL, "interface", env.Interface, "ip", env.IP, "mac", env.MAC, "target", env.Target)
	return env, nil
}

// mountBasics mounts what the agent needs and u-root's init did not mount (it mounts all
// of these; the agent may also run under another init), and creates /mnt.
func mountBasics(log *slog.Logger) error {
	mounts := []struct{ source, dir, fstype, probe string }{
		{"proc", "/proc", "proc", "/proc/self/mounts"},
		{"sysfs", "/sys", "sysfs", "/sys/class"},
		{"devtmpfs", "/dev", "devtmpfs", "/dev/null"},
	}
	for _, m := range mounts {
		if _, err := os.Stat(m.probe); err == nil {
			continue
		}
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
		if err := unix.Mount(m.source, m.dir, m.fstype, 0, ""); err != nil {
			return fmt.Errorf("mount %s on %q: %w", m.fstype, m.dir, err)
		}
		log.Info("mounted", "dir", m.dir, "fstype", m.fstype)
	}
	mounted, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	if !strings.Contains(string(mounted), " /tmp ") {
		if err := os.MkdirAll("/tmp", 0o1777); err != nil {
			return fmt.Errorf("mount /tmp: %w", err)
		}
		if err := unix.Mount("tmpfs", "/tmp", "tmpfs", 0, "mode=1777"); err != nil {
			return fmt.Errorf("mount tmpfs on \"/tmp\": %w", err)
		}
	}
	if err := os.MkdirAll("/mnt", 0o755); err != nil {
		return fmt.Errorf("create /mnt: %w", err)
	}
	return nil
}

// loadModules loads the modules of dir/load.list in order. A module the kernel already
// has is fine. It goes on past a module that fails and returns the failures joined (nil
// when all loaded); no list file means the kernel needs no modules.
func loadModules(log *slog.Logger, dir string) error {
	f, err := os.Open(filepath.Join(dir, filepath.Base(ModulesList)))
	if errors.Is(err, os.ErrNotExist) {
		log.Info("no kernel modules to load", "list", filepath.Join(dir, filepath.Base(ModulesList)))
		return nil
	}
	if err != nil {
		return fmt.Errorf("open module list: %w", err)
	}
	mods, err := ParseModuleList(f)
	f.Close()
	if err != nil {
		return err
	}
	start := time.Now()
	var errs []error
	loaded := 0
	for _, m := range mods {
		if err := loadModule(filepath.Join(dir, m.File), m.Params); err != nil {
			log.Warn("kernel module", "module", m.File, "err", err)
			errs = append(errs, err)
			continue
		}
		loaded++
	}
	log.Info("kernel modules loaded", "loaded", loaded, "failed", len(errs), "took", time.Since(start).Round(time.Millisecond))
	return errors.Join(errs...)
}

func loadModule(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("load module: %w", err)
	}
	defer f.Close()
	err = kmodule.FileInit(f, params, 0)
	if errors.Is(err, unix.EEXIST) {
		return nil // built in, or loaded already
	}
	if err != nil {
		return fmt.Errorf("load module %q: %w", filepath.Base(path), err)
	}
	return nil
}

// findLink waits up to wait for the interface to DHCP on: the one with the MAC mac when
// given, else eth0, else the first Ethernet interface other than loopback.
func findLink(ctx context.Context, mac string, wait time.Duration) (netlink.Link, error) {
	deadline := time.Now().Add(wait)
	var seen []string
	for {
		links, err := netlink.LinkList()
		if err != nil {
			return nil, fmt.Errorf("list network interfaces: %w", err)
		}
		if l := pickLink(links, mac); l != nil {
			return l, nil
		}
		seen = seen[:0]
		for _, l := range links {
			seen = append(seen, l.Attrs().Name)
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if mac != "" {
		return nil, fmt.Errorf("no network interface with MAC %s after %v (have %s)", mac, wait, strings.Join(seen, ", "))
	}
	return nil, fmt.Errorf("no Ethernet interface after %v (have %s): is its driver in the initramfs?", wait, strings.Join(seen, ", "))
}

func pickLink(links []netlink.Link, mac string) netlink.Link {
	var first netlink.Link
	for _, l := range links {
		a := l.Attrs()
		if len(a.HardwareAddr) != 6 || a.Flags&net.FlagLoopback != 0 || l.Type() != "device" && l.Type() != "veth" {
			continue
		}
		if mac != "" {
			if a.HardwareAddr.String() == mac {
				return l
			}
			continue
		}
		if a.Name == "eth0" {
			return l
		}
		if first == nil {
			first = l
		}
	}
	return first
}

// dhcp gets a DHCPv4 lease on link with u-root's dhclient and configures the link with
// it (address, routes, /etc/resolv.conf). It tries again until c.dhcpFor has passed.
func (c config) dhcp(ctx context.Context, log *slog.Logger, link netlink.Link) (*dhclient.Packet4, error) {
	ctx, cancel := context.WithTimeout(ctx, c.dhcpFor)
	defer cancel()
	cfg := dhclient.Config{
		Timeout:    c.dhcpTimeout,
		Retries:    c.dhcpRetries,
		Modifiers4: requestModifiers(),
	}
	name := link.Attrs().Name
	start := time.Now()
	var lastErr error
	for attempt := 1; ; attempt++ {
		log.Info("DHCP", "interface", name, "attempt", attempt)
		for r := range dhclient.SendRequests(ctx, []netlink.Link{link}, true, false, cfg, c.linkWait) {
			if r.Err != nil {
				lastErr = r.Err
				continue
			}
			p, ok := r.Lease.(*dhclient.Packet4)
			if !ok {
				lastErr = fmt.Errorf("unexpected lease type %T", r.Lease)
				continue
			}
			if err := p.Configure(); err != nil {
				return nil, fmt.Errorf("configure %s with the DHCP lease: %w", name, err)
			}
			log.Info("DHCP lease", "interface", name, "ip", p.P.YourIPAddr, "server", p.P.ServerIdentifier(), "took", time.Since(start).Round(time.Millisecond))
			return p, nil
		}
		if lastErr == nil {
			lastErr = fmt.Errorf("link %s did not come up", name)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("DHCP on %s: no lease after %v: %w", name, time.Since(start).Round(time.Second), lastErr)
		}
		log.Warn("DHCP", "interface", name, "err", lastErr)
	}
}

// waitForDevice waits up to wait for path to exist (SD card probing is asynchronous).
// It only logs: the agent reports a missing target to the server itself.
func waitForDevice(ctx context.Context, log *slog.Logger, path string, wait time.Duration) {
	deadline := time.Now().Add(wait)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			log.Warn("target device not there", "target", path, "waited", wait)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
