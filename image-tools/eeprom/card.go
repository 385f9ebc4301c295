package eeprom

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/fat"
)

// ErrNoFirmware: the firmware files were not found where the operator pointed.
var ErrNoFirmware = errors.New("Raspberry Pi 5 bootloader firmware not found")

// FirmwareHelp tells an operator where the firmware comes from.
const FirmwareHelp = "download a pieeprom-YYYY-MM-DD.bin and recovery.bin from the firmware-2712/default " +
	"folder of github.com/raspberrypi/rpi-eeprom (or take them from /lib/firmware/raspberrypi/bootloader-2712/default " +
	"on Raspberry Pi OS) and pass the .bin file or the folder holding both"

// Firmware is the operator's copy of Raspberry Pi's bootloader files.
type Firmware struct {
	Image    *Image
	Name     string // the bootloader file's base name, e.g. pieeprom-2026-05-26.bin
	Recovery []byte // recovery.bin as given
}

// NewFirmware checks a bootloader image and a recovery.bin given as bytes.
func NewFirmware(name string, pieeprom, recovery []byte) (*Firmware, error) {
	im, err := Parse(pieeprom)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	switch {
	case bytes.Equal(recovery, pieeprom) || len(recovery) == ImageSize:
		return nil, errors.New("recovery.bin is a bootloader image, not the recovery loader")
	case len(recovery) < 4096 || len(recovery) > 1<<20:
		return nil, fmt.Errorf("recovery.bin is %d bytes, Raspberry Pi's is between 4 KiB and 1 MiB", len(recovery))
	}
	return &Firmware{Image: im, Name: name, Recovery: recovery}, nil
}

// LoadFirmware reads the firmware from path: a bootloader image (recovery.bin beside
// it), or a folder holding recovery.bin and pieeprom.bin or pieeprom-*.bin (the
// newest by name if several).
func LoadFirmware(path string) (*Firmware, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w; %s", ErrNoFirmware, err, FirmwareHelp)
	}
	image, dir := path, filepath.Dir(path)
	if st.IsDir() {
		dir = path
		names, _ := filepath.Glob(filepath.Join(dir, "pieeprom-*.bin"))
		slices.Sort(names)
		switch plain := filepath.Join(dir, "pieeprom.bin"); {
		case fileExists(plain):
			image = plain
		case len(names) > 0:
			image = names[len(names)-1]
		default:
			return nil, fmt.Errorf("%w: no pieeprom.bin or pieeprom-*.bin in %q; %s", ErrNoFirmware, dir, FirmwareHelp)
		}
	}
	pieeprom, err := os.ReadFile(image)
	if err != nil {
		return nil, fmt.Errorf("%w: %w; %s", ErrNoFirmware, err, FirmwareHelp)
	}
	recovery, err := os.ReadFile(filepath.Join(dir, "recovery.bin"))
	if err != nil {
		return nil, fmt.Errorf("%w: recovery.bin must lie beside %s: %w; %s", ErrNoFirmware, filepath.Base(image), err, FirmwareHelp)
	}
	return NewFirmware(filepath.Base(image), pieeprom, recovery)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// Card geometry: a 40 MiB image, MBR, one FAT32 partition (type 0x0c) from 1 MiB to
// the end, 512-byte sectors and clusters (about 78,000 clusters, past FAT32's 65,525
// minimum). Raspberry Pi's recovery card instructions ask for a FAT partition below
// 32 GB; the ROM reads FAT16 and FAT32.
const (
	CardSize      = 40 << 20
	partStartLBA  = 2048
	sectorSize    = 512
	reservedSecs  = 32
	numFATs       = 2
	fsInfoSector  = 1
	backupSector  = 6
	volumeLabel   = "RPI-EEPROM "
	mbrTypeFAT32L = 0x0c
)

// Names of the bootloader image on the card. Raspberry Pi's documentation ("Bootloader
// update files", raspberrypi.com/documentation/computers/raspberry-pi.html): with
// pieeprom.upd, recovery.bin writes the EEPROM, renames itself to RECOVERY.000 and
// resets, and the new bootloader boots on; with pieeprom.bin it stops after the
// update (HDMI green, green LED blinking rapidly) and stays on the card, so it runs
// again at every power-on until the card is changed.
const (
	UpdateName = "pieeprom.upd"
	StopName   = "pieeprom.bin"
)

