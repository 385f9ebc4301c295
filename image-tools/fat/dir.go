package fat

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"
)

// Entry is one file or directory in a directory.
type Entry struct {
	Name      string // long name if there is one, else the short name as displayed ("cmdline.txt")
	ShortName string // the 8.3 name as stored, e.g. "FIRSTR~1.SH", "CMDLINE.TXT"
	IsDir     bool
	Size      int64  // bytes; 0 for directories
	Cluster   uint32 // first cluster, 0 for an empty file
	Attr      byte   // FAT attribute bits (0x01 read-only, 0x02 hidden, 0x04 system, 0x10 dir, 0x20 archive)
	ModTime   time.Time
}

const (
	attrReadOnly = 0x01
	attrHidden   = 0x02
	attrSystem   = 0x04
	attrVolume   = 0x08
	attrDir      = 0x10
	attrArchive  = 0x20
	attrLFN      = 0x0F
	entrySize    = 32
	deleted      = 0xE5
)

// dir is a directory loaded into memory with where its bytes live.
type dir struct {
	chain []uint32 // clusters; nil for the FAT16 fixed root directory
	data  []byte
}

// dirent is a parsed entry with its position in dir.data.
type dirent struct {
	Entry
	sfn      [11]byte
	pos      int // offset of the short entry
	lfnStart int // offset of the first long-name entry (== pos without one)
}

func (f *FS) loadRoot() (*dir, error) {
	if f.bits == 16 {
		d := &dir{data: make([]byte, f.rootBytes)}
		if _, err := f.dev.ReadAt(d.data, f.off+f.rootStart); err != nil {
			return nil, fmt.Errorf("read root directory: %w", err)
		}
		return d, nil
	}
	return f.loadDir(f.rootCluster)
}

func (f *FS) loadDir(cluster uint32) (*dir, error) {
	cs, err := f.chain(cluster)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("%w: directory at cluster 0", ErrCorrupt)
	}
	data, err := f.readChain(cs, int64(len(cs))*f.clusterSize)
	if err != nil {
		return nil, err
	}
	return &dir{chain: cs, data: data}, nil
}

// writeBack writes d.data[from:to] to the device.
func (f *FS) writeBack(d *dir, from, to int) error {
	if d.chain == nil {
		if err := f.writeDev(d.data[from:to], f.off+f.rootStart+int64(from)); err != nil {
			return fmt.Errorf("write root directory: %w", err)
		}
		return nil
	}
	cs := int(f.clusterSize)
	for pos := from; pos < to; {
		i := pos / cs
		end := min(to, (i+1)*cs)
		at := f.clusterOff(d.chain[i]) + int64(pos-i*cs)
		if err := f.writeDev(d.data[pos:end], at); err != nil {
			return fmt.Errorf("write directory cluster %d: %w", d.chain[i], err)
		}
		pos = end
	}
	return nil
}

// entries parses every live entry of d (long names assembled, "." and ".." and the
// volume label included; callers filter).
func (d *dir) entries() []dirent {
	var out []dirent
	var lfn []uint16
	lfnStart, want := -1, 0
	var sum byte
	for pos := 0; pos+entrySize <= len(d.data); pos += entrySize {
		e := d.data[pos : pos+entrySize]
		if e[0] == 0 {
			break
		}
		if e[0] == deleted {
			lfnStart = -1
			continue
		}
		if e[11]&0x3F == attrLFN {
			ord := int(e[0] & 0x1F)
			if e[0]&0x40 != 0 {
				lfnStart, want, sum = pos, ord, e[13]
				lfn = make([]uint16, 13*ord)
			} else if lfnStart < 0 || ord != want || e[13] != sum {
				lfnStart = -1
				continue
			}
			if ord == 0 {
				lfnStart = -1
				continue
			}
			want = ord - 1
			base := 13 * (ord - 1)
			for i, o := range lfnOffsets {
				lfn[base+i] = binary.LittleEndian.Uint16(e[o:])
			}
			continue
		}
		de := dirent{pos: pos, lfnStart: pos}
		copy(de.sfn[:], e[:11])
		de.Attr = e[11]
		de.IsDir = e[11]&attrDir != 0
		de.Cluster = uint32(binary.LittleEndian.Uint16(e[26:])) | uint32(binary.LittleEndian.Uint16(e[20:]))<<16
		if !de.IsDir {
			de.Size = int64(binary.LittleEndian.Uint32(e[28:]))
		}
		de.ModTime = dosTime(binary.LittleEndian.Uint16(e[24:]), binary.LittleEndian.Uint16(e[22:]))
		de.ShortName = displayShort(de.sfn, 0)
		de.Name = displayShort(de.sfn, e[12])
		if lfnStart >= 0 && want == 0 && checksum(de.sfn) == sum {
			n := 0
			for n < len(lfn) && lfn[n] != 0 {
				n++
			}
			de.Name = string(utf16.Decode(lfn[:n]))
			de.lfnStart = lfnStart
		}
		lfnStart = -1
		out = append(out, de)
	}
	return out
}

