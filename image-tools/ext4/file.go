package ext4

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"strings"
)

const (
	rootIno = 2

	modeType    = 0xF000
	modeDir     = 0x4000
	modeRegular = 0x8000
	modeSymlink = 0xA000

	flagIndex      = 0x1000
	flagExtents    = 0x80000
	flagInlineData = 0x10000000

	extentMagic = 0xF30A
	maxDepth    = 5
)

// inode is the part of an on-disk inode this reader uses.
type inode struct {
	num   uint32
	mode  uint16
	size  int64
	flags uint32
	block [60]byte // i_block: extent tree root, block map, inline data or symlink
	raw   []byte   // the whole on-disk inode
}

func (in *inode) isDir() bool     { return in.mode&modeType == modeDir }
func (in *inode) isSymlink() bool { return in.mode&modeType == modeSymlink }

// FileInfo describes the inode a path leads to.
type FileInfo struct {
	Inode uint32
	Mode  fs.FileMode // type bits and permissions
	Size  int64
}

func (f *FS) readInode(n uint32) (*inode, error) {
	if n == 0 || uint64(n) > f.inodesCount {
		return nil, fmt.Errorf("%w: inode %d outside 1..%d", ErrCorrupt, n, f.inodesCount)
	}
	g := uint64(n-1) / f.inodesPerGroup
	idx := uint64(n-1) % f.inodesPerGroup
	at := f.off + int64(f.gd[g].inodeTable)*f.blockSize + int64(idx)*f.inodeSize
	b := make([]byte, f.inodeSize)
	if _, err := f.r.ReadAt(b, at); err != nil {
		return nil, fmt.Errorf("read inode %d: %w", n, err)
	}
	in := &inode{
		raw:   b,
		num:   n,
		mode:  binary.LittleEndian.Uint16(b[0:]),
		size:  int64(binary.LittleEndian.Uint32(b[4:])) | int64(binary.LittleEndian.Uint32(b[108:]))<<32,
		flags: binary.LittleEndian.Uint32(b[32:]),
	}
	copy(in.block[:], b[40:100])
	if in.size < 0 {
		return nil, fmt.Errorf("%w: inode %d has size %d", ErrCorrupt, n, in.size)
	}
	return in, nil
}

// extent is a run of file blocks mapped to disk blocks; a zero disk block is a hole
// (or uninitialised space), read as zeros.
type extent struct {
	logical, physical, n uint64
}

// extents maps the inode's blocks.
func (f *FS) extents(in *inode) ([]extent, error) {
	if in.flags&flagExtents != 0 {
		var out []extent
		if err := f.walkExtents(in, in.block[:], maxDepth+1, &out); err != nil {
			return nil, err
		}
		return out, nil
	}
	return f.blockMap(in)
}

func (f *FS) walkExtents(in *inode, node []byte, limit int, out *[]extent) error {
	if len(node) < 12 || binary.LittleEndian.Uint16(node[0:]) != extentMagic {
		return fmt.Errorf("%w: inode %d: extent node without magic", ErrCorrupt, in.num)
	}
	entries := int(binary.LittleEndian.Uint16(node[2:]))
	depth := int(binary.LittleEndian.Uint16(node[6:]))
	if depth >= limit || 12+12*entries > len(node) {
		return fmt.Errorf("%w: inode %d: extent node of depth %d with %d entries", ErrCorrupt, in.num, depth, entries)
	}
	for i := range entries {
		e := node[12+12*i:]
		if depth == 0 {
			n := uint64(binary.LittleEndian.Uint16(e[4:]))
			phys := uint64(binary.LittleEndian.Uint16(e[6:]))<<32 | uint64(binary.LittleEndian.Uint32(e[8:]))
			if n > 32768 { // uninitialised: reads as zeros
				n -= 32768
				phys = 0
			}
			if phys != 0 && (phys+n > f.blocksCount || phys < f.firstDataBlock) {
				return fmt.Errorf("%w: inode %d: extent at block %d+%d outside the file system", ErrCorrupt, in.num, phys, n)
			}
			*out = append(*out, extent{uint64(binary.LittleEndian.Uint32(e[0:])), phys, n})
			continue
		}
		child := uint64(binary.LittleEndian.Uint16(e[8:]))<<32 | uint64(binary.LittleEndian.Uint32(e[4:]))
		blk, err := f.readBlocks(child, 1)
		if err != nil {
			return fmt.Errorf("inode %d: extent index: %w", in.num, err)
		}
		if err := f.walkExtents(in, blk, depth, out); err != nil {
			return err
		}
	}
	return nil
}

