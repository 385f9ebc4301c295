package eeprom

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Layout of a Raspberry Pi bootloader image, as rpi-eeprom-config (raspberrypi/rpi-eeprom)
// reads it: a sequence of sections, each an 8-byte big-endian header (magic, length of
// what follows) and its data, every section starting on an 8-byte boundary. A magic
// with the bits of sectionMask equal to sectionMagic is a section; 0 or 0xffffffff
// ends the list. File sections (fileMagic) hold a 12-byte NUL-padded name and then the
// file; padding sections (padMagic) hold 0xff bytes.
const (
	// ImageSize is the size of a Pi 5 (BCM2712) bootloader image: its 2 MiB SPI flash.
	ImageSize = 2 << 20

	sectionMagic = 0x55aaf00f
	sectionMask  = 0xfffff00f
	fileMagic    = 0x55aaf11f
	padMagic     = 0x55aafeef

	fileNameLen = 12
	// fileHdrLen is the header size rpi-eeprom-config's size checks count; the file's
	// bytes start at fileDataOff (4 bytes further) and the section length counts
	// them from the name on.
	fileHdrLen  = 8 + fileNameLen
	fileDataOff = fileHdrLen + 4

	// eraseSize is the flash sector; the last one of the image is the bootloader's
	// scratch space, and a modifiable file fits in one (less its header).
	eraseSize = 4096
	// MaxConfigSize is the largest bootconf.txt a section holds.
	MaxConfigSize = eraseSize - fileHdrLen

	// An A/B image: a read-only part, then the first partition, where the
	// modifiable files (bootconf.txt among them) live.
	readOnlySize  = 64 << 10
	partitionSize = 988 << 10

	// ConfigFile is the name of the configuration's file section.
	ConfigFile = "bootconf.txt"
)

// ErrNotBootloader: the file is not a Pi 5 bootloader image.
var ErrNotBootloader = errors.New("not a Raspberry Pi 5 bootloader image")

// Section is one section of the image.
type Section struct {
	Magic  uint32
	Offset int // of the header
	Length int // of what follows the 8-byte header
	Name   string
}

// Image is a parsed Pi 5 bootloader image. Its bytes are not changed by any method.
type Image struct {
	data     []byte
	sections []Section
}

// Parse checks that b is a Pi 5 bootloader image (2 MiB, a chain of well-formed
// sections from offset 0, a bootconf.txt file section in the first partition) and
// indexes its sections. Errors wrap ErrNotBootloader and say what is wrong.
func Parse(b []byte) (*Image, error) {
	if len(b) != ImageSize {
		return nil, fmt.Errorf("%w: %d bytes, a Pi 5 bootloader image has %d (a Pi 4 one has %d)", ErrNotBootloader, len(b), ImageSize, 512<<10)
	}
	im := &Image{data: b}
	for off := 0; off+8 <= len(b); {
		magic := binary.BigEndian.Uint32(b[off:])
		length := int(binary.BigEndian.Uint32(b[off+4:]))
		if magic == 0 || magic == 0xffffffff {
			break
		}
		if magic&sectionMask != sectionMagic {
			return nil, fmt.Errorf("%w: no section magic at byte %d (0x%08x)", ErrNotBootloader, off, magic)
		}
		if off == 0 && magic != sectionMagic {
			return nil, fmt.Errorf("%w: the first section is not the boot code (magic 0x%08x)", ErrNotBootloader, magic)
		}
		if length > len(b)-off-8 {
			return nil, fmt.Errorf("%w: section at byte %d claims %d bytes, past the end", ErrNotBootloader, off, length)
		}
		s := Section{Magic: magic, Offset: off, Length: length}
		if magic == fileMagic {
			if length < fileDataOff-8 {
				return nil, fmt.Errorf("%w: file section at byte %d is %d bytes, shorter than its name", ErrNotBootloader, off, length)
			}
			s.Name = string(bytes.TrimRight(b[off+8:off+fileHdrLen], "\x00"))
		}
		im.sections = append(im.sections, s)
		off = (off + 8 + length + 7) &^ 7
	}
	if len(im.sections) == 0 {
		return nil, fmt.Errorf("%w: no sections (erased or zeroed)", ErrNotBootloader)
	}
	if _, ok := im.configIndex(); !ok {
		return nil, fmt.Errorf("%w: no %s section in the first partition", ErrNotBootloader, ConfigFile)
	}
	return im, nil
}

// Sections returns the sections in image order.
func (im *Image) Sections() []Section { return append([]Section(nil), im.sections...) }

// configIndex finds bootconf.txt among the file sections of the first partition,
// where rpi-eeprom-config edits it.
func (im *Image) configIndex() (int, bool) {
	for i, s := range im.sections {
		if s.Magic == fileMagic && s.Name == ConfigFile && s.Offset >= readOnlySize && s.Offset < readOnlySize+partitionSize {
			return i, true
		}
	}
	return 0, false
}

