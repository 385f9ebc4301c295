// Package fat reads and writes FAT32 (and FAT16) file systems in place, inside a
// disk image or on a card, at any byte offset: the boot partition of a Raspberry Pi
// OS image. It is our own code on the standard library only, because the agent links
// it and a card it writes must stay clean for fsck.fat and readable by mtools and the
// Pi firmware.
//
// What it does: read files and directories (long names, case-insensitive lookup),
// create and replace files (long file name entries plus a valid 8.3 short name),
// remove files, list the byte ranges in use. Every change updates both FATs and the
// FSInfo sector (free count, next free), frees what it replaces, and checks the space
// it needs before it writes anything: a full file system gives ErrNoSpace and stays
// as it was.
//
// What it does not do: FAT12, exFAT, creating or removing directories, renaming.
// An FS is safe for use by several goroutines (one mutex serialises the calls).
package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Device is what an FS reads and writes: an image file, a block device, or memory.
type Device interface {
	io.ReaderAt
	io.WriterAt
}

// Errors that callers can branch on with errors.Is. Missing files are reported with
// *fs.PathError wrapping fs.ErrNotExist.
var (
	// ErrNotFAT: the boot sector is not a FAT boot sector (no jump or 0x55AA signature).
	ErrNotFAT = errors.New("not a FAT file system")
	// ErrCorrupt: the BPB or a FAT chain is inconsistent.
	ErrCorrupt = errors.New("corrupt FAT file system")
	// ErrUnsupported: FAT12 or exFAT.
	ErrUnsupported = errors.New("unsupported FAT variant")
	// ErrNoSpace: not enough free clusters (or root directory entries on FAT16).
	ErrNoSpace = errors.New("no space left on FAT file system")
	// ErrInvalidName: a name a FAT long name cannot hold.
	ErrInvalidName = errors.New("invalid FAT file name")
	// ErrFailed: an earlier write to the device failed, so the FATs in memory and on
	// the device may differ; the FS refuses further changes (open it again).
	ErrFailed = errors.New("an earlier write to the FAT file system failed")
	// ErrIsDir / ErrNotDir: the path names the wrong kind of entry.
	ErrIsDir  = errors.New("is a directory")
	ErrNotDir = errors.New("not a directory")
)

// FS is an open FAT16 or FAT32 file system.
type FS struct {
	mu   sync.Mutex
	dev  Device
	off  int64 // byte offset of the boot sector on dev
	size int64 // bytes available to the file system at off

	bits        int   // 16 or 32
	bps         int64 // bytes per sector
	clusterSize int64
	numFATs     int64
	fatStart    int64  // byte offset of FAT 1, relative to off
	fatBytes    int64  // bytes of one FAT
	rootStart   int64  // FAT16: byte offset of the fixed root directory, relative to off
	rootBytes   int64  // FAT16: its length
	dataStart   int64  // byte offset of cluster 2, relative to off
	clusters    uint32 // number of data clusters: valid numbers are 2..clusters+1
	rootCluster uint32 // FAT32
	fsInfo      int64  // FAT32: byte offset of FSInfo relative to off, 0 if none
	backupBoot  int64  // FAT32: byte offset of the backup boot sector, 0 if none
	bpbLabel    string

	fat    []byte         // FAT 1, as on disk
	dirty  map[int64]bool // FAT sector indexes changed since the last flush
	free   uint32         // free clusters
	next   uint32         // where allocation searches from
	nowFun func() time.Time
	failed error // the first failed device write; set, the FS refuses changes
}

// writeDev writes to the device and remembers a failure (see ErrFailed).
func (f *FS) writeDev(p []byte, off int64) error {
	if _, err := f.dev.WriteAt(p, off); err != nil {
		if f.failed == nil {
			f.failed = fmt.Errorf("%w: at byte %d: %w", ErrFailed, off, err)
		}
		return err
	}
	return nil
}