// lfnOffsets are where the 13 UTF-16 characters sit in a long-name entry.
var lfnOffsets = [13]int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}

func checksum(sfn [11]byte) byte {
	var s byte
	for _, c := range sfn {
		s = (s&1)<<7 + s>>1 + c
	}
	return s
}

// displayShort renders an 8.3 name; flags are the NT case bits (0x08 base and 0x10
// extension in lower case).
func displayShort(sfn [11]byte, flags byte) string {
	b := sfn
	if b[0] == 0x05 {
		b[0] = 0xE5
	}
	base := strings.TrimRight(string(b[:8]), " ")
	ext := strings.TrimRight(string(b[8:]), " ")
	if flags&0x08 != 0 {
		base = strings.ToLower(base)
	}
	if flags&0x10 != 0 {
		ext = strings.ToLower(ext)
	}
	if ext == "" {
		return base
	}
	return base + "." + ext
}

func dosTime(date, tm uint16) time.Time {
	if date == 0 {
		return time.Time{}
	}
	return time.Date(1980+int(date>>9), time.Month(date>>5&0x0F), int(date&0x1F),
		int(tm>>11), int(tm>>5&0x3F), int(tm&0x1F)*2, 0, time.Local)
}

func toDOS(t time.Time) (date, tm uint16) {
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.Local)
	}
	if t.Year() > 2107 {
		t = time.Date(2107, 12, 31, 23, 59, 58, 0, time.Local)
	}
	date = uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	tm = uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	return date, tm
}

// lookup finds name in d, case-insensitively, by long or short name.
func (d *dir) lookup(name string) (dirent, bool) {
	for _, e := range d.entries() {
		if e.Attr&attrVolume != 0 || isDot(e.sfn) {
			continue
		}
		if strings.EqualFold(e.Name, name) || strings.EqualFold(e.ShortName, name) {
			return e, true
		}
	}
	return dirent{}, false
}

func isDot(sfn [11]byte) bool {
	return sfn == [11]byte{'.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '} ||
		sfn == [11]byte{'.', '.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '}
}

// freeSlot returns the offset of n consecutive free entries in d, or -1.
func (d *dir) freeSlot(n int) int {
	run := 0
	for pos := 0; pos+entrySize <= len(d.data); pos += entrySize {
		switch d.data[pos] {
		case 0:
			// Everything from here on is free.
			if (len(d.data)-pos)/entrySize+run >= n {
				return pos - run*entrySize
			}
			return -1
		case deleted:
			run++
			if run == n {
				return pos - (n-1)*entrySize
			}
		default:
			run = 0
		}
	}
	return -1
}

// validLong reports whether name can be a FAT long name.
func validLong(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	if strings.HasSuffix(name, ".") || strings.HasSuffix(name, " ") {
		return fmt.Errorf("%w: %q ends in a dot or space", ErrInvalidName, name)
	}
	for _, r := range name {
		if r < 0x20 || strings.ContainsRune(`"*/:<>?\|`, r) {
			return fmt.Errorf("%w: %q contains %q", ErrInvalidName, name, r)
		}
	}
	if len(utf16.Encode([]rune(name))) > 255 {
		return fmt.Errorf("%w: %q is longer than 255 UTF-16 units", ErrInvalidName, name)
	}
	return nil
}

// sfnChar reports whether c may appear in an 8.3 name (after upper-casing).
func sfnChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'()-@^_`{}~", c) >= 0
}

