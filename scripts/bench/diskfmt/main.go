// Command diskfmt benchmarks the disk-format packages (image-tools/fat, ext4) against
// the outside tools doing the same job on the same image, in the same run:
//
//	go run ./scripts/bench/diskfmt -dir DIR -root-data 1024
//
// It builds (or reuses) DIR/diskfmt.img with image-tools/testimg and prints lines
//
//	bench: NAME ours=X baseline=Y ratio=R
//
// with times in seconds (best of -runs), page cache warm for both sides:
//
//	ext4-used-ranges   ext4.Open + UsedRanges        vs dumpe2fs (reads every bitmap)
//	ext4-extract-all   every rootfs file read by path
//	                   and written to a directory    vs debugfs rdump of the same tree
//	fat-extract-all    every bootfs file read and
//	                   written to a directory        vs mcopy -s (what bootfiles replaces)
//	fat-name-board     the agent's naming step: write
//	                   firstrun.sh, rewrite cmdline.txt vs two mcopy -o calls
//	fat-used-ranges    fat.Open + UsedRanges         vs fsck.fat -n (also reads the FATs)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/ext4"
	"github.com/rpi-deploy/rpi-deploy/image-tools/fat"
	"github.com/rpi-deploy/rpi-deploy/image-tools/testimg"
)

func main() {
	dir := flag.String("dir", "", "work directory (required)")
	rootData := flag.Int64("root-data", 1024, "MiB of file data in rootfs")
	runs := flag.Int("runs", 3, "runs of each side; the best counts")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "diskfmt: -dir required")
		os.Exit(2)
	}
	if err := run(context.Background(), *dir, *rootData<<20, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "diskfmt:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir string, rootData int64, runs int) error {
	img := filepath.Join(dir, "diskfmt.img")
	t0 := time.Now()
	info, err := testimg.Build(img, testimg.Options{RootData: rootData, RootFree: 256 << 20, BootSize: 256 << 20, Seed: 11})
	if err != nil {
		return err
	}
	fmt.Printf("diskfmt: built %s (%d MiB, %d files) in %.1fs\n", img, info.Size>>20, len(info.Files), time.Since(t0).Seconds())
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	warm(f)
	b := &bencher{ctx: ctx, dir: dir, runs: runs, img: img, f: f, info: info,
		rootDev: fmt.Sprintf("%s?offset=%d", img, info.Root.Offset),
		bootDev: fmt.Sprintf("%s@@%d", img, info.Boot.Offset)}
	for _, step := range []func() error{b.ext4UsedRanges, b.ext4ExtractAll, b.fatExtractAll, b.fatNameBoard, b.fatUsedRanges} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// bencher runs the benchmarks on one test image, opened read-write as f.
type bencher struct {
	ctx              context.Context
	dir, img         string
	runs             int
	f                *os.File
	info             *testimg.Info
	rootDev, bootDev string // the partitions as e2fsprogs and mtools name them
}

// bench times ours and baseline (best of b.runs each) and prints the bench: line.
func (b *bencher) bench(name string, ours, baseline func() error) error {
	o, err := best(b.runs, ours)
	if err != nil {
		return fmt.Errorf("%s ours: %w", name, err)
	}
	bl, err := best(b.runs, baseline)
	if err != nil {
		return fmt.Errorf("%s baseline: %w", name, err)
	}
	fmt.Printf("bench: %s ours=%.4f baseline=%.4f ratio=%.3f\n", name, o, bl, o/bl)
	return nil
}

// fresh returns the empty directory name in b.dir.
func (b *bencher) fresh(name string) (string, error) {
	d := filepath.Join(b.dir, name)
	if err := os.RemoveAll(d); err != nil {
		return "", err
	}
	return d, os.MkdirAll(d, 0o755)
}

func (b *bencher) ext4UsedRanges() error {
	root := b.info.Root
	return b.bench("ext4-used-ranges", func() error {
		fsys, err := ext4.Open(b.f, root.Offset, root.Size)
		if err != nil {
			return err
		}
		_, err = fsys.UsedRanges()
		return err
	}, func() error {
		_, err := testimg.Tool(b.ctx, "dumpe2fs", b.rootDev)
		return err
	})
}

func (b *bencher) ext4ExtractAll() error {
	root := b.info.Root
	return b.bench("ext4-extract-all", func() error {
		fsys, err := ext4.Open(b.f, root.Offset, root.Size)
		if err != nil {
			return err
		}
		d, err := b.fresh("ext4-ours")
		if err != nil {
			return err
		}
		return extractExt4(fsys, "", d)
	}, func() error {
		d, err := b.fresh("ext4-debugfs")
		if err != nil {
			return err
		}
		_, err = testimg.Tool(b.ctx, "debugfs", "-R", "rdump / "+d, b.rootDev)
		return err
	})
}

func (b *bencher) fatExtractAll() error {
	boot := b.info.Boot
	return b.bench("fat-extract-all", func() error {
		fsys, err := fat.Open(readOnly{b.f}, boot.Offset, boot.Size)
		if err != nil {
			return err
		}
		d, err := b.fresh("fat-ours")
		if err != nil {
			return err
		}
		return fsys.Walk(func(p string, e fat.Entry) error {
			if e.IsDir {
				return os.MkdirAll(filepath.Join(d, p), 0o755)
			}
			data, err := fsys.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(d, p), data, 0o644)
		})
	}, func() error {
		d, err := b.fresh("fat-mcopy")
		if err != nil {
			return err
		}
		_, err = testimg.Tool(b.ctx, "mcopy", "-s", "-n", "-i", b.bootDev, "::/*", d)
		return err
	})
}

