//go:build linux

package cardwrite

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func random(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// loop is a "card reader": a loop device (with partition scanning) over a file that
// holds content; it is detached in t.Cleanup.
func loop(t *testing.T, content []byte) (dev, backing string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("cardwrite tests need root for losetup (run them as root, as CI does)")
	}
	backing = filepath.Join(t.TempDir(), "card")
	if err := os.WriteFile(backing, content, 0o644); err != nil {
		t.Fatal(err)
	}
	dev = run(t, "losetup", "--find", "--show", "--partscan", backing)
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev, backing
}

func writeImage(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "card.img")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readDev(t *testing.T, dev string, n int) []byte {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatalf("read %s: %v", dev, err)
	}
	return b
}

// Three cards at once, an image whose size is not a multiple of the chunk or of
// 4096: each card holds the image afterwards, byte for byte.
func TestWriteSeveral(t *testing.T) {
	img := random(9<<20+512, 1)
	path := writeImage(t, img)
	plan, err := NewPlan(path)
	if err != nil {
		t.Fatal(err)
	}
	var devs []string
	for i := range 3 {
		dev, _ := loop(t, random(12<<20, uint64(10+i)))
		devs = append(devs, dev)
	}
	var written, read atomic.Int64
	res, err := Write(context.Background(), plan, devs, Options{
		Written:  func(n int64) { written.Add(n) },
		ReadBack: func(n int64) { read.Add(n) },
	})
	if err != nil {
		t.Fatalf("Write: %v (%+v)", err, res)
	}
	for _, dev := range devs {
		if got := readDev(t, dev, len(img)); !bytes.Equal(got, img) {
			t.Errorf("%s does not hold the image", dev)
		}
	}
	if want := int64(3 * len(img)); written.Load() != want || read.Load() != want {
		t.Errorf("progress: written %d, read back %d; want %d each", written.Load(), read.Load(), want)
	}
}

// A card that is mounted, a regular file, a missing path, the same card twice, a card
// too small: each is refused with a reason, and no card of the batch is written when
// any is refused.
func TestRefuses(t *testing.T) {
	img := random(6<<20, 2)
	path := writeImage(t, img)
	plan, err := NewPlan(path)
	if err != nil {
		t.Fatal(err)
	}

	// A card whose file system is mounted (ext4: this kernel has no vfat). Loop
	// devices here get no partitions (the sandbox's loop driver does not scan them),
	// so the file system spans the card.
	mountedDev, _ := loop(t, make([]byte, 40<<20))
	run(t, "mkfs.ext4", "-q", mountedDev)
	mnt := t.TempDir()
	run(t, "mount", mountedDev, mnt)
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })

	good, goodBacking := loop(t, make([]byte, 8<<20))
	small, _ := loop(t, make([]byte, 4<<20))
	cases := []struct {
		name    string
		targets []string
		want    string
	}{
		{"mounted", []string{good, mountedDev}, "is mounted (" + mountedDev + " at " + mnt + ")"},
		{"regular file", []string{good, goodBacking}, "is not a block device"},
		{"missing", []string{good, "/dev/does-not-exist"}, "no such file"},
		{"twice", []string{good, good}, "are the same device"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Write(context.Background(), plan, c.targets, Options{})
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Write = %v; want a refusal saying %q", err, c.want)
			}
			if res[0].Err != nil && c.name != "twice" {
				t.Errorf("the good card was refused too: %v", res[0].Err)
			}
			if b := readDev(t, good, 8<<20); !bytes.Equal(b, make([]byte, 8<<20)) {
				t.Fatal("a card was written although another target of the batch was refused")
			}
		})
	}
	t.Run("too small", func(t *testing.T) {
		_, err := Write(context.Background(), plan, []string{small}, Options{})
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "the image needs") {
			t.Fatalf("Write = %v", err)
		}
	})
}

// The disk the running system lives on is refused. The real root device is checked
// when / is on a block device (Check reads, never writes); a loop device standing in
// for the root disk (mountinfo saying it is mounted at /) shows it everywhere.
func TestRefusesSystemDisk(t *testing.T) {
	dev, _ := loop(t, make([]byte, 8<<20))
	out := run(t, "lsblk", "-dno", "MAJ:MIN", dev)
	if !strings.Contains(out, ":") {
		t.Fatalf("lsblk %s: %q", dev, out)
	}
	info := filepath.Join(t.TempDir(), "mountinfo")
	line := "26 1 " + strings.TrimSpace(out) + " / / rw,relatime - ext4 " + dev + " rw\n"
	if err := os.WriteFile(info, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(writeImage(t, random(1<<20, 3)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Write(context.Background(), plan, []string{dev}, Options{System: System{MountInfo: info}})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "holds the running system") {
		t.Fatalf("Write over the (stand-in) system disk = %v", err)
	}
	if root := rootDevice(t); root != "" {
		err := System{}.Check(root)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "holds the running system") {
			t.Fatalf("Check(%s, the real root disk) = %v", root, err)
		}
	} else {
		t.Log("/ is not on a block device here; the stand-in case above covers the check")
	}
}

// rootDevice returns /dev/NAME of the block device mounted at /, or "".
func rootDevice(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[4] != "/" || strings.HasPrefix(f[2], "0:") {
			continue
		}
		ue, err := os.ReadFile("/sys/dev/block/" + f[2] + "/uevent")
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(ue), "\n") {
			if name, ok := strings.CutPrefix(l, "DEVNAME="); ok {
				if _, err := os.Stat("/dev/" + name); err == nil {
					return "/dev/" + name
				}
			}
		}
	}
	return ""
}
