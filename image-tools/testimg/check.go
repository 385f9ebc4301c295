package testimg

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// These helpers let tests everywhere check an image (a built one, a flashed card
// file, a repacked image) with the real outside tools instead of our own readers.

// ReadPartitions reads the partition table of the image at path with sfdisk --json.
func ReadPartitions(ctx context.Context, path string) ([]Partition, error) {
	out, err := run(ctx, nil, "sfdisk", "--json", path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Partitiontable struct {
			SectorSize int64 `json:"sectorsize"`
			Partitions []struct {
				Start int64  `json:"start"`
				Size  int64  `json:"size"`
				Type  string `json:"type"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("sfdisk --json %s: %w", path, err)
	}
	ss := doc.Partitiontable.SectorSize
	if ss == 0 {
		ss = 512
	}
	var parts []Partition
	for i, p := range doc.Partitiontable.Partitions {
		var t byte
		fmt.Sscanf(p.Type, "%x", &t)
		parts = append(parts, Partition{Index: i + 1, Type: t, Offset: p.Start * ss, Size: p.Size * ss})
	}
	return parts, nil
}

// Fsck checks both file systems of the image at path: fsck.fat -n on partition 1 and
// e2fsck -fn on partition 2, found from the image's own partition table. The error
// carries the tools' output.
func Fsck(ctx context.Context, path string) error {
	parts, err := ReadPartitions(ctx, path)
	if err != nil {
		return err
	}
	if len(parts) < 2 {
		return fmt.Errorf("fsck %s: %d partitions, want 2", path, len(parts))
	}
	if err := FsckFAT(ctx, path, parts[0].Offset, parts[0].Size); err != nil {
		return err
	}
	return FsckExt4(ctx, path, parts[1].Offset)
}

// FsckFAT runs fsck.fat -n on the FAT file system at offset (size bytes) of the file
// at path. fsck.fat has no offset option, so the partition is copied to a temporary
// file first.
func FsckFAT(ctx context.Context, path string, offset, size int64) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".fsckfat-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, io.NewSectionReader(src, offset, size)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if _, err := run(ctx, nil, "fsck.fat", "-n", tmp.Name()); err != nil {
		return fmt.Errorf("fsck.fat of %s at %d: %w", path, offset, err)
	}
	return nil
}

// FsckExt4 runs e2fsck -fn on the ext4 file system at offset of the file at path.
func FsckExt4(ctx context.Context, path string, offset int64) error {
	if _, err := run(ctx, nil, "e2fsck", "-fn", fmt.Sprintf("%s?offset=%d", path, offset)); err != nil {
		return fmt.Errorf("e2fsck of %s at %d: %w", path, offset, err)
	}
	return nil
}

// MType returns the contents of name ("cmdline.txt", "overlays/README") in the FAT
// file system at offset of the image at path, as mtools' mtype reads it.
func MType(ctx context.Context, path string, offset int64, name string) ([]byte, error) {
	return run(ctx, nil, "mtype", "-i", fmt.Sprintf("%s@@%d", path, offset), "::/"+strings.TrimPrefix(name, "/"))
}

// MDir returns mtools' mdir listing of dir in the FAT file system at offset.
func MDir(ctx context.Context, path string, offset int64, dir string) (string, error) {
	out, err := run(ctx, nil, "mdir", "-a", "-i", fmt.Sprintf("%s@@%d", path, offset), "::/"+strings.TrimPrefix(dir, "/"))
	return string(out), err
}

// DebugfsCat returns the contents of name ("/etc/hostname") in the ext4 file system
// at offset of the image at path, as debugfs reads it (symlinks are not followed).
func DebugfsCat(ctx context.Context, path string, offset int64, name string) ([]byte, error) {
	out, stderr, err := runFull(ctx, nil, "debugfs", "-R", "cat "+name, fmt.Sprintf("%s?offset=%d", path, offset))
	if err != nil {
		return nil, err
	}
	// debugfs exits 0 when the command fails; its message follows the version banner.
	if lines := strings.Split(strings.TrimSpace(string(stderr)), "\n"); len(lines) > 1 {
		return nil, fmt.Errorf("debugfs cat %s in %s at %d: %s", name, path, offset, strings.Join(lines[1:], "; "))
	}
	return out, nil
}

// MList returns the names (long names where there are any) in dir of the FAT file
// system at offset, as mtools' mdir -b lists them.
func MList(ctx context.Context, path string, offset int64, dir string) ([]string, error) {
	out, err := run(ctx, nil, "mdir", "-b", "-i", fmt.Sprintf("%s@@%d", path, offset), "::/"+strings.TrimPrefix(dir, "/"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimRight(l, "/"); l != "" {
			names = append(names, l[strings.LastIndex(l, "/")+1:])
		}
	}
	return names, nil
}
