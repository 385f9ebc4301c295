package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Image states.
const (
	ImageUploading = "uploading" // manifest registered, bytes arriving
	ImageReady     = "ready"     // complete and checked; may be deployed
)

// Image is a registered master image. Manifest holds the manifest JSON as uploaded.
type Image struct {
	Name             string
	Size             int64
	SHA256           string
	CompressedSize   int64
	CompressedSHA256 string
	FirstBoot        string
	OSRelease        string
	Manifest         string
	State            string
	CreatedAt        string
	ReadyAt          string
	P2P              string // "on", "off" or "inherit" (migration 0032)
}

const imageCols = `name, size, sha256, compressed_size, compressed_sha256, first_boot, os_release, manifest, state, created_at, coalesce(ready_at, ''), p2p`

func scanImage(r scanner) (Image, error) {
	var i Image
	err := r.Scan(&i.Name, &i.Size, &i.SHA256, &i.CompressedSize, &i.CompressedSHA256, &i.FirstBoot, &i.OSRelease,
		&i.Manifest, &i.State, &i.CreatedAt, &i.ReadyAt, &i.P2P)
	return i, err
}

// Images lists all images by name.
func (s *Store) Images(ctx context.Context) ([]Image, error) {
	return collect(ctx, s.r, scanImage, `SELECT `+imageCols+` FROM images ORDER BY name`)
}

// Image returns one image.
func (s *Store) Image(ctx context.Context, name string) (Image, error) {
	return one(ctx, s.r, scanImage, `SELECT `+imageCols+` FROM images WHERE name = ?`, name)
}

// Image returns one image inside the transaction.
func (t *Tx) Image(ctx context.Context, name string) (Image, error) {
	return one(ctx, t.tx, scanImage, `SELECT `+imageCols+` FROM images WHERE name = ?`, name)
}

// ImageHead returns one image inside the transaction without its manifest
// (Manifest is ""): what a hello's answer is made of. The manifest of a large
// image (a hash per chunk, a frame offset per chunk) runs to hundreds of
// kilobytes, and a hello runs inside the one writer.
func (t *Tx) ImageHead(ctx context.Context, name string) (Image, error) {
	return one(ctx, t.tx, scanImage, `SELECT `+strings.Replace(imageCols, "manifest", "''", 1)+` FROM images WHERE name = ?`, name)
}

// ProductImageHead returns product code and, in the same query, the head
// (ImageHead) of image name, or of the product's active image when name is "":
// what a new deployment of the product is made of. An unknown product is
// ErrNotFound; found is false when there is no such image (or the product has no
// active image).
func (t *Tx) ProductImageHead(ctx context.Context, code, name string) (p Product, img Image, found bool, err error) {
	var imgName sql.NullString
	err = t.tx.QueryRowContext(ctx, `SELECT p.code, p.name, p.naming, p.digits, coalesce(p.image, ''), p.first_boot, p.created_at,
		i.name, coalesce(i.size, 0), coalesce(i.sha256, ''), coalesce(i.compressed_size, 0), coalesce(i.compressed_sha256, ''),
		coalesce(i.first_boot, ''), coalesce(i.os_release, ''), coalesce(i.state, ''), coalesce(i.created_at, ''),
		coalesce(i.ready_at, ''), coalesce(i.p2p, '')
		FROM products p LEFT JOIN images i ON i.name = (CASE WHEN ? != '' THEN ? ELSE p.image END) WHERE p.code = ?`,
		name, name, code).Scan(&p.Code, &p.Name, &p.Naming, &p.Digits, &p.Image, &p.FirstBoot, &p.CreatedAt,
		&imgName, &img.Size, &img.SHA256, &img.CompressedSize, &img.CompressedSHA256, &img.FirstBoot, &img.OSRelease,
		&img.State, &img.CreatedAt, &img.ReadyAt, &img.P2P)
	if errors.Is(err, sql.ErrNoRows) {
		return p, img, false, ErrNotFound
	}
	if err != nil || !imgName.Valid {
		return p, Image{}, false, classify(err)
	}
	img.Name = imgName.String
	return p, img, true, nil
}

// PutImage inserts or replaces an image row.
func (t *Tx) PutImage(ctx context.Context, i Image) error {
	t.batchesChanged() // what HelloBatches keeps for the group (shared.go)
	_, err := t.tx.ExecContext(ctx, `INSERT INTO images (name, size, sha256, compressed_size, compressed_sha256, first_boot, os_release, manifest, state, created_at, ready_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256,
		compressed_size = excluded.compressed_size, compressed_sha256 = excluded.compressed_sha256,
		first_boot = excluded.first_boot, os_release = excluded.os_release, manifest = excluded.manifest,
		state = excluded.state, ready_at = excluded.ready_at`,
		i.Name, i.Size, i.SHA256, i.CompressedSize, i.CompressedSHA256, i.FirstBoot, i.OSRelease, i.Manifest, i.State,
		t.nowText(), nullStr(i.ReadyAt))
	if err != nil {
		return fmt.Errorf("put image %q: %w", i.Name, err)
	}
	return nil
}

// SetImageReady marks an image ready.
func (t *Tx) SetImageReady(ctx context.Context, name string) error {
	t.batchesChanged() // what HelloBatches keeps for the group (shared.go)
	_, err := t.tx.ExecContext(ctx, `UPDATE images SET state = ?, ready_at = ? WHERE name = ?`, ImageReady, t.nowText(), name)
	return err
}

// ImageInUse counts open deployments and unfinished batches that use an image.
func (t *Tx) ImageInUse(ctx context.Context, name string) (int, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM deployments WHERE image = ? AND state = 'open') +
		(SELECT count(*) FROM batches WHERE image = ? AND state IN ('pending', 'active', 'paused'))`, name, name).Scan(&n)
	return n, err
}

// DeleteImage removes an image row.
func (t *Tx) DeleteImage(ctx context.Context, name string) error {
	t.batchesChanged() // what HelloBatches keeps for the group (shared.go)
	res, err := t.tx.ExecContext(ctx, `DELETE FROM images WHERE name = ?`, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// SetImageP2P sets an image's peer-to-peer mode ("on", "off" or "inherit").
func (t *Tx) SetImageP2P(ctx context.Context, name, mode string) error {
	t.batchesChanged() // what HelloBatches keeps for the group (shared.go)
	res, err := t.tx.ExecContext(ctx, `UPDATE images SET p2p = ? WHERE name = ?`, mode, name)
	return affectedOne(res, err)
}