// Open reads and validates the boot sector and FAT of the file system at offset (of
// size bytes, the partition length) on dev.
func Open(dev Device, offset, size int64) (*FS, error) {
	var bs [512]byte
	if size < 512 {
		return nil, fmt.Errorf("%w: %d bytes at offset %d", ErrNotFAT, size, offset)
	}
	if _, err := dev.ReadAt(bs[:], offset); err != nil {
		return nil, fmt.Errorf("read FAT boot sector at %d: %w", offset, err)
	}
	f := &FS{dev: dev, off: offset, size: size, dirty: map[int64]bool{}, nowFun: time.Now}
	if err := f.parseBPB(bs[:]); err != nil {
		return nil, err
	}
	f.fat = make([]byte, f.fatBytes)
	if _, err := dev.ReadAt(f.fat, offset+f.fatStart); err != nil {
		return nil, fmt.Errorf("read FAT at %d: %w", offset+f.fatStart, err)
	}
	for c := uint32(2); c < f.clusters+2; c++ {
		if f.get(c) == 0 {
			f.free++
		}
	}
	f.next = 2
	if f.fsInfo != 0 {
		var fi [512]byte
		if _, err := dev.ReadAt(fi[:], offset+f.fsInfo); err != nil {
			return nil, fmt.Errorf("read FSInfo: %w", err)
		}
		valid := binary.LittleEndian.Uint32(fi[0:]) == 0x41615252 && binary.LittleEndian.Uint32(fi[484:]) == 0x61417272
		if n := binary.LittleEndian.Uint32(fi[492:]); valid && n >= 2 && n < f.clusters+2 {
			f.next = n
		}
	}
	return f, nil
}

func (f *FS) parseBPB(b []byte) error {
	if (b[0] != 0xEB && b[0] != 0xE9) || b[510] != 0x55 || b[511] != 0xAA {
		return fmt.Errorf("%w: boot sector at %d has no jump instruction or 0x55AA signature", ErrNotFAT, f.off)
	}
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(b[o:])) }
	le32 := func(o int) int64 { return int64(binary.LittleEndian.Uint32(b[o:])) }
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: BPB at %d: %s", ErrCorrupt, f.off, fmt.Sprintf(format, a...))
	}
	f.bps = le16(11)
	spc := int64(b[13])
	reserved := le16(14)
	f.numFATs = int64(b[16])
	rootEntries := le16(17)
	total := le16(19)
	if total == 0 {
		total = le32(32)
	}
	fatSectors := le16(22)
	if fatSectors == 0 {
		fatSectors = le32(36)
	}
	switch {
	case f.bps != 512 && f.bps != 1024 && f.bps != 2048 && f.bps != 4096:
		return bad("bytes per sector %d", f.bps)
	case spc == 0 || spc&(spc-1) != 0:
		return bad("sectors per cluster %d is not a power of two", spc)
	case reserved == 0:
		return bad("no reserved sectors")
	case f.numFATs == 0 || f.numFATs > 4:
		return bad("%d FATs", f.numFATs)
	case fatSectors == 0:
		return bad("FAT size 0")
	case total == 0:
		return bad("total sectors 0")
	case b[21] != 0xF0 && b[21] < 0xF8:
		return bad("media byte 0x%02x", b[21])
	}
	if total*f.bps > f.size {
		return bad("the file system claims %d bytes but the partition has %d", total*f.bps, f.size)
	}
	f.clusterSize = spc * f.bps
	f.fatStart = reserved * f.bps
	f.fatBytes = fatSectors * f.bps
	f.rootStart = f.fatStart + f.numFATs*f.fatBytes
	f.rootBytes = (rootEntries*32 + f.bps - 1) / f.bps * f.bps
	f.dataStart = f.rootStart + f.rootBytes
	if f.dataStart >= total*f.bps {
		return bad("metadata (%d bytes) fills the whole file system (%d bytes)", f.dataStart, total*f.bps)
	}
	f.clusters = uint32((total*f.bps - f.dataStart) / f.clusterSize)
	// The variant: FAT32 when the 16-bit FAT size and the root entry count are zero,
	// as Linux and dosfstools decide (mkfs.vfat -F 32 makes FAT32 with fewer than
	// 65525 clusters too); otherwise the cluster count tells FAT12 from FAT16.
	switch {
	case le16(22) != 0 && f.clusters < 4085:
		return fmt.Errorf("%w: FAT12 (%d clusters)", ErrUnsupported, f.clusters)
	case le16(22) != 0 && f.clusters > 0xFFF6-2:
		return bad("a 16-bit FAT with %d clusters", f.clusters)
	case le16(22) != 0:
		f.bits = 16
		if rootEntries == 0 {
			return bad("FAT16 with no root directory entries")
		}
	case f.clusters > 0x0FFFFFF6-2:
		return bad("FAT32 with %d clusters", f.clusters)
	default:
		f.bits = 32
		if rootEntries != 0 {
			return bad("FAT32 with %d fixed root entries", rootEntries)
		}
		if v := le16(42); v != 0 {
			return fmt.Errorf("%w: FAT32 version %d.%d", ErrUnsupported, v>>8, v&0xff)
		}
		f.rootCluster = uint32(le32(44))
		if f.rootCluster < 2 || f.rootCluster >= f.clusters+2 {
			return bad("root cluster %d outside 2..%d", f.rootCluster, f.clusters+1)
		}
		if s := le16(48); s != 0 && s != 0xFFFF && s < reserved {
			f.fsInfo = s * f.bps
		}
		if s := le16(50); s != 0 && s != 0xFFFF && s < reserved {
			f.backupBoot = s * f.bps
		}
	}
	if need := int64(f.clusters+2) * int64(f.bits) / 8; need > f.fatBytes {
		return bad("FAT of %d bytes cannot hold %d clusters", f.fatBytes, f.clusters)
	}
	labelAt := 43
	if f.bits == 32 {
		labelAt = 71
	}
	if sig := b[labelAt-5]; sig == 0x29 {
		f.bpbLabel = trimLabel(b[labelAt : labelAt+11])
	}
	return nil
}

