package domain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// ErrOffset is returned by AppendImage when the upload is not at the offset the
// client sent; UploadState tells the right one.
var ErrOffset = fmt.Errorf("%w: upload offset mismatch", ErrConflict)

// ErrNoFirstBoot is wrapped (with ErrInvalid) when an image without a first-boot
// mechanism is registered or used by a batch without the explicit override.
var ErrNoFirstBoot = errors.New("no first-boot mechanism")

// noFirstBoot is the error that names the image, says why it matters and how to go on
// anyway.
func noFirstBoot(image, action, override string) error {
	return &noFirstBootError{msg: fmt.Sprintf("image %q has no first-boot mechanism: its manifest's first_boot is empty "+
		"(no firstrun.sh support, cloud-init seed or custom.toml was found when it was packed), so boards flashed with it "+
		"cannot be given their hostname; repack an image that has one, or %s anyway with %s", image, action, override)}
}

type noFirstBootError struct{ msg string }

func (e *noFirstBootError) Error() string   { return e.msg }
func (e *noFirstBootError) Unwrap() []error { return []error{ErrInvalid, ErrNoFirstBoot} }

// ErrDigest is returned when a complete upload does not match the manifest's
// compressed_sha256; the partial file is discarded.
var ErrDigest = errors.New("uploaded bytes do not match the manifest")

// ImageFile is the packed image file of a ready image; "" for a bad name.
func (s *Service) ImageFile(name string) string {
	if !manifest.ValidName(name) {
		return ""
	}
	return filepath.Join(s.imgs, name+".img.zst")
}

// ManifestFile is the manifest file of a ready image; "" for a bad name.
func (s *Service) ManifestFile(name string) string {
	if !manifest.ValidName(name) {
		return ""
	}
	return filepath.Join(s.imgs, name+".manifest.json")
}

func (s *Service) partFile(name string) string { return filepath.Join(s.imgs, name+".img.zst.part") }

// UploadState is where an image upload stands.
type UploadState = mgmtapi.UploadState

// checkManifest decodes a manifest being registered under name ("": any) and
// checks what the upload needs of it (see RegisterManifest).
func checkManifest(name string, raw []byte, allowNoFirstBoot bool) (*manifest.Manifest, error) {
	m, err := manifest.Decode(bytes.NewReader(raw))
	if err != nil {
		return nil, invalid("manifest", "%v", err)
	}
	if name != "" && m.Name != name {
		return nil, invalid("name", "manifest name %q does not match the URL's %q", m.Name, name)
	}
	if !sha256Hex(m.CompressedSHA256) {
		return nil, invalid("compressed_sha256", "manifest %q: compressed_sha256 %q is not 64 hex digits; without it the upload cannot be checked (rpi-image pack writes it)",
			m.Name, m.CompressedSHA256)
	}
	if m.FirstBoot == manifest.FirstBootNone && !allowNoFirstBoot {
		return nil, noFirstBoot(m.Name, "register it", "rpi-deployd image add --allow-no-first-boot (rpi-image push --allow-no-first-boot; API: PUT …/manifest?allow_no_first_boot=true)")
	}
	return m, nil
}

