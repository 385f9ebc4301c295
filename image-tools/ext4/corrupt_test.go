package ext4

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
)

// TestRandomCorruption flips random bytes in the metadata of a real file system
// (superblock, descriptors, bitmaps, inode tables, directories) many times: every
// call must return (data or an error) without panicking or hanging.
func TestRandomCorruption(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	for i := range 20 {
		p := filepath.Join(src, "var/lib/many", fmt.Sprintf("file-%02d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, i*700), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../var/lib/many/file-07", filepath.Join(src, "etc-link")); err != nil {
		t.Fatal(err)
	}
	img := mkfs(t, 8, src, "-t", "ext4", "-O", "^metadata_csum", "-N", "128")
	orig, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	good := open(t, img)
	// Everything up to the end of group 0's inode table and the first directory blocks.
	itEnd := int64(good.gd[0].inodeTable)*good.blockSize + int64(good.inodesPerGroup)*good.inodeSize
	meta := int(min(itEnd+64*good.blockSize, int64(len(orig))))
	r := rand.New(rand.NewPCG(2, 2))
	opened := 0
	for range 300 {
		dev := testimg.NewCOW(orig)
		for range 1 + r.IntN(30) {
			// Half the hits in the superblock and descriptors, half anywhere.
			at := r.IntN(meta)
			if r.IntN(2) == 0 {
				at = 1024 + r.IntN(int(good.blockSize)*2)
			}
			dev.WriteAt([]byte{byte(r.IntN(256))}, int64(at))
		}
		fsys, err := Open(dev, 0, dev.Size())
		if err != nil {
			continue
		}
		opened++
		fsys.UsedRanges()
		walk(fsys, "", 0)
		for _, p := range []string{"etc-link", "var/lib/many/file-07"} {
			fsys.ReadFile(p)
		}
	}
	if opened < 50 {
		t.Errorf("only %d of 300 corrupted images opened: the test exercises too little", opened)
	}
}

func walk(fsys *FS, p string, depth int) {
	if depth > 8 {
		return
	}
	names, err := fsys.ReadDir(p)
	if err != nil {
		return
	}
	for _, n := range names {
		c := path.Join(p, n)
		st, err := fsys.Lstat(c)
		switch {
		case err != nil:
		case st.Mode&fs.ModeDir != 0:
			walk(fsys, c, depth+1)
		case st.Mode&fs.ModeSymlink != 0:
			fsys.Readlink(c)
		default:
			fsys.ReadFile(c)
		}
	}
}