// blockMap maps an ext2/ext3 inode: 12 direct blocks, then single, double and
// triple indirect blocks.
func (f *FS) blockMap(in *inode) ([]extent, error) {
	nblocks := uint64((in.size + f.blockSize - 1) / f.blockSize)
	per := uint64(f.blockSize / 4)
	var out []extent
	var logical uint64
	addBlock := func(b uint64) {
		if k := len(out); k > 0 && out[k-1].logical+out[k-1].n == logical &&
			((b == 0 && out[k-1].physical == 0) || (b != 0 && out[k-1].physical != 0 && out[k-1].physical+out[k-1].n == b)) {
			out[k-1].n++
		} else {
			out = append(out, extent{logical, b, 1})
		}
		logical++
	}
	var walk func(b uint64, level int) error
	walk = func(b uint64, level int) error {
		if logical >= nblocks {
			return nil
		}
		if b == 0 { // a hole spanning the whole subtree
			span := uint64(1)
			for range level {
				span *= per
			}
			for range min(span, nblocks-logical) {
				addBlock(0)
			}
			return nil
		}
		if b >= f.blocksCount {
			return fmt.Errorf("%w: inode %d: block %d outside the file system", ErrCorrupt, in.num, b)
		}
		if level == 0 {
			addBlock(b)
			return nil
		}
		blk, err := f.readBlocks(b, 1)
		if err != nil {
			return err
		}
		for i := range per {
			if err := walk(uint64(binary.LittleEndian.Uint32(blk[4*i:])), level-1); err != nil {
				return err
			}
			if logical >= nblocks {
				break
			}
		}
		return nil
	}
	for i := range 15 {
		level := max(0, i-11)
		if err := walk(uint64(binary.LittleEndian.Uint32(in.block[4*i:])), level); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// contents returns all of the inode's bytes.
func (f *FS) contents(in *inode) ([]byte, error) {
	if in.flags&flagInlineData != 0 {
		return f.inlineData(in)
	}
	if in.size > f.Size() {
		return nil, fmt.Errorf("%w: inode %d: size %d is larger than the file system", ErrCorrupt, in.num, in.size)
	}
	exts, err := f.extents(in)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, in.size)
	bs := uint64(f.blockSize)
	for _, e := range exts {
		if e.physical == 0 {
			continue
		}
		from := e.logical * bs
		if from >= uint64(in.size) {
			continue
		}
		to := min(from+e.n*bs, uint64(in.size))
		if _, err := f.r.ReadAt(buf[from:to], f.off+int64(e.physical*bs)); err != nil {
			return nil, fmt.Errorf("read inode %d at block %d: %w", in.num, e.physical, err)
		}
	}
	return buf, nil
}

// inlineData returns the contents of an inline-data inode: the first 60 bytes live
// in i_block, the rest in the in-inode extended attribute "system.data".
func (f *FS) inlineData(in *inode) ([]byte, error) {
	if in.size <= int64(len(in.block)) {
		return append([]byte(nil), in.block[:in.size]...), nil
	}
	out := append([]byte(nil), in.block[:]...)
	bad := fmt.Errorf("%w: inode %d: inline data of %d bytes without its system.data attribute", ErrCorrupt, in.num, in.size)
	if len(in.raw) <= 160 {
		return nil, bad
	}
	extra := int(binary.LittleEndian.Uint16(in.raw[128:]))
	start := 128 + extra
	if start+4 > len(in.raw) || binary.LittleEndian.Uint32(in.raw[start:]) != 0xEA020000 {
		return nil, bad
	}
	base := start + 4
	for pos := base; pos+16 <= len(in.raw); {
		nameLen := int(in.raw[pos])
		if nameLen == 0 && in.raw[pos+1] == 0 {
			break // end of entries
		}
		idx := in.raw[pos+1]
		voff := int(binary.LittleEndian.Uint16(in.raw[pos+2:]))
		vsize := int(binary.LittleEndian.Uint32(in.raw[pos+8:]))
		if pos+16+nameLen > len(in.raw) {
			break
		}
		name := string(in.raw[pos+16 : pos+16+nameLen])
		if idx == 7 && name == "data" {
			if base+voff+vsize > len(in.raw) || int64(len(out)+vsize) < in.size {
				return nil, bad
			}
			out = append(out, in.raw[base+voff:base+voff+vsize]...)
			return out[:in.size], nil
		}
		pos += (16 + nameLen + 3) &^ 3
	}
	return nil, bad
}

// readlink returns a symlink's target: inside the inode for a fast symlink, else in
// its data.
func (f *FS) readlink(in *inode) (string, error) {
	if in.flags&(flagExtents|flagInlineData) == 0 && in.size < int64(len(in.block)) {
		return string(in.block[:in.size]), nil
	}
	b, err := f.contents(in)
	return string(b), err
}

// dirEntry is one name in a directory.
type dirEntry struct {
	name  string
	inode uint32
	ftype byte
}

// readDir parses every entry of a directory (an htree directory's index blocks
// hold no live entries, so reading all blocks linearly sees every name).
func (f *FS) readDir(in *inode) ([]dirEntry, error) {
	data, err := f.contents(in)
	if err != nil {
		return nil, err
	}
	if in.flags&flagInlineData != 0 {
		// An inline directory: the parent's inode number, then entries filling the
		// rest of i_block, then entries in system.data.
		if len(data) < 4 {
			return nil, fmt.Errorf("%w: inline directory inode %d of %d bytes", ErrCorrupt, in.num, len(data))
		}
		out := []dirEntry{{name: "..", inode: binary.LittleEndian.Uint32(data), ftype: 2}}
		for _, region := range [][]byte{data[4:min(len(data), 60)], data[min(len(data), 60):]} {
			ents, err := f.parseDirents(in, region)
			if err != nil {
				return nil, err
			}
			out = append(out, ents...)
		}
		return out, nil
	}
	return f.parseDirents(in, data)
}

// parseDirents parses linear directory entries.
func (f *FS) parseDirents(in *inode, data []byte) ([]dirEntry, error) {
	var out []dirEntry
	filetype := f.incompat&incompatFiletype != 0
	for pos := 0; pos+8 <= len(data); {
		ino := binary.LittleEndian.Uint32(data[pos:])
		recLen := int(binary.LittleEndian.Uint16(data[pos+4:]))
		nameLen := int(data[pos+6])
		if !filetype {
			nameLen = int(binary.LittleEndian.Uint16(data[pos+6:]))
		}
		if recLen < 8 || recLen%4 != 0 || pos+recLen > len(data) || 8+nameLen > recLen {
			return nil, fmt.Errorf("%w: directory inode %d: entry at byte %d has length %d, name length %d", ErrCorrupt, in.num, pos, recLen, nameLen)
		}
		if ino != 0 && nameLen > 0 {
			out = append(out, dirEntry{name: string(data[pos+8 : pos+8+nameLen]), inode: ino, ftype: data[pos+7]})
		}
		pos += recLen
	}
	return out, nil
}

// resolve walks path from the root, following symlinks in every component and, if
// follow, in the last one.
func (f *FS) resolve(op, path string, follow bool) (*inode, error) {
	cur, err := f.readInode(rootIno)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(path, "/")
	links := 0
	for len(parts) > 0 {
		p := parts[0]
		parts = parts[1:]
		if p == "" || p == "." {
			continue
		}
		if !cur.isDir() {
			return nil, &fs.PathError{Op: op, Path: path, Err: ErrNotDir}
		}
		ents, err := f.readDir(cur)
		if err != nil {
			return nil, err
		}
		var next uint32
		for _, e := range ents {
			if e.name == p {
				next = e.inode
				break
			}
		}
		if next == 0 {
			return nil, &fs.PathError{Op: op, Path: path, Err: fs.ErrNotExist}
		}
		child, err := f.readInode(next)
		if err != nil {
			return nil, err
		}
		if child.isSymlink() && (len(parts) > 0 || follow) {
			if links++; links > 40 {
				return nil, &fs.PathError{Op: op, Path: path, Err: ErrSymlinkLoop}
			}
			target, err := f.readlink(child)
			if err != nil {
				return nil, err
			}
			if strings.HasPrefix(target, "/") {
				if cur, err = f.readInode(rootIno); err != nil {
					return nil, err
				}
			}
			parts = append(strings.Split(target, "/"), parts...)
			continue
		}
		cur = child
	}
	return cur, nil
}

// ReadFile returns the contents of the file at path ("etc/hostname" or
// "/etc/os-release"), relative to the file system root, following symlinks
// (relative ones from their directory, absolute ones from this file system's root).
func (f *FS) ReadFile(path string) ([]byte, error) {
	in, err := f.resolve("read", path, true)
	if err != nil {
		return nil, err
	}
	if in.isDir() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: ErrIsDir}
	}
	b, err := f.contents(in)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", path, err)
	}
	return b, nil
}