func trimLabel(b []byte) string {
	end := len(b)
	for end > 0 && (b[end-1] == ' ' || b[end-1] == 0) {
		end--
	}
	s := string(b[:end])
	if s == "NO NAME" {
		return ""
	}
	return s
}

// Bits is 16 or 32.
func (f *FS) Bits() int { return f.bits }

// ClusterSize is the allocation unit in bytes.
func (f *FS) ClusterSize() int64 { return f.clusterSize }

// FreeBytes is the free space in bytes (free clusters × cluster size).
func (f *FS) FreeBytes() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(f.free) * f.clusterSize
}

// TotalBytes is the size of the data area in bytes (clusters × cluster size).
func (f *FS) TotalBytes() int64 { return int64(f.clusters) * f.clusterSize }

// SetClock sets the time source for the timestamps of written entries (default
// time.Now); tests use it for reproducible images.
func (f *FS) SetClock(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nowFun = now
}

// FAT entry values, normalised to FAT32 widths.
const (
	eoc     = 0x0FFFFFFF // end of chain as written
	eocMin  = 0x0FFFFFF8 // this and above end a chain
	badClus = 0x0FFFFFF7
)

// get returns FAT entry c, with FAT16 end/bad marks widened to their FAT32 values.
func (f *FS) get(c uint32) uint32 {
	if f.bits == 16 {
		v := uint32(binary.LittleEndian.Uint16(f.fat[2*c:]))
		if v >= 0xFFF7 {
			v |= 0x0FFF0000
		}
		return v
	}
	return binary.LittleEndian.Uint32(f.fat[4*c:]) & 0x0FFFFFFF
}

// set writes FAT entry c (in memory; flush writes it out) and keeps the free count.
func (f *FS) set(c, v uint32) {
	old := f.get(c)
	switch {
	case old == 0 && v != 0:
		f.free--
	case old != 0 && v == 0:
		f.free++
	}
	var at int64
	if f.bits == 16 {
		at = 2 * int64(c)
		binary.LittleEndian.PutUint16(f.fat[at:], uint16(v))
	} else {
		at = 4 * int64(c)
		keep := binary.LittleEndian.Uint32(f.fat[at:]) & 0xF0000000
		binary.LittleEndian.PutUint32(f.fat[at:], keep|v&0x0FFFFFFF)
	}
	f.dirty[at/f.bps] = true
}

// chain returns the clusters of the chain starting at first.
func (f *FS) chain(first uint32) ([]uint32, error) {
	if first == 0 {
		return nil, nil
	}
	var cs []uint32
	for c := first; ; {
		if c < 2 || c >= f.clusters+2 {
			return nil, fmt.Errorf("%w: chain from cluster %d reaches cluster %d, outside 2..%d", ErrCorrupt, first, c, f.clusters+1)
		}
		cs = append(cs, c)
		if uint32(len(cs)) > f.clusters {
			return nil, fmt.Errorf("%w: chain from cluster %d loops", ErrCorrupt, first)
		}
		n := f.get(c)
		switch {
		case n >= eocMin:
			return cs, nil
		case n == 0 || n == badClus:
			return nil, fmt.Errorf("%w: chain from cluster %d reaches a free or bad entry at cluster %d", ErrCorrupt, first, c)
		}
		c = n
	}
}

