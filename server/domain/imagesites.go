package domain

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// Images across sites. Servers that share one database (rpi-deployd --db, each
// with its own --site and data directory) share the images table, but an image's
// bytes are in the data directory of the server it was uploaded to. The
// image_sites table (migration 0035) says which site holds which image, by its
// SHA-256, and at which URL that server answers its peers; a site that needs an
// image it does not hold pulls it from one that does (pull.go).

// ErrPeerAuth is returned when a peer request does not carry the database's peer
// credential.
var ErrPeerAuth = fmt.Errorf("%w: peer credential required", ErrAuth)

// siteRow is this site's image_sites row for img.
func (s *Service) siteRow(img store.Image, state string, n int64, source string) store.ImageSite {
	return store.ImageSite{Site: s.opt.Site, Image: img.Name, SHA256: img.SHA256, CompressedSHA256: img.CompressedSHA256,
		URL: s.opt.PeerURL, State: state, Bytes: n, Source: source}
}

// setLocal records that this site holds image name with compressed SHA-256 sum,
// whole and verified ("" forgets it).
func (s *Service) setLocal(name, sum string) {
	s.siteMu.Lock()
	defer s.siteMu.Unlock()
	if sum == "" {
		delete(s.local, name)
		return
	}
	s.local[name] = sum
}

// isLocal reports whether this site holds img's content, whole and verified.
func (s *Service) isLocal(img store.Image) bool {
	s.siteMu.Lock()
	defer s.siteMu.Unlock()
	sum, ok := s.local[img.Name]
	return ok && sum == img.CompressedSHA256
}

// hasFiles reports whether the data directory holds img whole: the packed file of
// the manifest's compressed size and the manifest file of the same content. It reads
// no image bytes (those were checked when they arrived).
func (s *Service) hasFiles(img store.Image) bool {
	fi, err := os.Stat(s.ImageFile(img.Name))
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != img.CompressedSize {
		return false
	}
	m, err := manifest.Load(s.ManifestFile(img.Name))
	return err == nil && m.CompressedSHA256 == img.CompressedSHA256 && m.SHA256 == img.SHA256
}

// RecordSiteImages runs once at start, after Recover: every ready image whose files
// this data directory holds is recorded as ready at this site (with this server's
// peer URL, which may have changed); a ready row of this site whose files are gone
// is dropped; and every pull this site had begun is resumed in the background from
// the bytes its .part file holds.
func (s *Service) RecordSiteImages(ctx context.Context) error {
	imgs, err := s.st.Images(ctx)
	if err != nil {
		return err
	}
	rows, err := s.st.AllImageSites(ctx)
	if err != nil {
		return err
	}
	mine := map[string]store.ImageSite{}
	for _, r := range rows {
		if r.Site == s.opt.Site {
			mine[r.Image] = r
		}
	}
	var resume []string
	err = s.st.Update(ctx, func(t *store.Tx) error {
		resume = nil // the function may run again (store.Update): only its last run's list counts
		for _, img := range imgs {
			if img.State != store.ImageReady {
				continue
			}
			row, had := mine[img.Name]
			switch {
			case s.hasFiles(img):
				s.setLocal(img.Name, img.CompressedSHA256)
				if err := t.PutImageSite(ctx, s.siteRow(img, store.SiteReady, img.CompressedSize, row.Source)); err != nil {
					return err
				}
			case had && row.State == store.SitePulling && row.CompressedSHA256 == img.CompressedSHA256:
				resume = append(resume, img.Name)
			case had:
				if err := t.DeleteImageSite(ctx, s.opt.Site, img.Name); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range resume {
		if _, err := s.startPull(name, mine[name].Source); err != nil {
			s.log.Warn("resume image pull", "image", name, "err", err)
		}
	}
	return nil
}

// peerToken returns the database's peer credential, creating it on first use.
func (s *Service) peerToken(ctx context.Context) (string, error) {
	s.siteMu.Lock()
	tok := s.token
	s.siteMu.Unlock()
	if tok != "" {
		return tok, nil
	}
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand documents it)
	candidate := base64.RawURLEncoding.EncodeToString(b)
	err := s.st.Update(ctx, func(t *store.Tx) error {
		var err error
		tok, err = t.PeerToken(ctx, candidate)
		return err
	})
	if err != nil {
		return "", err
	}
	s.siteMu.Lock()
	s.token = tok
	s.siteMu.Unlock()
	return tok, nil
}

// PeerImageFile authorises a peer's request for image name with compressed SHA-256
// sum and returns the packed file to serve: token must be the database's peer
// credential (ErrPeerAuth), and this site must hold that very content whole
// (ErrNotFound otherwise).
func (s *Service) PeerImageFile(ctx context.Context, token, name, sum string) (string, error) {
	want, err := s.peerToken(ctx)
	if err != nil {
		return "", err
	}
	if token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(want)) != 1 {
		return "", ErrPeerAuth
	}
	if !manifest.ValidName(name) {
		return "", fmt.Errorf("no image %q: %w", name, ErrNotFound)
	}
	path := s.ImageFile(name)
	if path == "" {
		return "", fmt.Errorf("image %q: %w", name, ErrNotFound)
	}
	img, err := s.st.Image(ctx, name)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", name, err)
	}
	if img.State != store.ImageReady || img.CompressedSHA256 != sum || !s.isLocal(img) {
		return "", fmt.Errorf("image %q with compressed sha256 %q is not held whole at site %q: %w", name, sum, s.opt.Site, ErrNotFound)
	}
	return path, nil
}

// imageSites is the wire form of an image's sites, with the error of this site's
// last pull.
func (s *Service) imageSites(rows []store.ImageSite) []mgmtapi.ImageSite {
	out := make([]mgmtapi.ImageSite, 0, len(rows))
	for _, r := range rows {
		w := mgmtapi.ImageSite{Site: r.Site, State: r.State, Bytes: r.Bytes, Source: r.Source}
		if r.Site == s.opt.Site {
			s.siteMu.Lock()
			if p := s.pulls[r.Image]; p != nil {
				if r.State == store.SitePulling {
					w.Bytes = max(w.Bytes, p.bytes.Load())
				}
				if p.err != nil {
					w.Error = p.err.Error()
				}
			}
			s.siteMu.Unlock()
		}
		out = append(out, w)
	}
	return out
}

// wireImageSites is img on the wire with its sites.
func (s *Service) wireImageSites(ctx context.Context, img store.Image) mgmtapi.Image {
	w := wireImage(img)
	if rows, err := s.st.ImageSites(ctx, img.Name); err == nil && len(rows) > 0 {
		w.Sites = s.imageSites(rows)
	}
	return w
}

// publishImage publishes image.changed with the image as it now stands.
func (s *Service) publishImage(ctx context.Context, name string) {
	img, err := s.st.Image(ctx, name)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("read image to publish", "image", name, "err", err)
		}
		return
	}
	s.publish(events.ImageChanged, s.wireImageSites(ctx, img))
}
