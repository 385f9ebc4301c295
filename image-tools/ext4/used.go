package ext4

import (
	"slices"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
)

// Range is a byte range of the device: the one type every disk-format package and
// the manifest use.
type Range = manifest.Range

const rocompatGDTCsum = 0x10

// hasSuper reports whether group g holds a superblock backup (and so the group
// descriptor table and its reserved blocks).
func (f *FS) hasSuper(g uint64) bool {
	switch {
	case g == 0:
		return true
	case f.compat&compatSparseSuper2 != 0:
		return g == uint64(f.backupBGs[0]) || g == uint64(f.backupBGs[1])
	case f.rocompat&rocompatSparseSuper == 0:
		return true
	case g == 1:
		return true
	}
	for _, p := range []uint64{3, 5, 7} {
		n := p
		for n < g {
			n *= p
		}
		if n == g {
			return true
		}
	}
	return false
}

// baseMeta is the number of blocks at the start of group g taken by the superblock
// backup, the group descriptor table and the blocks reserved for its growth.
func (f *FS) baseMeta(g uint64) uint64 {
	if !f.hasSuper(g) {
		return 0
	}
	gdt := (f.groups*uint64(f.descSize) + uint64(f.blockSize) - 1) / uint64(f.blockSize)
	n := 1 + gdt
	if f.compat&compatResizeInode != 0 {
		n += f.reservedGDT
	}
	return n
}

// UsedRanges returns the byte ranges of the device (absolute: they include the
// offset given to Open) that the file system uses, sorted and merged, on block
// boundaries of the file system: every block its block bitmaps mark in use, plus the
// boot block of a 1 KiB-block file system. For a group whose bitmap was never
// initialised (BLOCK_UNINIT) the used blocks are what the kernel would mark: its
// superblock backup and descriptor table (if it has one) and any group's bitmaps and
// inode table that lie inside it.
func (f *FS) UsedRanges() ([]Range, error) {
	type run struct{ start, n uint64 }
	var runs []run
	add := func(start, n uint64) {
		if n == 0 {
			return
		}
		if k := len(runs); k > 0 && runs[k-1].start+runs[k-1].n == start {
			runs[k-1].n += n
			return
		}
		runs = append(runs, run{start, n})
	}
	uninitOK := f.rocompat&(rocompatGDTCsum|rocompatMetadataCsum) != 0
	itBlocks := (f.inodesPerGroup*uint64(f.inodeSize) + uint64(f.blockSize) - 1) / uint64(f.blockSize)
	// Group metadata by the group it lies in, for BLOCK_UNINIT groups.
	metaIn := map[uint64][]run{}
	for _, gd := range f.gd {
		for _, m := range []run{{gd.blockBitmap, 1}, {gd.inodeBitmap, 1}, {gd.inodeTable, itBlocks}} {
			g := (m.start - f.firstDataBlock) / f.blocksPerGroup
			metaIn[g] = append(metaIn[g], m)
		}
	}
	add(0, f.firstDataBlock)
	for g, gd := range f.gd {
		g := uint64(g)
		start := f.firstDataBlock + g*f.blocksPerGroup
		n := min(f.blocksPerGroup, f.blocksCount-start)
		if uninitOK && gd.flags&bgBlockUninit != 0 {
			add(start, f.baseMeta(g))
			for _, m := range metaIn[g] {
				end := min(m.start+m.n, start+n)
				add(m.start, end-m.start)
			}
			continue
		}
		bm, err := f.readBlocks(gd.blockBitmap, 1)
		if err != nil {
			return nil, err
		}
		for i := uint64(0); i < n; {
			byt := bm[i/8]
			switch {
			case i%8 == 0 && byt == 0:
				i += 8
			case i%8 == 0 && byt == 0xFF:
				add(start+i, min(8, n-i))
				i += 8
			default:
				if byt&(1<<(i%8)) != 0 {
					add(start+i, 1)
				}
				i++
			}
		}
	}
	slices.SortFunc(runs, func(a, b run) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	var out []Range
	bs := uint64(f.blockSize)
	for _, r := range runs {
		end := min(r.start+r.n, f.blocksCount)
		off, length := f.off+int64(r.start*bs), int64((end-r.start)*bs)
		if k := len(out); k > 0 && out[k-1].End() >= off {
			out[k-1].Length = max(out[k-1].End(), off+length) - out[k-1].Offset
			continue
		}
		out = append(out, Range{Offset: off, Length: length})
	}
	return out, nil
}

// UsedBytes is the sum of UsedRanges.
func (f *FS) UsedBytes() (int64, error) {
	rs, err := f.UsedRanges()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range rs {
		n += r.Length
	}
	return n, nil
}
