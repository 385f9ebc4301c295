// Package dhcptest holds test inputs of server/dhcp that other packages' tests use
// too: the captured option 97 of a real Raspberry Pi bootloader.
package dhcptest

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// CapturedOption97 is option 97 of a real Raspberry Pi 4 bootloader, 17 bytes, read
// from server/dhcp/testdata/option97-rpi4.txt (which says where the bytes come from):
// its last line that is neither blank nor a # comment, hex with optional colons.
func CapturedOption97() ([]byte, error) {
	_, src, _, ok := runtime.Caller(0)
	if !ok {
		return nil, errors.New("dhcptest: no source path to find testdata from")
	}
	path := filepath.Join(filepath.Dir(src), "..", "testdata", "option97-rpi4.txt")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var line string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			line = l
		}
	}
	v, err := hex.DecodeString(strings.ReplaceAll(line, ":", ""))
	if err != nil || len(v) != 17 {
		return nil, fmt.Errorf("%s: %q: want 17 bytes of hex, got %d (%v)", path, line, len(v), err)
	}
	return v, nil
}