// RegisterManifest starts (or resumes) the upload of an image by its manifest.
// The same manifest again keeps the bytes already received; a different manifest for
// an image still uploading starts over; a ready image with the same content is left
// alone (state ready); a ready image with different content is a conflict.
// name, when not "", must be the manifest's name. An image without a first-boot
// mechanism (manifest first_boot "") is refused unless allowNoFirstBoot: boards
// flashed with it could not be given their hostname (ErrNoFirstBoot).
func (s *Service) RegisterManifest(ctx context.Context, name string, raw []byte, allowNoFirstBoot bool) (UploadState, error) {
	m, err := checkManifest(name, raw, allowNoFirstBoot)
	if err != nil {
		return UploadState{}, err
	}
	if err := os.MkdirAll(s.imgs, store.DirMode); err != nil {
		return UploadState{}, err
	}
	fresh := UploadState{Name: m.Name, State: store.ImageUploading, Size: m.CompressedSize}
	st := fresh
	same := func(i store.Image) bool {
		return i.SHA256 == m.SHA256 && i.CompressedSize == m.CompressedSize && i.CompressedSHA256 == m.CompressedSHA256 &&
			i.Size == m.Size
	}
	var img store.Image
	err = s.st.Update(ctx, func(t *store.Tx) error {
		// The function may run again (store.Update): each run starts from the same state.
		st, img = fresh, store.Image{}
		old, err := t.Image(ctx, m.Name)
		switch {
		case err == nil && old.State == store.ImageReady:
			if !same(old) {
				return fmt.Errorf("image %q exists with other content (sha256 %s); delete it first or pick another name: %w",
					m.Name, old.SHA256, ErrConflict)
			}
			st.State, st.Offset = store.ImageReady, old.CompressedSize
			return nil
		case err == nil && same(old):
			return s.checkSpace(ctx, m.Name, m.CompressedSize-s.partSize(m.Name)) // resume
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		if err := s.checkSpace(ctx, m.Name, m.CompressedSize); err != nil {
			return err
		}
		s.uploadMu.Lock()
		busy := s.uploads[m.Name]
		s.uploadMu.Unlock()
		if busy {
			return fmt.Errorf("image %q: an upload with another manifest is in progress: %w", m.Name, ErrConflict)
		}
		if err := os.WriteFile(s.partFile(m.Name), nil, store.FileMode); err != nil {
			return err
		}
		img = store.Image{Name: m.Name, Size: m.Size, SHA256: m.SHA256, CompressedSize: m.CompressedSize,
			CompressedSHA256: m.CompressedSHA256, FirstBoot: m.FirstBoot, OSRelease: m.OSRelease, Manifest: string(raw),
			State: store.ImageUploading}
		if err := t.PutImage(ctx, img); err != nil {
			return err
		}
		note := ""
		if m.FirstBoot == manifest.FirstBootNone {
			note = " allow_no_first_boot"
		}
		return t.Audit(ctx, Actor(ctx), "image.register", m.Name, fmt.Sprintf("size %d sha256 %s%s", m.Size, m.SHA256, note))
	})
	if err != nil {
		return st, err
	}
	if st.State == store.ImageUploading {
		st.Offset = s.partSize(m.Name)
		if img.Name != "" {
			s.publish(events.ImageChanged, wireImage(img))
		}
		if img.Name == "" && st.Offset == m.CompressedSize && s.claimUpload(m.Name) {
			// Every byte is there but the image is not ready: the server stopped
			// between the last byte and the check. Check it now.
			defer s.releaseUpload(m.Name)
			old, err := s.st.Image(ctx, m.Name)
			if err != nil {
				return st, err
			}
			return s.finishUpload(ctx, old)
		}
	}
	return st, nil
}

func (s *Service) partSize(name string) int64 {
	fi, err := os.Stat(s.partFile(name))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Upload returns where an image's upload stands.
func (s *Service) Upload(ctx context.Context, name string) (UploadState, error) {
	img, err := s.st.Image(ctx, name)
	if err != nil {
		return UploadState{}, fmt.Errorf("image %q: %w", name, err)
	}
	st := UploadState{Name: name, State: img.State, Size: img.CompressedSize, Offset: img.CompressedSize}
	if img.State == store.ImageUploading {
		st.Offset = s.partSize(name)
	}
	return st, nil
}

// AppendImage appends the bytes of r to an image's upload at offset, which must be
// the number of bytes received so far. Whatever arrives is kept, even if r fails
// midway, so the client can continue from the new offset. When the upload reaches
// the compressed size it is checked against the manifest (size and
// compressed_sha256) and the image becomes ready.
func (s *Service) AppendImage(ctx context.Context, name string, offset int64, r io.Reader) (UploadState, error) {
	img, err := s.st.Image(ctx, name)
	if err != nil {
		return UploadState{}, fmt.Errorf("image %q: %w", name, err)
	}
	if img.State == store.ImageReady {
		return UploadState{Name: name, State: img.State, Offset: img.CompressedSize, Size: img.CompressedSize},
			fmt.Errorf("image %q is already complete: %w", name, ErrOffset)
	}
	if !s.claimUpload(name) {
		return UploadState{}, fmt.Errorf("image %q: another upload is in progress: %w", name, ErrConflict)
	}
	defer s.releaseUpload(name)

	st := UploadState{Name: name, State: store.ImageUploading, Size: img.CompressedSize}
	f, err := os.OpenFile(s.partFile(name), os.O_WRONLY|os.O_CREATE, store.FileMode)
	if err != nil {
		return st, err
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return st, err
	}
	st.Offset = have
	if offset != have {
		return st, fmt.Errorf("image %q: offset %d, have %d bytes: %w", name, offset, have, ErrOffset)
	}
	want := img.CompressedSize - have
	if err := s.checkSpace(ctx, name, want); err != nil {
		return st, err
	}
	n, copyErr := io.Copy(f, io.LimitReader(r, want))
	st.Offset = have + n
	if copyErr == nil && n == want {
		// More bytes than the manifest announced are an error, not silently dropped.
		var one [1]byte
		if m, _ := io.ReadFull(r, one[:]); m > 0 {
			copyErr = invalid("body", "more than the %d bytes of the manifest's compressed_size", img.CompressedSize)
		}
	}
	if err := f.Sync(); err != nil && copyErr == nil {
		copyErr = err
	}
	if err := f.Close(); err != nil && copyErr == nil {
		copyErr = err
	}
	if copyErr != nil && isNoSpace(copyErr) {
		// The disk filled up under this request (something else wrote to it since the
		// check): drop what this request added, so the database keeps its room, and
		// say so; the client resumes from the old offset once there is space.
		if err := os.Truncate(s.partFile(name), have); err != nil {
			s.log.Warn("truncate upload after ENOSPC", "image", name, "err", err)
		}
		st.Offset = s.partSize(name)
		free, _ := freeBytes(s.imgs)
		return st, &SpaceError{Image: name, Needed: want, Free: free, Reserve: s.opt.DiskReserve, Err: copyErr}
	}
	if copyErr != nil {
		return st, fmt.Errorf("image %q: receive at %d: %w", name, st.Offset, copyErr)
	}
	if st.Offset < img.CompressedSize {
		return st, nil
	}
	return s.finishUpload(ctx, img)
}

// finishUpload checks a complete upload and makes the image ready (and ready at
// this site).
func (s *Service) finishUpload(ctx context.Context, img store.Image) (UploadState, error) {
	n, sum, err := s.installPart(img)
	if err != nil {
		return UploadState{Name: img.Name, State: store.ImageUploading, Size: img.CompressedSize}, err
	}
	err = s.st.Update(ctx, func(t *store.Tx) error {
		if err := t.SetImageReady(ctx, img.Name); err != nil {
			return err
		}
		if err := t.PutImageSite(ctx, s.siteRow(img, store.SiteReady, n, "")); err != nil {
			return err
		}
		return t.Audit(ctx, Actor(ctx), "image.ready", img.Name, fmt.Sprintf("compressed %d bytes sha256 %s", n, sum))
	})
	if err != nil {
		return UploadState{}, err
	}
	s.setLocal(img.Name, img.CompressedSHA256)
	s.publishImage(ctx, img.Name)
	s.log.Info("image ready", "image", img.Name, "compressed_size", n)
	return UploadState{Name: img.Name, State: store.ImageReady, Offset: n, Size: n}, nil
}

// installPart checks the whole .part file of img against its manifest (length and
// compressed_sha256) and, when it matches, writes the manifest file beside it and
// renames the .part into place: the check both an upload and a pull from a peer site
// end with. A mismatch empties the .part file (its bytes cannot be told good from
// bad) and wraps ErrDigest.
func (s *Service) installPart(img store.Image) (n int64, sum string, err error) {
	part := s.partFile(img.Name)
	f, err := os.Open(part)
	if err != nil {
		return 0, "", err
	}
	h := sha256.New()
	n, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return 0, "", fmt.Errorf("hash upload %q: %w", part, err)
	}
	sum = hex.EncodeToString(h.Sum(nil))
	if n != img.CompressedSize || (img.CompressedSHA256 != "" && sum != img.CompressedSHA256) {
		os.Truncate(part, 0)
		return n, sum, fmt.Errorf("image %q: %d bytes with sha256 %s, manifest says %d bytes with sha256 %s (bytes discarded; send them again): %w",
			img.Name, n, sum, img.CompressedSize, img.CompressedSHA256, ErrDigest)
	}
	if err := writeFileSync(s.ManifestFile(img.Name), []byte(img.Manifest)); err != nil {
		return n, sum, err
	}
	if err := os.Rename(part, s.ImageFile(img.Name)); err != nil {
		return n, sum, err
	}
	if d, err := os.Open(s.imgs); err == nil {
		d.Sync()
		d.Close()
	}
	return n, sum, nil
}

func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, store.FileMode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Manifest returns the decoded manifest of an image.
func (s *Service) Manifest(ctx context.Context, name string) (*manifest.Manifest, error) {
	img, err := s.st.Image(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", name, err)
	}
	return manifest.Decode(bytes.NewReader([]byte(img.Manifest)))
}

// ActivateImage makes a ready image the active image of a product. Every batch of the
// product without an image of its own then flashes it, so an image without a
// first-boot mechanism is refused here too unless allowNoFirstBoot (ErrNoFirstBoot).
func (s *Service) ActivateImage(ctx context.Context, name, product string, allowNoFirstBoot bool) (mgmtapi.ProductView, error) {
	p, err := change(ctx, s, "", func(t *store.Tx) (auditLine, error) {
		img, err := t.Image(ctx, name)
		if err != nil {
			return auditLine{}, fmt.Errorf("image %q: %w", name, err)
		}
		if img.State != store.ImageReady {
			return auditLine{}, fmt.Errorf("image %q is still %s: %w", name, img.State, ErrConflict)
		}
		if img.FirstBoot == manifest.FirstBootNone && !allowNoFirstBoot {
			return auditLine{}, noFirstBoot(name, "activate it", "rpi-deployd image activate --allow-no-first-boot (API: \"allow_no_first_boot\": true)")
		}
		if err := t.SetProductImage(ctx, product, name); err != nil {
			return auditLine{}, fmt.Errorf("product %q: %w", product, err)
		}
		return auditLine{"image.activate", name, "product " + product}, nil
	}, func(t *store.Tx) (store.Product, error) { return t.Product(ctx, product) }, wireProductView)
	if err == nil {
		s.publish(events.ProductChanged, p.Product)
	}
	return p, err
}

// DeleteImage removes an image that no open deployment or unfinished batch uses.
//
// The files go first, inside the write transaction (after the in-use check, before
// the row): on a full disk the database cannot write the deletion until the files
// have freed their space. Should the commit still fail, the row stays without files
// (downloads answer 404) and deleting again finishes the job.
func (s *Service) DeleteImage(ctx context.Context, name string) error {
	if !manifest.ValidName(name) {
		return fmt.Errorf("image %q: %w", name, ErrNotFound)
	}
	err := s.st.Update(ctx, func(t *store.Tx) error {
		if _, err := t.Image(ctx, name); err != nil {
			return fmt.Errorf("image %q: %w", name, err)
		}
		n, err := t.ImageInUse(ctx, name)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("image %q is used by %d open deployments or unfinished batches: %w", name, n, ErrConflict)
		}
		for _, p := range []string{s.ImageFile(name), s.ManifestFile(name), s.partFile(name)} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove image file %q: %w", p, err)
			}
		}
		if err := t.DeleteImage(ctx, name); err != nil {
			return fmt.Errorf("image %q: %w", name, err)
		}
		if err := t.ClearImageEverywhere(ctx, name); err != nil {
			return err
		}
		if err := t.DeleteImageSites(ctx, name); err != nil {
			return err
		}
		return t.Audit(ctx, Actor(ctx), "image.delete", name, "")
	})
	if err != nil {
		return err
	}
	s.setLocal(name, "")
	s.publish(events.ImageChanged, map[string]any{"name": name, "deleted": true})
	return nil
}

// claimUpload marks name as having a write in progress; false when one already has.
func (s *Service) claimUpload(name string) bool {
	s.uploadMu.Lock()
	defer s.uploadMu.Unlock()
	if s.uploads[name] {
		return false
	}
	s.uploads[name] = true
	return true
}

func (s *Service) releaseUpload(name string) {
	s.uploadMu.Lock()
	delete(s.uploads, name)
	s.uploadMu.Unlock()
}
