// Package board identifies the board the agent runs on: serial and revision (device
// tree, /proc/cpuinfo), model, the MAC of eth0 and the target card's size and CID.
// Every source is read below Options.Root, so tests point it at a fake tree, and every
// value can be given outright (flags of rpi-agent in host mode).
package board

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/image-tools/blockdev"
)

// DefaultTarget is the Pi 5's SD card.
const DefaultTarget = "/dev/mmcblk0"

// Options say where to look; set fields override what would be read.
type Options struct {
	Root      string // prefix of /proc and /sys (default "/")
	Target    string // the card (default DefaultTarget)
	Serial    string // 16 hex digits; default: device tree, then /proc/cpuinfo
	MAC       string // default: /sys/class/net/<Interface>/address
	Interface string // default "eth0"
	Model     string // default: /proc/device-tree/model, then cpuinfo "Model"
	Revision  string // default: cpuinfo "Revision"
}

// ErrNoSerial is returned when no serial can be found or given.
var ErrNoSerial = errors.New("no board serial")

// Identify returns the hello the board would send (AgentVersion and IP unset).
func Identify(opt Options) (agentapi.Hello, error) {
	if opt.Root == "" {
		opt.Root = "/"
	}
	if opt.Target == "" {
		opt.Target = DefaultTarget
	}
	if opt.Interface == "" {
		opt.Interface = "eth0"
	}
	at := func(p string) string { return filepath.Join(opt.Root, p) }
	cpu := cpuinfo(at("proc/cpuinfo"))
	h := agentapi.Hello{Serial: opt.Serial, MAC: opt.MAC, Model: opt.Model, Revision: opt.Revision}
	if h.Serial == "" {
		h.Serial = dtString(at("proc/device-tree/serial-number"))
	}
	if h.Serial == "" {
		h.Serial = cpu["Serial"]
	}
	if h.Serial == "" {
		return h, fmt.Errorf("%w: not in %s or %s; give one", ErrNoSerial, at("proc/device-tree/serial-number"), at("proc/cpuinfo"))
	}
	s, err := agentapi.NormalizeSerial(h.Serial)
	if err != nil {
		return h, err
	}
	h.Serial = s
	if h.MAC == "" {
		b, err := os.ReadFile(at("sys/class/net/" + opt.Interface + "/address"))
		if err != nil {
			return h, fmt.Errorf("mac of %s: %w", opt.Interface, err)
		}
		h.MAC = strings.TrimSpace(string(b))
	}
	if h.MAC, err = agentapi.NormalizeMAC(h.MAC); err != nil {
		return h, err
	}
	if h.Model == "" {
		h.Model = dtString(at("proc/device-tree/model"))
	}
	if h.Model == "" {
		h.Model = cpu["Model"]
	}
	if h.Revision == "" {
		h.Revision = cpu["Revision"]
	}
	h.Disk = disk(opt.Root, opt.Target)
	return h, nil
}

// disk describes target: from /sys/block/<name> for a block device, from the file
// otherwise.
func disk(root, target string) agentapi.Disk {
	d := agentapi.Disk{Device: target}
	name := filepath.Base(target)
	sys := filepath.Join(root, "sys/block", name)
	if b, err := os.ReadFile(filepath.Join(sys, "size")); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			d.SizeBytes = n * 512 // /sys/block sizes are in 512-byte sectors
		}
		if b, err := os.ReadFile(filepath.Join(sys, "device/cid")); err == nil {
			d.CID = strings.TrimSpace(string(b))
		}
		return d
	}
	if f, err := os.Open(target); err == nil {
		if n, err := blockdev.Size(f); err == nil {
			d.SizeBytes = n
		}
		f.Close()
	}
	return d
}

// dtString reads a NUL-terminated device-tree string property.
func dtString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(bytes.TrimRight(b, "\x00")))
}

// cpuinfo returns the "Key : value" lines of /proc/cpuinfo (first occurrence wins).
func cpuinfo(path string) map[string]string {
	out := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if _, dup := out[k]; !dup && v != "" {
			out[k] = v
		}
	}
	return out
}