// Readlink returns the target of the symlink at path.
func (f *FS) Readlink(path string) (string, error) {
	in, err := f.resolve("readlink", path, false)
	if err != nil {
		return "", err
	}
	if !in.isSymlink() {
		return "", &fs.PathError{Op: "readlink", Path: path, Err: fs.ErrInvalid}
	}
	return f.readlink(in)
}

// Stat describes the inode path leads to, following symlinks.
func (f *FS) Stat(path string) (FileInfo, error) {
	return f.stat("stat", path, true)
}

// Lstat is Stat without following a symlink in the last component.
func (f *FS) Lstat(path string) (FileInfo, error) {
	return f.stat("lstat", path, false)
}

func (f *FS) stat(op, path string, follow bool) (FileInfo, error) {
	in, err := f.resolve(op, path, follow)
	if err != nil {
		return FileInfo{}, err
	}
	m := fs.FileMode(in.mode & 0o777)
	switch in.mode & modeType {
	case modeDir:
		m |= fs.ModeDir
	case modeSymlink:
		m |= fs.ModeSymlink
	case modeRegular:
	default:
		m |= fs.ModeIrregular
	}
	return FileInfo{Inode: in.num, Mode: m, Size: in.size}, nil
}

// ReadDir returns the names in the directory at path, in on-disk order, without
// "." and "..".
func (f *FS) ReadDir(path string) ([]string, error) {
	in, err := f.resolve("readdir", path, true)
	if err != nil {
		return nil, err
	}
	if !in.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: path, Err: ErrNotDir}
	}
	ents, err := f.readDir(in)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.name != "." && e.name != ".." {
			names = append(names, e.name)
		}
	}
	return names, nil
}