// shortName makes the 8.3 entry name for long: with NT case flags and no long-name
// entries when long is a plain 8.3 name in one case per part (as mtools and Windows
// do), else a basis name with a numeric tail ("FIRSTR~1SH ") that taken does not hold.
func shortName(long string, taken func([11]byte) bool) (sfn [11]byte, flags byte, needLFN bool) {
	for i := range sfn {
		sfn[i] = ' '
	}
	base, ext := long, ""
	if i := strings.LastIndexByte(long, '.'); i > 0 {
		base, ext = long[:i], long[i+1:]
	}
	// Plain 8.3?
	if fits := len(base) >= 1 && len(base) <= 8 && len(ext) <= 3 && !strings.Contains(base, "."); fits {
		ok := true
		for _, c := range []byte(base + ext) {
			if !sfnChar(upper(c)) {
				ok = false
			}
		}
		if ok {
			copy(sfn[:], strings.ToUpper(base))
			copy(sfn[8:], strings.ToUpper(ext))
			bf, bmixed := caseOf(base)
			ef, emixed := caseOf(ext)
			if !bmixed && !emixed {
				if bf {
					flags |= 0x08
				}
				if ef {
					flags |= 0x10
				}
				return sfn, flags, false
			}
			if !taken(sfn) {
				return sfn, 0, true
			}
		}
	}
	// Basis name: upper case, invalid characters to '_', spaces and extra dots dropped.
	conv := func(s string) []byte {
		var out []byte
		for _, r := range s {
			if r == ' ' || r == '.' {
				continue
			}
			c := byte('_')
			if r < 0x80 && sfnChar(upper(byte(r))) {
				c = upper(byte(r))
			}
			out = append(out, c)
		}
		return out
	}
	b := conv(strings.TrimLeft(base, "."))
	e := conv(ext)
	if len(e) > 3 {
		e = e[:3]
	}
	if len(b) == 0 {
		b = []byte("_")
	}
	for i := range sfn {
		sfn[i] = ' '
	}
	copy(sfn[8:], e)
	for n := 1; n < 1000000; n++ {
		tail := fmt.Sprintf("~%d", n)
		keep := min(len(b), 8-len(tail))
		for i := range 8 {
			sfn[i] = ' '
		}
		copy(sfn[:], b[:keep])
		copy(sfn[keep:], tail)
		if !taken(sfn) {
			break
		}
	}
	return sfn, 0, true
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// caseOf reports whether s's letters are all lower case, and whether they are mixed.
func caseOf(s string) (lower, mixed bool) {
	var lo, up bool
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z':
			lo = true
		case c >= 'A' && c <= 'Z':
			up = true
		}
	}
	return lo && !up, lo && up
}

// lfnEntries returns the long-name entries for name in on-disk order.
func lfnEntries(name string, sum byte) [][entrySize]byte {
	u := utf16.Encode([]rune(name))
	n := (len(u) + 12) / 13
	padded := make([]uint16, 13*n)
	for i := range padded {
		switch {
		case i < len(u):
			padded[i] = u[i]
		case i == len(u):
			padded[i] = 0
		default:
			padded[i] = 0xFFFF
		}
	}
	out := make([][entrySize]byte, n)
	for k := range n {
		ord := n - k // on disk the last part comes first
		var e [entrySize]byte
		e[0] = byte(ord)
		if k == 0 {
			e[0] |= 0x40
		}
		e[11] = attrLFN
		e[13] = sum
		for i, o := range lfnOffsets {
			binary.LittleEndian.PutUint16(e[o:], padded[13*(ord-1)+i])
		}
		out[k] = e
	}
	return out
}

// shortEntry builds a short directory entry.
func shortEntry(sfn [11]byte, flags, attr byte, cluster uint32, size uint32, t time.Time) [entrySize]byte {
	var e [entrySize]byte
	copy(e[:11], sfn[:])
	e[11] = attr
	e[12] = flags
	date, tm := toDOS(t)
	binary.LittleEndian.PutUint16(e[14:], tm)
	binary.LittleEndian.PutUint16(e[16:], date)
	binary.LittleEndian.PutUint16(e[18:], date)
	binary.LittleEndian.PutUint16(e[20:], uint16(cluster>>16))
	binary.LittleEndian.PutUint16(e[22:], tm)
	binary.LittleEndian.PutUint16(e[24:], date)
	binary.LittleEndian.PutUint16(e[26:], uint16(cluster))
	binary.LittleEndian.PutUint32(e[28:], size)
	return e
}