// CardOptions configure BuildCard.
type CardOptions struct {
	// Stop writes the image as pieeprom.bin (recovery.bin stops and blinks) instead
	// of pieeprom.upd (recovery.bin renames itself and the board boots on: with
	// BOOT_ORDER=0xf21 it finds the card unbootable and network-boots).
	Stop bool
	// Config is embedded into the bootloader image; its zero value means DefaultConfig.
	Config *Config
	// Time stamps the files and the "ts:" line of pieeprom.sig (the bootloader's
	// update timestamp); zero means now.
	Time time.Time
}

// Card is a built recovery card.
type Card struct {
	Image    []byte // the whole card image (CardSize bytes)
	Name     string // UpdateName or StopName: the bootloader image's file name on the card
	Pieeprom []byte // the bootloader image as on the card
	Sig      []byte // pieeprom.sig as on the card
	Config   []byte // the bootconf.txt embedded in Pieeprom
	Version  string // Firmware.Image.Version()
}

// BuildCard makes the recovery card: recovery.bin as given, the bootloader image
// with the config embedded (pieeprom.upd, or pieeprom.bin with Stop), pieeprom.sig (its SHA-256 and a "ts:" line, as rpi-eeprom-digest
// writes it) and README.txt.
func BuildCard(fw *Firmware, opt CardOptions) (*Card, error) {
	conf := DefaultConfig()
	if opt.Config != nil {
		conf = *opt.Config
	}
	for _, s := range conf.Settings {
		if err := Check(s.Key, s.Value); err != nil {
			return nil, err
		}
	}
	now := opt.Time
	if now.IsZero() {
		now = time.Now()
	}
	confBytes := conf.Bytes()
	pieeprom, err := fw.Image.WithConfig(confBytes)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pieeprom)
	sig := []byte(hex.EncodeToString(sum[:]) + "\n" + fmt.Sprintf("ts: %d\n", now.Unix()))

	img := make([]byte, CardSize)
	volID := binary.LittleEndian.Uint32(sum[:4])
	partSectors := uint32(CardSize/sectorSize - partStartLBA)
	writeMBR(img, volID, partStartLBA, partSectors)
	part := img[partStartLBA*sectorSize:]
	formatFAT32(part, partStartLBA, partSectors, volID, now)

	name := UpdateName
	if opt.Stop {
		name = StopName
	}
	fs, err := fat.Open(memDev(img), partStartLBA*sectorSize, int64(partSectors)*sectorSize)
	if err != nil {
		return nil, fmt.Errorf("open the new FAT32 file system: %w", err)
	}
	fs.SetClock(func() time.Time { return now })
	files := []struct {
		name string
		data []byte
	}{
		{"recovery.bin", fw.Recovery},
		{name, pieeprom},
		{"pieeprom.sig", sig},
		{"README.txt", readme(fw, confBytes, opt.Stop)},
	}
	for _, f := range files {
		if err := fs.WriteFile(f.name, f.data); err != nil {
			return nil, fmt.Errorf("write %s to the card: %w", f.name, err)
		}
	}
	return &Card{Image: img, Name: name, Pieeprom: pieeprom, Sig: sig, Config: confBytes, Version: fw.Image.Version()}, nil
}

// readme is the card's README.txt: what the card does and how to use it.
func readme(fw *Firmware, conf []byte, stop bool) []byte {
	var b strings.Builder
	b.WriteString("rpi-deploy bootloader card for Raspberry Pi 5\r\n\r\n")
	fmt.Fprintf(&b, "Firmware: %s (%s).\r\n\r\n", fw.Name, fw.Image.Version())
	if stop {
		b.WriteString("1. Power the Pi 5 off, insert this card, power on.\r\n")
		b.WriteString("2. Wait about 10 seconds: the green LED blinks rapidly when the EEPROM is written\r\n")
		b.WriteString("   (a screen on HDMI turns green). Power off and take the card out: it would\r\n")
		b.WriteString("   write the EEPROM again at every power-on.\r\n\r\n")
	} else {
		b.WriteString("1. Connect the new Pi 5 to the deploy network, insert this card.\r\n")
		b.WriteString("2. Power on: in about 10 seconds the bootloader is written, recovery.bin renames\r\n")
		b.WriteString("   itself to RECOVERY.000 (so it runs once) and the board restarts.\r\n")
		b.WriteString("3. The card no longer boots: the board network-boots and rpi-deploy flashes\r\n")
		b.WriteString("   this very card with the image of the active batch.\r\n\r\n")
	}
	b.WriteString("Embedded bootloader config (bootconf.txt):\r\n\r\n")
	b.WriteString(strings.ReplaceAll(string(conf), "\n", "\r\n"))
	return []byte(b.String())
}

// memDev is an image in memory as a fat.Device.
type memDev []byte

