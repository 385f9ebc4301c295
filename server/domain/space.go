package domain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// DefaultDiskReserve is Options.DiskReserve when zero: bytes of the data directory's
// file system that uploads leave free for the database.
const DefaultDiskReserve = 64 << 20

// ErrNoSpace is returned when the data directory's file system cannot take an upload
// (the API answers 507 Insufficient Storage). The error is a *SpaceError.
var ErrNoSpace = errors.New("not enough free disk space")

// SpaceError says what an upload needs and what the file system has.
type SpaceError struct {
	Image   string
	Needed  int64 // bytes this upload still has to write
	Free    int64 // bytes free now, less what other unfinished uploads will still write
	Reserve int64 // bytes kept free for the database
	Err     error // the write error (ENOSPC) when the disk filled during the upload; else nil
}

func (e *SpaceError) Error() string {
	msg := fmt.Sprintf("not enough free disk space for image %q: it needs %d more bytes and %d are kept free for the database; %d bytes are free",
		e.Image, e.Needed, e.Reserve, e.Free)
	if e.Err != nil {
		msg += " (" + e.Err.Error() + ")"
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrNoSpace) true.
func (e *SpaceError) Unwrap() error { return ErrNoSpace }

// checkSpace returns a *SpaceError when the images directory's file system cannot take
// needed more bytes of image name while keeping the reserve free and leaving room for
// what the other unfinished uploads and running pulls still have to write (their
// compressed size less what they hold). This is what lets a full disk be refused up
// front instead of filling it mid-upload.
func (s *Service) checkSpace(ctx context.Context, name string, needed int64) error {
	free, err := freeBytes(s.imgs)
	if err != nil {
		return fmt.Errorf("free space of %q: %w", s.imgs, err)
	}
	imgs, err := s.st.Images(ctx)
	if err != nil {
		return err
	}
	for _, i := range imgs {
		if i.State == store.ImageUploading && i.Name != name {
			free -= max(0, i.CompressedSize-s.partSize(i.Name))
		}
	}
	free -= s.pullsToCome(name)
	if free-s.opt.DiskReserve < needed {
		return &SpaceError{Image: name, Needed: needed, Free: max(0, free), Reserve: s.opt.DiskReserve}
	}
	return nil
}

// pullsToCome is what the running pulls of images other than name still have to
// write. A pull sets its size before its own space check, so of two pulls starting
// together the later check counts the earlier one.
func (s *Service) pullsToCome(name string) int64 {
	s.siteMu.Lock()
	defer s.siteMu.Unlock()
	var n int64
	for img, run := range s.pulls {
		if img != name && !run.done {
			n += max(0, run.size-run.bytes.Load())
		}
	}
	return n
}

// DiskFree returns the free bytes of the data directory's file system and the reserve
// kept for the database (for /healthz).
func (s *Service) DiskFree() (free, reserve int64, err error) {
	free, err = freeBytes(s.opt.DataDir)
	return free, s.opt.DiskReserve, err
}

// isNoSpace reports whether err is a write failing on a full file system.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// Recover runs once at start, before the listeners: it tightens the modes of the
// images directory (0700) and of the files in it (0600), written by older versions
// with 0750/0640, and finishes every upload whose .part file is complete — a server
// killed after the last byte arrived and before the image was made ready. Such an
// upload is checked exactly like one finished by its request (size and
// compressed_sha256); one that does not match is discarded for a new upload. Failures
// are logged; they do not stop the start.
func (s *Service) Recover(ctx context.Context) error {
	if err := os.MkdirAll(s.imgs, store.DirMode); err != nil {
		return fmt.Errorf("images directory %q: %w", s.imgs, err)
	}
	if err := os.Chmod(s.imgs, store.DirMode); err != nil {
		return fmt.Errorf("images directory %q: %w", s.imgs, err)
	}
	ents, err := os.ReadDir(s.imgs)
	if err != nil {
		return fmt.Errorf("images directory %q: %w", s.imgs, err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := os.Chmod(filepath.Join(s.imgs, e.Name()), store.FileMode); err != nil {
				return fmt.Errorf("image file %q: %w", e.Name(), err)
			}
		}
	}
	imgs, err := s.st.Images(ctx)
	if err != nil {
		return err
	}
	for _, img := range imgs {
		if img.State != store.ImageUploading || s.partSize(img.Name) != img.CompressedSize {
			continue
		}
		if _, err := s.finishUpload(WithActor(ctx, "system"), img); err != nil {
			s.log.Warn("finish complete upload at start", "image", img.Name, "err", err)
			continue
		}
		s.log.Info("finished an upload that was complete at start", "image", img.Name)
	}
	return nil
}