// clusterOff is the device offset of cluster c.
func (f *FS) clusterOff(c uint32) int64 {
	return f.off + f.dataStart + int64(c-2)*f.clusterSize
}

// runs groups consecutive clusters so a chain is read or written in few calls.
func runs(cs []uint32, fn func(first uint32, n int) error) error {
	for i := 0; i < len(cs); {
		j := i + 1
		for j < len(cs) && cs[j] == cs[j-1]+1 {
			j++
		}
		if err := fn(cs[i], j-i); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// readChain reads the first n bytes stored in the chain cs.
func (f *FS) readChain(cs []uint32, n int64) ([]byte, error) {
	buf := make([]byte, n)
	var pos int64
	err := runs(cs, func(first uint32, k int) error {
		if pos >= n {
			return nil
		}
		m := min(int64(k)*f.clusterSize, n-pos)
		if _, err := f.dev.ReadAt(buf[pos:pos+m], f.clusterOff(first)); err != nil {
			return fmt.Errorf("read cluster %d: %w", first, err)
		}
		pos += m
		return nil
	})
	return buf, err
}

// writeChain writes data into the chain cs, zero-filling the tail of the last cluster.
func (f *FS) writeChain(cs []uint32, data []byte) error {
	var pos int64
	return runs(cs, func(first uint32, k int) error {
		m := int64(k) * f.clusterSize
		var chunk []byte
		if pos+m <= int64(len(data)) {
			chunk = data[pos : pos+m]
		} else {
			chunk = make([]byte, m)
			if pos < int64(len(data)) {
				copy(chunk, data[pos:])
			}
		}
		if err := f.writeDev(chunk, f.clusterOff(first)); err != nil {
			return fmt.Errorf("write cluster %d: %w", first, err)
		}
		pos += m
		return nil
	})
}

// alloc finds n free clusters (searching from the hint), links them into a chain in
// memory and returns them. The caller has checked f.free >= n.
func (f *FS) alloc(n int) ([]uint32, error) {
	if uint32(n) > f.free {
		return nil, ErrNoSpace
	}
	cs := make([]uint32, 0, n)
	c := f.next
	for scanned := uint32(0); len(cs) < n && scanned < f.clusters; scanned++ {
		if c < 2 || c >= f.clusters+2 {
			c = 2
		}
		if f.get(c) == 0 {
			cs = append(cs, c)
		}
		c++
	}
	if len(cs) < n {
		return nil, fmt.Errorf("%w: free count says %d, found %d", ErrCorrupt, f.free, len(cs))
	}
	for i, c := range cs {
		if i+1 < len(cs) {
			f.set(c, cs[i+1])
		} else {
			f.set(c, eoc)
		}
	}
	f.next = cs[len(cs)-1] + 1
	if f.next >= f.clusters+2 {
		f.next = 2
	}
	return cs, nil
}

// freeChain marks every cluster of cs free (in memory).
func (f *FS) freeChain(cs []uint32) {
	for _, c := range cs {
		f.set(c, 0)
	}
}

// flush writes the changed FAT sectors to every FAT copy, then FSInfo.
func (f *FS) flush() error {
	for s := range f.dirty {
		sec := f.fat[s*f.bps : (s+1)*f.bps]
		for k := int64(0); k < f.numFATs; k++ {
			if err := f.writeDev(sec, f.off+f.fatStart+k*f.fatBytes+s*f.bps); err != nil {
				return fmt.Errorf("write FAT %d sector %d: %w", k+1, s, err)
			}
		}
		delete(f.dirty, s)
	}
	if f.fsInfo == 0 {
		return nil
	}
	for _, at := range []int64{f.fsInfo, f.backupBoot + f.fsInfo} {
		if at == f.fsInfo+f.backupBoot && f.backupBoot == 0 {
			continue
		}
		var fi [512]byte
		if _, err := f.dev.ReadAt(fi[:], f.off+at); err != nil {
			return fmt.Errorf("read FSInfo: %w", err)
		}
		// Only a sector with the FSInfo signatures is rewritten.
		if binary.LittleEndian.Uint32(fi[0:]) != 0x41615252 || binary.LittleEndian.Uint32(fi[484:]) != 0x61417272 {
			continue
		}
		binary.LittleEndian.PutUint32(fi[488:], f.free)
		binary.LittleEndian.PutUint32(fi[492:], f.next)
		if err := f.writeDev(fi[488:496], f.off+at+488); err != nil {
			return fmt.Errorf("write FSInfo: %w", err)
		}
	}
	return nil
}
