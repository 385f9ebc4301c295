package initenv

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Kernel command line keys the agent understands. The server writes them into the
// cmdline.txt it serves; QEMU passes them with -append.
const (
	KeyServer = "rpideploy.server" // agent URL of rpi-deployd, e.g. http://10.0.0.1:8080
	KeyTarget = "rpideploy.target" // the device to flash; default DefaultTarget
	KeySerial = "rpideploy.serial" // the board serial (16 hex digits); default: device tree
	KeyMAC    = "rpideploy.mac"    // the board MAC; default: that of the DHCP interface
)

// DefaultTarget is the Raspberry Pi 5's SD card.
const DefaultTarget = "/dev/mmcblk0"

// Cmdline holds the rpideploy.* values of a kernel command line. A field is empty when
// its key is absent.
type Cmdline struct {
	Server string
	Target string
	Serial string
	MAC    string
}

// ParseCmdline reads the rpideploy.* keys of a kernel command line (the contents of
// /proc/cmdline). Other words are ignored, as are rpideploy.* keys it does not know (a
// newer server may send more). Values may be double-quoted. A key given twice takes the
// last value, as the kernel does. A malformed value of a known key is an error.
func ParseCmdline(s string) (Cmdline, error) {
	var c Cmdline
	for _, w := range splitCmdline(s) {
		key, val, ok := strings.Cut(w, "=")
		if !ok {
			continue
		}
		switch key {
		case KeyServer:
			u, err := url.Parse(val)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return Cmdline{}, fmt.Errorf("%s=%q: want an http(s) URL", key, val)
			}
			c.Server = strings.TrimRight(val, "/")
		case KeyTarget:
			if !strings.HasPrefix(val, "/") {
				return Cmdline{}, fmt.Errorf("%s=%q: want an absolute device path", key, val)
			}
			c.Target = val
		case KeySerial:
			if !isHex(val, 16) {
				return Cmdline{}, fmt.Errorf("%s=%q: want 16 hex digits", key, val)
			}
			c.Serial = strings.ToLower(val)
		case KeyMAC:
			hw, err := net.ParseMAC(val)
			if err != nil || len(hw) != 6 {
				return Cmdline{}, fmt.Errorf("%s=%q: want a MAC like aa:bb:cc:dd:ee:ff", key, val)
			}
			c.MAC = hw.String()
		}
	}
	return c, nil
}

// splitCmdline splits a kernel command line into words the way the kernel does: at
// spaces, except inside double quotes, which are removed.
func splitCmdline(s string) []string {
	var words []string
	var b strings.Builder
	inQuote, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if inWord {
				words = append(words, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, b.String())
	}
	return words
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}