// Config returns the embedded bootloader configuration (bootconf.txt).
func (im *Image) Config() []byte {
	i, _ := im.configIndex()
	s := im.sections[i]
	return append([]byte(nil), im.data[s.Offset+fileDataOff:s.Offset+8+s.Length]...)
}

// WithConfig returns a copy of the image whose bootconf.txt holds conf, laid out as
// rpi-eeprom-config --config writes it: the new length in the section header, the
// file, 0xff up to the next 8-byte boundary, then (unless bootconf.txt is the last
// section) a padding section of 0xff up to the next section that is not padding, or
// to the end of the partition.
func (im *Image) WithConfig(conf []byte) ([]byte, error) {
	if len(conf) > MaxConfigSize {
		return nil, fmt.Errorf("config is %d bytes, a bootloader image holds at most %d", len(conf), MaxConfigSize)
	}
	i, _ := im.configIndex()
	s := im.sections[i]
	last := i == len(im.sections)-1
	next := min(len(im.data)-eraseSize, readOnlySize+partitionSize)
	for _, t := range im.sections[i+1:] {
		if t.Magic != padMagic {
			next = t.Offset
			break
		}
	}
	if end := s.Offset + fileHdrLen + len(conf); end > len(im.data)-eraseSize || end > next {
		return nil, fmt.Errorf("config is %d bytes, the %s section has room for %d", len(conf), ConfigFile, next-s.Offset-fileHdrLen)
	}
	out := append([]byte(nil), im.data...)
	binary.BigEndian.PutUint32(out[s.Offset+4:], uint32(fileDataOff-8+len(conf)))
	copy(out[s.Offset+fileDataOff:], conf)
	pad := s.Offset + fileDataOff + len(conf)
	for ; pad%8 != 0; pad++ {
		out[pad] = 0xff
	}
	if n := next - pad; n >= 8 && !last {
		binary.BigEndian.PutUint32(out[pad:], padMagic)
		binary.BigEndian.PutUint32(out[pad+4:], uint32(n-8))
		pad += 8
	}
	for ; pad < next; pad++ {
		out[pad] = 0xff
	}
	return out, nil
}

// Features of the Pi 5 bootloader that rpi-deploy relies on, by the date of the first
// release that has them (raspberrypi/rpi-eeprom firmware-2712/release-notes.md).
var (
	// Option97Since: DHCP option 97 carries "RPi5", revision, MAC and serial.
	Option97Since = time.Date(2023, 10, 30, 0, 0, 0, 0, time.UTC)
	// RebootOrderSince: the set_reboot_order mailbox and config.txt property.
	RebootOrderSince = time.Date(2025, 1, 22, 0, 0, 0, 0, time.UTC)
	// TFTPRolloverSince: TFTP files above 65535 blocks (the block counter rolls over).
	TFTPRolloverSince = time.Date(2025, 9, 23, 0, 0, 0, 0, time.UTC)
)

var (
	buildTSRe = regexp.MustCompile(`BUILD_TIMESTAMP=([0-9]{9,11})`)
	dateRe    = regexp.MustCompile(`DATE: ([0-9]{4})/([0-9]{2})/([0-9]{2})`)
)

// Built returns when the bootloader was built: the first BUILD_TIMESTAMP (Unix
// seconds) in the image (the 2026-05-26 image keeps it in its bootsys section), else
// its "DATE: YYYY/MM/DD" line, in UTC. ok is false if the image has neither.
func (im *Image) Built() (t time.Time, ok bool) {
	code := im.data
	if m := buildTSRe.FindSubmatch(code); m != nil {
		if n, err := strconv.ParseInt(string(m[1]), 10, 64); err == nil {
			return time.Unix(n, 0).UTC(), true
		}
	}
	if m := dateRe.FindSubmatch(code); m != nil {
		t, err := time.Parse("2006/01/02", string(m[1])+"/"+string(m[2])+"/"+string(m[3]))
		return t, err == nil
	}
	return time.Time{}, false
}

// Version describes the bootloader for an operator: its build date and which of the
// features rpi-deploy relies on it lacks.
func (im *Image) Version() string {
	t, ok := im.Built()
	if !ok {
		return "bootloader of unknown date (no build timestamp in the boot code)"
	}
	s := "bootloader " + t.Format("2006-01-02")
	var lacks []string
	if t.Before(Option97Since) {
		lacks = append(lacks, "DHCP option 97 with the serial (needs 2023-10-30)")
	}
	if t.Before(RebootOrderSince) {
		lacks = append(lacks, "set_reboot_order (needs 2025-01-22)")
	}
	if t.Before(TFTPRolloverSince) {
		lacks = append(lacks, "TFTP files above 96 MB (needs 2025-09-23)")
	}
	for i, l := range lacks {
		if i == 0 {
			s += "; lacks "
		} else {
			s += ", "
		}
		s += l
	}
	return s
}
