package fat

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
)

// TestRandomCorruption flips random bytes in the metadata of a real file system
// (boot sector, FATs, directories) many times: every call must return (data or an
// error) without panicking or hanging.
func TestRandomCorruption(t *testing.T) {
	for _, tc := range []struct{ bits, sizeMiB, runs int }{{16, 16, 150}, {32, 34, 50}} {
		t.Run(fmt.Sprint("fat", tc.bits), func(t *testing.T) {
			t.Parallel()
			corrupt(t, tc.bits, tc.sizeMiB, tc.runs)
		})
	}
}

func corrupt(t *testing.T, bits, sizeMiB, runs int) {
	img := mkfs(t, bits, sizeMiB, map[string]string{
		"cmdline.txt": "console=tty1\n", "overlays/README": "readme", "a-long-file-name.txt": "long",
		"big.bin": string(bytes.Repeat([]byte("b"), 20000)),
	})
	orig, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	probe, _ := open(t, img)
	meta := int(probe.dataStart + 64*probe.clusterSize) // boot sector .. first directories and files
	r := rand.New(rand.NewPCG(1, 1))
	opened := 0
	for i := range runs {
		dev := testimg.NewCOW(orig)
		hit := func(at int) { dev.WriteAt([]byte{byte(r.IntN(256))}, int64(at)) }
		for range 1 + r.IntN(20) {
			hit(r.IntN(meta))
		}
		if i%3 == 0 { // hit the boot sector harder
			for range 4 {
				hit(r.IntN(512))
			}
		}
		fsys, err := Open(dev, 0, dev.Size())
		if err != nil {
			continue
		}
		opened++
		fsys.Label()
		fsys.UsedRanges()
		fsys.Walk(func(p string, e Entry) error {
			if !e.IsDir {
				fsys.ReadFile(p)
			}
			return nil
		})
		for _, name := range []string{"cmdline.txt", "overlays/README", "big.bin"} {
			fsys.ReadFile(name)
		}
		fsys.WriteFile("firstrun.sh", []byte("#!/bin/sh\n"))
		fsys.WriteFile("cmdline.txt", []byte("new\n"))
		fsys.Remove("a-long-file-name.txt")
	}
	if opened < runs/3 {
		t.Errorf("only %d of %d corrupted images opened: the test exercises too little", opened, runs)
	}
}
