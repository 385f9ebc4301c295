// Package ext4 reads ext4 (and ext2/ext3) file systems inside a disk image or on a
// card, at any byte offset, without mounting: the root partition of a Raspberry Pi
// OS image. It is read-only and our own code on the standard library only.
//
// It answers two questions: which blocks hold data (UsedRanges, from the block
// bitmaps, with BLOCK_UNINIT groups and group metadata worked out as the kernel
// does), and what a file contains (ReadFile, following extents of any depth,
// ext2/ext3 block maps, inline data, fast and slow symlinks, linear and htree
// directories read linearly).
//
// Refused: a journal that needs recovery (the bitmaps may be stale: run e2fsck
// first), meta_bg, compression, an external journal device; encrypted and casefolded
// directories are read as stored.
package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Errors callers can branch on with errors.Is. Missing paths are reported with
// *fs.PathError wrapping fs.ErrNotExist.
var (
	// ErrNotExt4: no ext2/3/4 superblock magic.
	ErrNotExt4 = errors.New("not an ext4 file system")
	// ErrCorrupt: the superblock, a group descriptor, an inode, an extent tree or a
	// directory is inconsistent.
	ErrCorrupt = errors.New("corrupt ext4 file system")
	// ErrUnsupported: a feature this reader does not handle.
	ErrUnsupported = errors.New("unsupported ext4 feature")
	// ErrNeedsRecovery: the journal holds changes not yet written back.
	ErrNeedsRecovery = errors.New("ext4 journal needs recovery (run e2fsck on it first)")
	// ErrIsDir / ErrNotDir: the path names the wrong kind of inode.
	ErrIsDir  = errors.New("is a directory")
	ErrNotDir = errors.New("not a directory")
	// ErrSymlinkLoop: more than 40 symlinks followed.
	ErrSymlinkLoop = errors.New("too many levels of symbolic links")
)

// Feature bits (superblock s_feature_*).
const (
	compatResizeInode  = 0x10
	compatSparseSuper2 = 0x200

	incompatCompression = 0x1
	incompatFiletype    = 0x2
	incompatRecover     = 0x4
	incompatJournalDev  = 0x8
	incompatMetaBG      = 0x10
	incompatExtents     = 0x40
	incompat64bit       = 0x80
	incompatInlineData  = 0x8000

	rocompatSparseSuper  = 0x1
	rocompatBigalloc     = 0x200
	rocompatMetadataCsum = 0x400

	bgInodeUninit = 0x1
	bgBlockUninit = 0x2
)

// FS is an open ext4 file system.
type FS struct {
	r    io.ReaderAt
	off  int64
	size int64

	blockSize      int64
	blocksCount    uint64
	firstDataBlock uint64
	blocksPerGroup uint64
	inodesPerGroup uint64
	inodesCount    uint64
	inodeSize      int64
	descSize       int64
	groups         uint64
	reservedGDT    uint64
	backupBGs      [2]uint32
	compat         uint32
	incompat       uint32
	rocompat       uint32
	label          string
	freeBlocks     uint64
	gd             []groupDesc
}

