package fat

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
)

// splitPath turns "overlays/README", "/overlays/README" or "overlays\README" into
// its components.
func splitPath(name string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		if p != "." {
			out = append(out, p)
		}
	}
	return out
}

// walkTo loads the directory named by parts (the root for none).
func (f *FS) walkTo(op, name string, parts []string) (*dir, error) {
	d, err := f.loadRoot()
	if err != nil {
		return nil, err
	}
	for i, p := range parts {
		e, ok := d.lookup(p)
		if !ok {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		if !e.IsDir {
			return nil, &fs.PathError{Op: op, Path: strings.Join(parts[:i+1], "/"), Err: ErrNotDir}
		}
		if e.Cluster == 0 { // ".." of a root subdirectory on disk; not reachable here
			d, err = f.loadRoot()
		} else {
			d, err = f.loadDir(e.Cluster)
		}
		if err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Label returns the volume label: the root directory's label entry (what blkid and
// mlabel show) or else the boot sector's, with trailing spaces removed; "" for none.
func (f *FS) Label() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d, err := f.loadRoot(); err == nil {
		for _, e := range d.entries() {
			if e.Attr&attrVolume != 0 && e.Attr&attrLFN != attrLFN {
				return trimLabel(e.sfn[:])
			}
		}
	}
	return f.bpbLabel
}

// Stat returns the entry name refers to ("" or "/" is the root, reported as a
// directory named "/").
func (f *FS) Stat(name string) (Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	parts := splitPath(name)
	if len(parts) == 0 {
		return Entry{Name: "/", IsDir: true, Attr: attrDir, Cluster: f.rootCluster}, nil
	}
	d, err := f.walkTo("stat", name, parts[:len(parts)-1])
	if err != nil {
		return Entry{}, err
	}
	e, ok := d.lookup(parts[len(parts)-1])
	if !ok {
		return Entry{}, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return e.Entry, nil
}

// ReadFile returns the contents of the file name ("cmdline.txt", "overlays/README"),
// found case-insensitively by long or short name.
func (f *FS) ReadFile(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	parts := splitPath(name)
	if len(parts) == 0 {
		return nil, &fs.PathError{Op: "read", Path: name, Err: ErrIsDir}
	}
	d, err := f.walkTo("read", name, parts[:len(parts)-1])
	if err != nil {
		return nil, err
	}
	e, ok := d.lookup(parts[len(parts)-1])
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	if e.IsDir {
		return nil, &fs.PathError{Op: "read", Path: name, Err: ErrIsDir}
	}
	cs, err := f.chain(e.Cluster)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", name, err)
	}
	if int64(len(cs))*f.clusterSize < e.Size {
		return nil, fmt.Errorf("read %q: %w: %d bytes in a chain of %d clusters", name, ErrCorrupt, e.Size, len(cs))
	}
	data, err := f.readChain(cs, e.Size)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", name, err)
	}
	return data, nil
}

// ReadDir lists the directory dir ("" or "/" for the root) in on-disk order, without
// "." and ".." and the volume label.
func (f *FS) ReadDir(name string) ([]Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.walkTo("readdir", name, splitPath(name))
	if err != nil {
		return nil, err
	}
	return listDir(d), nil
}

func listDir(d *dir) []Entry {
	var out []Entry
	for _, e := range d.entries() {
		if e.Attr&attrVolume != 0 || isDot(e.sfn) {
			continue
		}
		out = append(out, e.Entry)
	}
	return out
}

// Walk calls fn for every file and directory below the root, depth first in on-disk
// order, with slash-separated paths relative to the root ("overlays/README"). If fn
// returns fs.SkipDir for a directory, Walk does not enter it; any other error stops
// the walk and is returned.
func (f *FS) Walk(fn func(path string, e Entry) error) error {
	f.mu.Lock()
	d, err := f.loadRoot()
	f.mu.Unlock()
	if err != nil {
		return err
	}
	return f.walk("", d, fn, 0)
}

func (f *FS) walk(prefix string, d *dir, fn func(string, Entry) error, depth int) error {
	if depth > 64 {
		return fmt.Errorf("%w: directories nested deeper than 64 at %q", ErrCorrupt, prefix)
	}
	for _, e := range listDir(d) {
		p := prefix + e.Name
		err := fn(p, e)
		if e.IsDir {
			if errors.Is(err, fs.SkipDir) {
				continue
			}
			if err != nil {
				return err
			}
			f.mu.Lock()
			sub, err := f.loadDir(e.Cluster)
			f.mu.Unlock()
			if err != nil {
				return fmt.Errorf("walk %q: %w", p, err)
			}
			if err := f.walk(p+"/", sub, fn, depth+1); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// WriteFile creates the file name, or replaces the contents of the existing one, in
// the root or an existing directory. A new name gets long-name entries and a unique
// 8.3 short name (a plain 8.3 name in one case per part gets the short entry alone,
// with the case bits, as mtools writes it). The new contents go into newly allocated
// clusters before the directory entry points at them; the old clusters are freed
// after. It needs space for the new contents alone; when that is not free, it frees
// the old contents first. If even that is not enough it returns ErrNoSpace having
// written nothing.
func (f *FS) WriteFile(name string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failed != nil {
		return fmt.Errorf("write %q: %w", name, f.failed)
	}
	parts, err := checkWrite(name, len(data))
	if err != nil {
		return &fs.PathError{Op: "write", Path: name, Err: err}
	}
	base := parts[len(parts)-1]
	d, err := f.walkTo("write", name, parts[:len(parts)-1])
	if err != nil {
		return err
	}
	need := int((int64(len(data)) + f.clusterSize - 1) / f.clusterSize)
	now := f.nowFun()

	old, exists := d.lookup(base)
	if exists && old.IsDir {
		return &fs.PathError{Op: "write", Path: name, Err: ErrIsDir}
	}

	var oldChain []uint32
	var slot int
	var ents [][entrySize]byte
	grow := false
	if exists {
		if oldChain, err = f.chain(old.Cluster); err != nil {
			return fmt.Errorf("write %q: old contents: %w", name, err)
		}
		slot = old.pos
	} else {
		ents = newEntries(d, base, now)
		if slot = d.freeSlot(len(ents)); slot < 0 {
			if d.chain == nil {
				return &fs.PathError{Op: "write", Path: name, Err: fmt.Errorf("%w: the FAT16 root directory is full", ErrNoSpace)}
			}
			grow = true
		}
	}

	extra := 0
	if grow {
		extra = int((int64(len(ents)*entrySize) + f.clusterSize - 1) / f.clusterSize)
	}
	freeFirst, err := f.room(len(data), need+extra, len(oldChain))
	if err != nil {
		return &fs.PathError{Op: "write", Path: name, Err: err}
	}

	// From here on the device changes. Errors are I/O errors of the device.
	if freeFirst {
		f.freeChain(oldChain)
		oldChain = nil
	}
	first, err := f.writeData(data, need)
	if err != nil {
		return fmt.Errorf("write %q: %w", name, err)
	}
	if grow {
		if slot, err = f.growDir(d, extra, len(ents)); err != nil {
			return fmt.Errorf("write %q: %w", name, err)
		}
	}
	if err := f.flush(); err != nil {
		return fmt.Errorf("write %q: %w", name, err)
	}
	n := setEntries(d, slot, ents, first, uint32(len(data)), now)
	if err := f.writeBack(d, slot, slot+n*entrySize); err != nil {
		return fmt.Errorf("write %q: %w", name, err)
	}
	if len(oldChain) > 0 {
		f.freeChain(oldChain)
	}
	if err := f.flush(); err != nil {
		return fmt.Errorf("write %q: %w", name, err)
	}
	return nil
}

// checkWrite splits name into its path parts and checks that a file of size bytes may
// be written there: a valid long name, not the root, at most 4 GiB - 1.
func checkWrite(name string, size int) ([]string, error) {
	parts := splitPath(name)
	if len(parts) == 0 {
		return nil, ErrIsDir
	}
	if err := validLong(parts[len(parts)-1]); err != nil {
		return nil, err
	}
	if int64(size) > 0xFFFFFFFF {
		return nil, fmt.Errorf("%w: %d bytes is more than a FAT file holds", ErrNoSpace, size)
	}
	return parts, nil
}

// room reports whether need clusters (for size bytes) are free (false), or free once
// the old contents' old clusters are (true); else ErrNoSpace.
func (f *FS) room(size, need, old int) (freeFirst bool, err error) {
	switch {
	case need <= int(f.free):
		return false, nil
	case need <= int(f.free)+old:
		return true, nil
	}
	return false, fmt.Errorf("%w: %d bytes need %d clusters of %d bytes, %d free",
		ErrNoSpace, size, need, f.clusterSize, int(f.free)+old)
}

// writeData writes data into need newly allocated clusters and returns the first
// (0 for no data).
func (f *FS) writeData(data []byte, need int) (uint32, error) {
	if need == 0 {
		return 0, nil
	}
	cs, err := f.alloc(need)
	if err != nil {
		return 0, err
	}
	if err := f.writeChain(cs, data); err != nil {
		return 0, err
	}
	return cs[0], nil
}

// newEntries makes the directory entries of a new file base in d: long-name entries
// where the name needs them, then the short entry (no contents yet).
func newEntries(d *dir, base string, now time.Time) [][entrySize]byte {
	var ents [][entrySize]byte
	sfn, flags, needLFN := shortName(base, func(s [11]byte) bool {
		for _, e := range d.entries() {
			if e.sfn == s {
				return true
			}
		}
		return false
	})
	if needLFN {
		ents = append(ents, lfnEntries(base, checksum(sfn))...)
	}
	return append(ents, shortEntry(sfn, flags, attrArchive, 0, 0, now))
}

// growDir adds extra zeroed clusters to the directory d and returns the slot where n
// new entries now fit.
func (f *FS) growDir(d *dir, extra, n int) (int, error) {
	add, err := f.alloc(extra)
	if err != nil {
		return 0, fmt.Errorf("grow directory: %w", err)
	}
	if err := f.writeChain(add, nil); err != nil {
		return 0, fmt.Errorf("grow directory: %w", err)
	}
	f.set(d.chain[len(d.chain)-1], add[0])
	d.chain = append(d.chain, add...)
	d.data = append(d.data, make([]byte, int64(len(add))*f.clusterSize)...)
	// The run of free entries may start in the old last cluster: an entry of
	// 0x00 there ends the directory for every reader, so it must be used first.
	slot := d.freeSlot(n)
	if slot < 0 {
		return 0, fmt.Errorf("%w: no free directory slot after growing", ErrCorrupt)
	}
	return slot, nil
}

// setEntries points the file's entry at slot of d to its first cluster and size, and
// returns how many entries it changed: ents == nil updates the existing short entry
// (keeping its name, case bits and creation time); else ents are the new file's.
func setEntries(d *dir, slot int, ents [][entrySize]byte, first, size uint32, now time.Time) int {
	if ents == nil {
		e := d.data[slot : slot+entrySize]
		var sfn [11]byte
		copy(sfn[:], e[:11])
		ne := shortEntry(sfn, e[12], e[11]|attrArchive, first, size, now)
		copy(ne[13:20], e[13:20]) // keep creation time and date
		copy(e, ne[:])
		return 1
	}
	last := ents[len(ents)-1]
	ents[len(ents)-1] = shortEntry([11]byte(last[:11]), last[12], attrArchive, first, size, now)
	for i, en := range ents {
		copy(d.data[slot+i*entrySize:], en[:])
	}
	return len(ents)
}

// Remove deletes the file name: its long-name and short entries are marked deleted
// and its clusters freed. Directories are refused with ErrIsDir.
func (f *FS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failed != nil {
		return fmt.Errorf("remove %q: %w", name, f.failed)
	}
	parts := splitPath(name)
	if len(parts) == 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: ErrIsDir}
	}
	d, err := f.walkTo("remove", name, parts[:len(parts)-1])
	if err != nil {
		return err
	}
	e, ok := d.lookup(parts[len(parts)-1])
	if !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if e.IsDir {
		return &fs.PathError{Op: "remove", Path: name, Err: ErrIsDir}
	}
	cs, err := f.chain(e.Cluster)
	if err != nil {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	for p := e.lfnStart; p <= e.pos; p += entrySize {
		d.data[p] = deleted
	}
	if err := f.writeBack(d, e.lfnStart, e.pos+entrySize); err != nil {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	f.freeChain(cs)
	if err := f.flush(); err != nil {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	return nil
}

// Range is a byte range of the device: the one type every disk-format package and
// the manifest use.
type Range = manifest.Range

// UsedRanges returns the byte ranges of the device (absolute: they include the
// offset given to Open) that the file system uses: the reserved sectors (boot
// sector, FSInfo, backup boot sector), every FAT copy, the FAT16 root directory, and
// every allocated cluster. The ranges are sorted and merged; they are exact, not
// rounded to any block size. Bad clusters are not included.
func (f *FS) UsedRanges() ([]Range, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failed != nil {
		return nil, f.failed
	}
	out := []Range{{Offset: f.off, Length: f.dataStart}}
	add := func(off, n int64) {
		last := &out[len(out)-1]
		if last.End() == off {
			last.Length += n
			return
		}
		out = append(out, Range{Offset: off, Length: n})
	}
	for c := uint32(2); c < f.clusters+2; c++ {
		if v := f.get(c); v != 0 && v != badClus {
			add(f.clusterOff(c), f.clusterSize)
		}
	}
	return out, nil
}
