package store

import (
	"context"
	"fmt"
)

// Image site states (migration 0035).
const (
	SitePulling = "pulling" // the bytes are arriving from another site
	SiteReady   = "ready"   // whole and verified at that site; it serves its peers
)

// ImageSite is one site's copy of an image: which content (by SHA-256), where that
// server answers its peers, and how far it is.
type ImageSite struct {
	Site             string
	Image            string
	SHA256           string // of the raw image
	CompressedSHA256 string // of NAME.img.zst
	URL              string // base URL of the site's server for its peers (--peer-url)
	State            string // SitePulling or SiteReady
	Bytes            int64  // verified bytes held (the compressed size when ready)
	Source           string // the site pulled from; "" for an upload
	UpdatedAt        string
}

const imageSiteCols = `site, image, sha256, compressed_sha256, url, state, bytes, source, updated_at`

func scanImageSite(r scanner) (ImageSite, error) {
	var s ImageSite
	err := r.Scan(&s.Site, &s.Image, &s.SHA256, &s.CompressedSHA256, &s.URL, &s.State, &s.Bytes, &s.Source, &s.UpdatedAt)
	return s, err
}

// ImageSites lists the sites that hold (or are pulling) image name, by site.
func (s *Store) ImageSites(ctx context.Context, name string) ([]ImageSite, error) {
	return collect(ctx, s.r, scanImageSite, `SELECT `+imageSiteCols+` FROM image_sites WHERE image = ? ORDER BY site`, name)
}

// AllImageSites lists every site's copies, by image and site.
func (s *Store) AllImageSites(ctx context.Context) ([]ImageSite, error) {
	return collect(ctx, s.r, scanImageSite, `SELECT `+imageSiteCols+` FROM image_sites ORDER BY image, site`)
}

// ImageSites lists the sites that hold (or are pulling) image name, inside the
// transaction.
func (t *Tx) ImageSites(ctx context.Context, name string) ([]ImageSite, error) {
	return collect(ctx, t.tx, scanImageSite, `SELECT `+imageSiteCols+` FROM image_sites WHERE image = ? ORDER BY site`, name)
}

// PutImageSite inserts or replaces one site's copy of an image (UpdatedAt is the
// transaction's time).
func (t *Tx) PutImageSite(ctx context.Context, i ImageSite) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO image_sites (`+imageSiteCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (site, image) DO UPDATE SET sha256 = excluded.sha256, compressed_sha256 = excluded.compressed_sha256,
		url = excluded.url, state = excluded.state, bytes = excluded.bytes, source = excluded.source,
		updated_at = excluded.updated_at`,
		i.Site, i.Image, i.SHA256, i.CompressedSHA256, i.URL, i.State, i.Bytes, i.Source, t.nowText())
	if err != nil {
		return fmt.Errorf("put image site %q/%q: %w", i.Site, i.Image, err)
	}
	return nil
}

// SetImageSiteBytes records the progress of a pull: site holds n verified bytes of
// image (only while it is pulling that content).
func (t *Tx) SetImageSiteBytes(ctx context.Context, site, image, compressedSHA256 string, n int64) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE image_sites SET bytes = ?, updated_at = ?
		WHERE site = ? AND image = ? AND compressed_sha256 = ? AND state = ?`,
		n, t.nowText(), site, image, compressedSHA256, SitePulling)
	return err
}

// DeleteImageSite forgets one site's copy of an image.
func (t *Tx) DeleteImageSite(ctx context.Context, site, image string) error {
	_, err := t.tx.ExecContext(ctx, `DELETE FROM image_sites WHERE site = ? AND image = ?`, site, image)
	return err
}

// DeleteImageSites forgets every site's copy of an image (the image is deleted).
func (t *Tx) DeleteImageSites(ctx context.Context, image string) error {
	_, err := t.tx.ExecContext(ctx, `DELETE FROM image_sites WHERE image = ?`, image)
	return err
}

// PeerToken returns the peer credential of the database, storing candidate as it
// when there is none yet: the first server to ask creates it, every later one
// (on this database) reads the same.
func (t *Tx) PeerToken(ctx context.Context, candidate string) (string, error) {
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO peer_credentials (id, token, created_at) VALUES (1, ?, ?)
		ON CONFLICT (id) DO NOTHING`, candidate, t.nowText()); err != nil {
		return "", fmt.Errorf("create peer credential: %w", err)
	}
	var tok string
	if err := t.tx.QueryRowContext(ctx, `SELECT token FROM peer_credentials WHERE id = 1`).Scan(&tok); err != nil {
		return "", fmt.Errorf("read peer credential: %w", err)
	}
	return tok, nil
}
