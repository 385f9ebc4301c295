// Package dhcptest holds test inputs of server/dhcp that other packages' tests use
// too: the captured option 97 of a real Raspberry Pi bootloader, and the reading of
// pcap captures (the tests' captured exchanges, the benchmark's captures of the
// server's interface).
package dhcptest

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
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

// Packet is one UDP datagram of a capture: when the capture saw it, and its payload.
type Packet struct {
	Time    time.Time
	Payload []byte
}

// ReadPcap returns the UDP payloads of the IPv4 frames of a pcap file of Ethernet
// frames (as tcpdump writes it on this machine: little-endian, timestamps in
// microseconds or nanoseconds), in the capture's order.
func ReadPcap(path string) ([]Packet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, fmt.Errorf("%s: not a pcap file", path)
	}
	var unit time.Duration
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4:
		unit = time.Microsecond
	case 0xa1b23c4d:
		unit = time.Nanosecond
	default:
		return nil, fmt.Errorf("%s: not a little-endian pcap file", path)
	}
	var out []Packet
	for off := 24; off+16 <= len(b); {
		sec, frac := binary.LittleEndian.Uint32(b[off:]), binary.LittleEndian.Uint32(b[off+4:])
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		if off+16+n > len(b) {
			break // cut short: the capture ended while writing it
		}
		frame := b[off+16 : off+16+n]
		off += 16 + n
		if len(frame) < 14+20+8 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 || frame[14+9] != 17 {
			continue // not IPv4/UDP
		}
		ihl := int(frame[14]&0x0f) * 4
		if len(frame) < 14+ihl+8 {
			continue
		}
		out = append(out, Packet{Time: time.Unix(int64(sec), int64(frac)*int64(unit)), Payload: frame[14+ihl+8:]})
	}
	return out, nil
}