func (m memDev) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m)) {
		return 0, fmt.Errorf("read %d bytes at %d: outside the %d-byte card", len(p), off, len(m))
	}
	return copy(p, m[off:]), nil
}

func (m memDev) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m)) {
		return 0, fmt.Errorf("write %d bytes at %d: outside the %d-byte card", len(p), off, len(m))
	}
	return copy(m[off:], p), nil
}

// writeMBR writes a DOS partition table with one FAT32 (LBA) partition.
func writeMBR(img []byte, diskID, start, sectors uint32) {
	binary.LittleEndian.PutUint32(img[440:], diskID)
	e := img[446:462]
	e[0] = 0x00
	copy(e[1:4], chs(start))
	e[4] = mbrTypeFAT32L
	copy(e[5:8], chs(start+sectors-1))
	binary.LittleEndian.PutUint32(e[8:], start)
	binary.LittleEndian.PutUint32(e[12:], sectors)
	img[510], img[511] = 0x55, 0xaa
}

// chs is the cylinder/head/sector form of lba with 255 heads and 63 sectors a track,
// as fdisk writes it (1023/254/63 past its range).
func chs(lba uint32) []byte {
	const heads, spt = 255, 63
	c, h, s := lba/(heads*spt), (lba/spt)%heads, lba%spt+1
	if c > 1023 {
		c, h, s = 1023, 254, 63
	}
	return []byte{byte(h), byte(s) | byte(c>>8)<<6, byte(c)}
}

// formatFAT32 lays out an empty FAT32 file system over part (sectors long, hidden
// sectors before it): boot sector, FSInfo and their backups, two FATs, the root
// directory in cluster 2 holding the volume label, as mkfs.fat does.
func formatFAT32(part []byte, hidden, sectors, volID uint32, now time.Time) {
	fatSecs := uint32(1)
	for {
		clusters := sectors - reservedSecs - numFATs*fatSecs
		need := ((clusters+2)*4 + sectorSize - 1) / sectorSize
		if need <= fatSecs {
			break
		}
		fatSecs = need
	}
	clusters := sectors - reservedSecs - numFATs*fatSecs

	bs := make([]byte, sectorSize)
	copy(bs[0:3], []byte{0xeb, 0x58, 0x90})
	copy(bs[3:11], "rpideplo")
	le16, le32 := binary.LittleEndian.PutUint16, binary.LittleEndian.PutUint32
	le16(bs[11:], sectorSize)
	bs[13] = 1 // sectors per cluster
	le16(bs[14:], reservedSecs)
	bs[16] = numFATs
	bs[21] = 0xf8
	le16(bs[24:], 63)
	le16(bs[26:], 255)
	le32(bs[28:], hidden)
	le32(bs[32:], sectors)
	le32(bs[36:], fatSecs)
	le32(bs[44:], 2) // root directory cluster
	le16(bs[48:], fsInfoSector)
	le16(bs[50:], backupSector)
	bs[64] = 0x80
	bs[66] = 0x29
	le32(bs[67:], volID)
	copy(bs[71:82], volumeLabel)
	copy(bs[82:90], "FAT32   ")
	bs[510], bs[511] = 0x55, 0xaa

	fi := make([]byte, sectorSize)
	le32(fi[0:], 0x41615252)
	le32(fi[484:], 0x61417272)
	le32(fi[488:], clusters-1) // cluster 2 holds the root directory
	le32(fi[492:], 3)
	le32(fi[508:], 0xaa550000)

	for _, base := range []uint32{0, backupSector} {
		copy(part[base*sectorSize:], bs)
		copy(part[(base+fsInfoSector)*sectorSize:], fi)
		// Sector 2 of each boot record carries the signature too, as mkfs.fat writes it.
		part[(base+2)*sectorSize+510], part[(base+2)*sectorSize+511] = 0x55, 0xaa
	}
	for i := uint32(0); i < numFATs; i++ {
		f := part[(reservedSecs+i*fatSecs)*sectorSize:]
		le32(f[0:], 0x0ffffff8)
		le32(f[4:], 0x0fffffff)
		le32(f[8:], 0x0ffffff8) // root directory: end of chain
	}
	root := part[(reservedSecs+numFATs*fatSecs)*sectorSize:]
	copy(root[0:11], volumeLabel)
	root[11] = 0x08
	d, t := dosDateTime(now)
	le16(root[22:], t)
	le16(root[24:], d)
}

// dosDateTime is t (local time, as FAT keeps it) in FAT's date and time fields.
func dosDateTime(t time.Time) (date, tm uint16) {
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.Local)
	}
	date = uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	tm = uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	return date, tm
}
