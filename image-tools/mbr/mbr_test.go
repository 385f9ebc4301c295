package mbr

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
)

func readFile(t *testing.T, path string) ([]Partition, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return Read(f, st.Size())
}

// sfdisk writes a table described in sfdisk's script format onto a new sparse file.
func sfdisk(t *testing.T, size int64, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v: %s", err, out)
	}
	return path
}

func TestReadTestImage(t *testing.T) {
	img := filepath.Join(t.TempDir(), "card.img")
	info, err := testimg.Build(img, testimg.Options{RootData: -1})
	if err != nil {
		t.Fatal(err)
	}
	got, err := readFile(t, img)
	if err != nil {
		t.Fatal(err)
	}
	want := []Partition{
		{Index: 1, Type: 0x0c, Start: info.Boot.Offset, Size: info.Boot.Size, DiskID: info.DiskID},
		{Index: 2, Type: 0x83, Start: info.Root.Offset, Size: info.Root.Size, DiskID: info.DiskID},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("partitions (-want +got):\n%s", d)
	}
	if got[1].PartUUID() != info.PartUUID(2) {
		t.Errorf("PartUUID %s, want %s", got[1].PartUUID(), info.PartUUID(2))
	}
	// The same table as sfdisk itself reads it.
	parts, err := testimg.ReadPartitions(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range parts {
		if p.Offset != got[i].Start || p.Size != got[i].Size || p.Type != got[i].Type {
			t.Errorf("partition %d: sfdisk %+v, ours %+v", i+1, p, got[i])
		}
	}
}

func TestReadSfdisk(t *testing.T) {
	// Bootable flag, a gap slot, a third partition in slot 4.
	path := sfdisk(t, 64<<20, "label: dos\nlabel-id: 0xdeadbeef\n1: start=2048, size=4096, type=c, bootable\n2: start=8192, size=8192, type=83\n4: start=32768, size=2048, type=82\n")
	got, err := readFile(t, path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Partition{
		{Index: 1, Type: 0x0c, Bootable: true, Start: 2048 * 512, Size: 4096 * 512, DiskID: 0xdeadbeef},
		{Index: 2, Type: 0x83, Start: 8192 * 512, Size: 8192 * 512, DiskID: 0xdeadbeef},
		{Index: 4, Type: 0x82, Start: 32768 * 512, Size: 2048 * 512, DiskID: 0xdeadbeef},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("partitions (-want +got):\n%s", d)
	}
}

func TestEmptyTable(t *testing.T) {
	path := sfdisk(t, 8<<20, "label: dos\nlabel-id: 0x01020304\n")
	f, _ := os.Open(path)
	defer f.Close()
	tab, err := ReadTable(f, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	if tab.DiskID != 0x01020304 || len(tab.Partitions) != 0 {
		t.Errorf("got %+v", tab)
	}
}

// entry puts a raw entry into slot i (0-based) of sector s.
func entry(s []byte, i int, status, typ byte, lba, n uint32) {
	e := s[446+16*i:]
	e[0], e[4] = status, typ
	binary.LittleEndian.PutUint32(e[8:], lba)
	binary.LittleEndian.PutUint32(e[12:], n)
}

func sector(fill func(s []byte)) []byte {
	s := make([]byte, 512)
	s[510], s[511] = 0x55, 0xAA
	fill(s)
	return s
}

func TestBadTables(t *testing.T) {
	gpt := sfdisk(t, 16<<20, "label: gpt\nstart=2048, size=4096\n")
	gptSector, err := os.ReadFile(gpt)
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 512)
	for i := range random {
		random[i] = byte(i*7 + 3)
	}
	const size = 64 << 20
	for _, tc := range []struct {
		name    string
		sector  []byte
		size    int64
		want    error
		message []string // substrings the message must hold
	}{
		{"zeros", make([]byte, 512), size, ErrNoTable, []string{"garbage partition table", "no 0x55AA"}},
		{"random", random, size, ErrNoTable, []string{"garbage partition table"}},
		{"short image", make([]byte, 512), 100, ErrNoTable, []string{"100 bytes"}},
		{"bad status", sector(func(s []byte) { entry(s, 0, 0x12, 0x83, 2048, 100) }), size, ErrNoTable, []string{"status byte 0x12"}},
		{"gpt", gptSector[:512], size, ErrGPT, []string{"GPT", "not supported"}},
		{"extended", sector(func(s []byte) { entry(s, 1, 0, 0x05, 2048, 100) }), size, ErrExtended, []string{"partition 2"}},
		{"overlap", sector(func(s []byte) {
			entry(s, 0, 0, 0x0c, 2048, 4096)
			entry(s, 1, 0, 0x83, 4096, 4096)
		}), size, ErrOverlap, []string{"partition 1 [1048576, 3145728)", "partition 2 [2097152, 4194304)"}},
		{"past end", sector(func(s []byte) {
			entry(s, 0, 0, 0x0c, 2048, 4096)
			entry(s, 1, 0, 0x83, 8192, 131072)
		}), size, ErrPastEnd, []string{"partition 2", "[4194304, 71303168)", "4194304 bytes past", "67108864-byte image"}},
		{"zero start", sector(func(s []byte) { entry(s, 0, 0, 0x83, 0, 100) }), size, ErrNoTable, []string{"partition 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.sector, tc.size)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for _, m := range tc.message {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message %q lacks %q", err, m)
				}
			}
		})
	}
}

// TestTruncatedImage: a real image cut short names partition 2 and the sizes.
func TestTruncatedImage(t *testing.T) {
	img := filepath.Join(t.TempDir(), "card.img")
	info, err := testimg.Build(img, testimg.Options{RootData: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, info.Size-4096); err != nil {
		t.Fatal(err)
	}
	_, err = readFile(t, img)
	if !errors.Is(err, ErrPastEnd) || !strings.Contains(err.Error(), "partition 2") || !strings.Contains(err.Error(), "4096 bytes past") {
		t.Fatalf("err = %v", err)
	}
}

// FuzzParse: any sector either fails with one of the sentinels or yields partitions
// inside the disk that do not overlap. (go test runs the seeds; go test -fuzz
// FuzzParse explores.)
func FuzzParse(f *testing.F) {
	f.Add(sector(func(s []byte) { entry(s, 0, 0x80, 0x0c, 16384, 131072); entry(s, 1, 0, 0x83, 147456, 131072) }), int64(1<<30))
	f.Add(sector(func(s []byte) { entry(s, 0, 0, 0x0c, 2048, 4096); entry(s, 1, 0, 0x83, 4096, 4096) }), int64(64<<20))
	f.Add(make([]byte, 512), int64(512))
	f.Fuzz(func(t *testing.T, s []byte, size int64) {
		tab, err := Parse(s, size)
		if err != nil {
			for _, e := range []error{ErrNoTable, ErrGPT, ErrExtended, ErrOverlap, ErrPastEnd} {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("error without a sentinel: %v", err)
		}
		for i, p := range tab.Partitions {
			if p.Start <= 0 || p.Size <= 0 || p.End() > size {
				t.Fatalf("partition %+v outside a disk of %d", p, size)
			}
			for _, q := range tab.Partitions[:i] {
				if p.Start < q.End() && q.Start < p.End() {
					t.Fatalf("%+v overlaps %+v", p, q)
				}
			}
		}
	})
}