type groupDesc struct {
	blockBitmap, inodeBitmap, inodeTable uint64
	flags                                uint16
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Open reads and validates the superblock and the group descriptors of the file
// system at offset (of size bytes, the partition length) on r.
func Open(r io.ReaderAt, offset, size int64) (*FS, error) {
	if size < 2048 {
		return nil, fmt.Errorf("%w: %d bytes at offset %d", ErrNotExt4, size, offset)
	}
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, offset+1024); err != nil {
		return nil, fmt.Errorf("read ext4 superblock at %d: %w", offset+1024, err)
	}
	f := &FS{r: r, off: offset, size: size}
	if err := f.parseSuper(sb); err != nil {
		return nil, err
	}
	if err := f.readGroupDescs(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *FS) parseSuper(sb []byte) error {
	le16 := func(o int) uint64 { return uint64(binary.LittleEndian.Uint16(sb[o:])) }
	le32 := func(o int) uint64 { return uint64(binary.LittleEndian.Uint32(sb[o:])) }
	if le16(0x38) != 0xEF53 {
		return fmt.Errorf("%w: no superblock magic 0xEF53 at byte %d (found 0x%04x)", ErrNotExt4, f.off+1024+0x38, le16(0x38))
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: superblock at %d: %s", ErrCorrupt, f.off+1024, fmt.Sprintf(format, a...))
	}
	f.compat, f.incompat, f.rocompat = uint32(le32(0x5C)), uint32(le32(0x60)), uint32(le32(0x64))
	if f.rocompat&rocompatMetadataCsum != 0 {
		want := binary.LittleEndian.Uint32(sb[0x3FC:])
		if got := ^crc32.Checksum(sb[:0x3FC], castagnoli); got != want {
			return bad("checksum 0x%08x, stored 0x%08x", got, want)
		}
	}
	logBS := le32(0x18)
	if logBS > 6 {
		return bad("block size 2^(10+%d)", logBS)
	}
	f.blockSize = 1024 << logBS
	f.blocksCount = le32(0x4)
	f.freeBlocks = le32(0xC)
	if f.incompat&incompat64bit != 0 {
		f.blocksCount |= le32(0x150) << 32
		f.freeBlocks |= le32(0x158) << 32
	}
	f.inodesCount = le32(0x0)
	f.firstDataBlock = le32(0x14)
	f.blocksPerGroup = le32(0x20)
	f.inodesPerGroup = le32(0x28)
	f.inodeSize = 128
	if le32(0x4C) >= 1 { // dynamic revision
		f.inodeSize = int64(le16(0x58))
	}
	f.descSize = 32
	if f.incompat&incompat64bit != 0 {
		f.descSize = int64(le16(0xFE))
	}
	f.reservedGDT = le16(0xCE)
	f.backupBGs = [2]uint32{uint32(le32(0x24C)), uint32(le32(0x250))}
	label := sb[0x78 : 0x78+16]
	n := 0
	for n < len(label) && label[n] != 0 {
		n++
	}
	f.label = string(label[:n])

	switch {
	case f.blocksCount == 0:
		return bad("0 blocks")
	case f.blocksPerGroup == 0 || f.blocksPerGroup > uint64(8*f.blockSize):
		return bad("%d blocks per group with %d-byte blocks", f.blocksPerGroup, f.blockSize)
	case f.inodesPerGroup == 0 || f.inodesPerGroup > uint64(8*f.blockSize):
		return bad("%d inodes per group", f.inodesPerGroup)
	case f.inodeSize < 128 || f.inodeSize > f.blockSize || f.inodeSize&(f.inodeSize-1) != 0:
		return bad("inode size %d", f.inodeSize)
	case f.descSize < 32 || f.descSize > 1024 || f.descSize&(f.descSize-1) != 0:
		return bad("group descriptor size %d", f.descSize)
	case f.firstDataBlock >= f.blocksCount || (f.blockSize == 1024) != (f.firstDataBlock == 1):
		return bad("first data block %d with %d-byte blocks", f.firstDataBlock, f.blockSize)
	}
	if need := int64(f.blocksCount) * f.blockSize; need > f.size {
		return bad("the file system claims %d bytes (%d blocks of %d) but the partition has %d",
			need, f.blocksCount, f.blockSize, f.size)
	}
	f.groups = (f.blocksCount - f.firstDataBlock + f.blocksPerGroup - 1) / f.blocksPerGroup
	if f.groups*f.inodesPerGroup != f.inodesCount {
		return bad("%d inodes, but %d groups of %d", f.inodesCount, f.groups, f.inodesPerGroup)
	}
	switch {
	case f.incompat&incompatRecover != 0:
		return fmt.Errorf("%w (superblock at %d)", ErrNeedsRecovery, f.off+1024)
	case f.incompat&incompatMetaBG != 0:
		return fmt.Errorf("%w: meta_bg", ErrUnsupported)
	case f.incompat&incompatCompression != 0:
		return fmt.Errorf("%w: compression", ErrUnsupported)
	case f.incompat&incompatJournalDev != 0:
		return fmt.Errorf("%w: external journal device", ErrUnsupported)
	case f.rocompat&rocompatBigalloc != 0:
		return fmt.Errorf("%w: bigalloc", ErrUnsupported)
	}
	return nil
}

func (f *FS) readGroupDescs() error {
	gdtBytes := int64(f.groups) * f.descSize
	buf := make([]byte, gdtBytes)
	at := int64(f.firstDataBlock+1) * f.blockSize
	if _, err := f.r.ReadAt(buf, f.off+at); err != nil {
		return fmt.Errorf("read ext4 group descriptors at %d: %w", f.off+at, err)
	}
	f.gd = make([]groupDesc, f.groups)
	for g := range f.gd {
		d := buf[int64(g)*f.descSize:]
		gd := groupDesc{
			blockBitmap: uint64(binary.LittleEndian.Uint32(d[0:])),
			inodeBitmap: uint64(binary.LittleEndian.Uint32(d[4:])),
			inodeTable:  uint64(binary.LittleEndian.Uint32(d[8:])),
			flags:       binary.LittleEndian.Uint16(d[18:]),
		}
		if f.descSize >= 64 {
			gd.blockBitmap |= uint64(binary.LittleEndian.Uint32(d[32:])) << 32
			gd.inodeBitmap |= uint64(binary.LittleEndian.Uint32(d[36:])) << 32
			gd.inodeTable |= uint64(binary.LittleEndian.Uint32(d[40:])) << 32
		}
		itBlocks := (f.inodesPerGroup*uint64(f.inodeSize) + uint64(f.blockSize) - 1) / uint64(f.blockSize)
		for _, b := range []struct {
			what  string
			start uint64
			n     uint64
		}{{"block bitmap", gd.blockBitmap, 1}, {"inode bitmap", gd.inodeBitmap, 1}, {"inode table", gd.inodeTable, itBlocks}} {
			if b.start < f.firstDataBlock || b.start+b.n > f.blocksCount {
				return fmt.Errorf("%w: group %d: %s at block %d outside the %d blocks", ErrCorrupt, g, b.what, b.start, f.blocksCount)
			}
		}
		f.gd[g] = gd
	}
	return nil
}

// Label is the volume label ("rootfs").
func (f *FS) Label() string { return f.label }

// BlockSize is the block size in bytes.
func (f *FS) BlockSize() int64 { return f.blockSize }

// Size is the file system's size in bytes (blocks × block size).
func (f *FS) Size() int64 { return int64(f.blocksCount) * f.blockSize }

// readBlocks reads n blocks from block b.
func (f *FS) readBlocks(b, n uint64) ([]byte, error) {
	if b+n > f.blocksCount || b+n < b {
		return nil, fmt.Errorf("%w: blocks %d+%d outside the %d blocks", ErrCorrupt, b, n, f.blocksCount)
	}
	buf := make([]byte, int64(n)*f.blockSize)
	if _, err := f.r.ReadAt(buf, f.off+int64(b)*f.blockSize); err != nil {
		return nil, fmt.Errorf("read ext4 block %d: %w", b, err)
	}
	return buf, nil
}
