// Package mbr reads the MBR (DOS) partition table of a disk image or card.
//
// Only the four primary entries are read; an extended partition, a GPT protective
// MBR, overlapping entries and entries running past the end of the image are
// refused with a sentinel error (errors.Is) and a message that names the problem.
package mbr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// SectorSize is the sector size MBR addresses are counted in.
const SectorSize = 512

// Sentinel errors; every error Read returns for a bad table wraps one of them.
var (
	// ErrNoTable: no 0x55AA boot signature, or entries no partition table has.
	ErrNoTable = errors.New("garbage partition table")
	// ErrGPT: the MBR is a GPT protective MBR.
	ErrGPT = errors.New("GPT partition table (not supported: only MBR/DOS tables are)")
	// ErrExtended: an extended partition holds logical partitions.
	ErrExtended = errors.New("extended partition (not supported: only primary partitions are)")
	// ErrOverlap: two partitions share sectors.
	ErrOverlap = errors.New("overlapping partitions")
	// ErrPastEnd: a partition runs past the end of the image.
	ErrPastEnd = errors.New("partition runs past the end of the image")
)

// Partition is one used primary entry.
type Partition struct {
	Index    int    // 1-based slot, as in /dev/mmcblk0p1
	Type     byte   // e.g. 0x0c FAT32 LBA, 0x83 Linux
	Bootable bool   // status byte 0x80
	Start    int64  // bytes from the start of the disk
	Size     int64  // bytes
	DiskID   uint32 // the table's disk identifier (the same in every entry)
}

// End returns the first byte after p.
func (p Partition) End() int64 { return p.Start + p.Size }

// PartUUID is the PARTUUID Linux gives p: "<diskid>-<index>", e.g. "1234abcd-02".
func (p Partition) PartUUID() string { return fmt.Sprintf("%08x-%02d", p.DiskID, p.Index) }

// Table is a whole partition table.
type Table struct {
	DiskID     uint32      // disk identifier (bytes 440–443, little endian)
	Partitions []Partition // used entries in slot order; empty slots are left out
}

// Read reads the partition table at the start of r, an image or card of size bytes,
// and returns its used entries in slot order.
func Read(r io.ReaderAt, size int64) ([]Partition, error) {
	t, err := ReadTable(r, size)
	if err != nil {
		return nil, err
	}
	return t.Partitions, nil
}

// ReadTable is Read that also returns the disk identifier of an empty table.
func ReadTable(r io.ReaderAt, size int64) (*Table, error) {
	if size < SectorSize {
		return Parse(nil, size)
	}
	var s [SectorSize]byte
	if _, err := r.ReadAt(s[:], 0); err != nil {
		return nil, fmt.Errorf("read partition table: %w", err)
	}
	return Parse(s[:], size)
}

// Parse parses sector 0 (at least 512 bytes) of a disk of size bytes.
func Parse(sector []byte, size int64) (*Table, error) {
	if len(sector) < SectorSize || size < SectorSize {
		return nil, fmt.Errorf("%w: the image is %d bytes (sector 0: %d), want at least one %d-byte sector", ErrNoTable, size, len(sector), SectorSize)
	}
	if sector[510] != 0x55 || sector[511] != 0xAA {
		return nil, fmt.Errorf("%w: no 0x55AA signature at byte 510 (found %02X%02X)", ErrNoTable, sector[510], sector[511])
	}
	t := &Table{DiskID: binary.LittleEndian.Uint32(sector[440:])}
	for i := range 4 {
		e := sector[446+16*i : 446+16*(i+1)]
		status, typ := e[0], e[4]
		if status != 0x00 && status != 0x80 {
			return nil, fmt.Errorf("%w: entry %d has status byte 0x%02x (want 0x00 or 0x80)", ErrNoTable, i+1, status)
		}
		if typ == 0xEE {
			return nil, fmt.Errorf("%w: entry %d is a GPT protective entry (type 0xee)", ErrGPT, i+1)
		}
		lba := int64(binary.LittleEndian.Uint32(e[8:]))
		n := int64(binary.LittleEndian.Uint32(e[12:]))
		if typ == 0 {
			continue
		}
		if typ == 0x05 || typ == 0x0f || typ == 0x85 {
			return nil, fmt.Errorf("%w: partition %d has type 0x%02x", ErrExtended, i+1, typ)
		}
		if n == 0 || lba == 0 {
			return nil, fmt.Errorf("%w: partition %d (type 0x%02x) starts at sector %d with %d sectors", ErrNoTable, i+1, typ, lba, n)
		}
		p := Partition{Index: i + 1, Type: typ, Bootable: status == 0x80, Start: lba * SectorSize, Size: n * SectorSize, DiskID: t.DiskID}
		if p.End() > size {
			return nil, fmt.Errorf("%w: partition %d [%d, %d) ends %d bytes past the end of the %d-byte image",
				ErrPastEnd, p.Index, p.Start, p.End(), p.End()-size, size)
		}
		for _, q := range t.Partitions {
			if p.Start < q.End() && q.Start < p.End() {
				return nil, fmt.Errorf("%w: partition %d [%d, %d) and partition %d [%d, %d)",
					ErrOverlap, q.Index, q.Start, q.End(), p.Index, p.Start, p.End())
			}
		}
		t.Partitions = append(t.Partitions, p)
	}
	return t, nil
}