// fatNameBoard times the agent's naming step against mcopy, then checks the file
// system with fsck.fat.
func (b *bencher) fatNameBoard() error {
	boot := b.info.Boot
	firstrun := []byte(strings.Repeat("#!/bin/bash\n# set the hostname\n", 120))
	cmdline, err := testimg.MType(b.ctx, b.img, boot.Offset, "cmdline.txt")
	if err != nil {
		return err
	}
	cmdline = append(cmdline[:len(cmdline)-1], " systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target\n"...)
	src, err := b.fresh("src")
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"firstrun.sh": firstrun, "cmdline.txt": cmdline} {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			return err
		}
	}
	err = b.bench("fat-name-board", func() error {
		fsys, err := fat.Open(b.f, boot.Offset, boot.Size)
		if err != nil {
			return err
		}
		if err := fsys.WriteFile("firstrun.sh", firstrun); err != nil {
			return err
		}
		if err := fsys.WriteFile("cmdline.txt", cmdline); err != nil {
			return err
		}
		return b.f.Sync()
	}, func() error {
		for _, name := range []string{"firstrun.sh", "cmdline.txt"} {
			if _, err := testimg.Tool(b.ctx, "mcopy", "-o", "-i", b.bootDev, filepath.Join(src, name), "::/"+name); err != nil {
				return err
			}
		}
		return b.f.Sync()
	})
	if err != nil {
		return err
	}
	if err := testimg.FsckFAT(b.ctx, b.img, boot.Offset, boot.Size); err != nil {
		return fmt.Errorf("after fat-name-board: %w", err)
	}
	return nil
}

func (b *bencher) fatUsedRanges() error {
	boot := b.info.Boot
	part := filepath.Join(b.dir, "boot.part")
	if err := copyPart(b.f, part, boot.Offset, boot.Size); err != nil {
		return err
	}
	return b.bench("fat-used-ranges", func() error {
		fsys, err := fat.Open(readOnly{b.f}, boot.Offset, boot.Size)
		if err != nil {
			return err
		}
		_, err = fsys.UsedRanges()
		return err
	}, func() error {
		_, err := testimg.Tool(b.ctx, "fsck.fat", "-n", part)
		return err
	})
}

// extractExt4 writes every regular file and directory below p into dst.
func extractExt4(fsys *ext4.FS, p, dst string) error {
	names, err := fsys.ReadDir(p)
	if err != nil {
		return err
	}
	for _, n := range names {
		child := path.Join(p, n)
		st, err := fsys.Lstat(child)
		if err != nil {
			return err
		}
		switch {
		case st.Mode.IsDir():
			if n == "lost+found" {
				continue
			}
			if err := os.MkdirAll(filepath.Join(dst, child), 0o755); err != nil {
				return err
			}
			if err := extractExt4(fsys, child, dst); err != nil {
				return err
			}
		case st.Mode.IsRegular():
			data, err := fsys.ReadFile(child)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dst, child), data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func best(runs int, fn func() error) (float64, error) {
	b := -1.0
	for range runs {
		t0 := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		if s := time.Since(t0).Seconds(); b < 0 || s < b {
			b = s
		}
	}
	return b, nil
}

// warm reads the whole image once so both sides start with it in the page cache.
func warm(f *os.File) {
	io.Copy(io.Discard, io.NewSectionReader(f, 0, 1<<62))
}

func copyPart(f *os.File, dst string, off, n int64) error {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.NewSectionReader(f, off, n)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

type readOnly struct{ *os.File }

func (readOnly) WriteAt([]byte, int64) (int, error) { return 0, errors.New("read-only") }
