package store

import (
	"context"
	"database/sql"
	"errors"

	"fmt"
)

// Batch states.
const (
	BatchPending   = "pending"
	BatchActive    = "active"
	BatchPaused    = "paused"
	BatchComplete  = "complete"
	BatchCancelled = "cancelled"
)

// Batch is "deploy Count boards of Product for Venue with Image". Count 0 means
// open-ended: every unknown board takes the venue's next name until cancelled.
type Batch struct {
	ID        int64
	Venue     string
	Product   string
	Image     string // "" = the product's active image
	Count     int    // 0 = open-ended
	Priority  int
	State     string
	Done      int // verified deployments
	InFlight  int // open deployments
	Failed    int // failed deployments
	Note      string
	CreatedAt string
	UpdatedAt string
	P2P       string // "on", "off" or "inherit" (migration 0032)
}

const batchCols = `b.id, b.venue, b.product, b.image, coalesce(b.count, 0), b.priority, b.state, b.done,
	b.in_progress, b.failed, b.note, b.created_at, b.updated_at, b.p2p`

func scanBatch(r scanner) (Batch, error) {
	var b Batch
	err := r.Scan(&b.ID, &b.Venue, &b.Product, &b.Image, &b.Count, &b.Priority, &b.State, &b.Done, &b.InFlight,
		&b.Failed, &b.Note, &b.CreatedAt, &b.UpdatedAt, &b.P2P)
	return b, err
}

// Batches lists batches, newest first; state "" lists all.
func (s *Store) Batches(ctx context.Context, state string) ([]Batch, error) {
	return collect(ctx, s.r, scanBatch, `SELECT `+batchCols+` FROM batches b WHERE (? = '' OR b.state = ?) ORDER BY b.id DESC`, state, state)
}

// Batch returns one batch.
func (s *Store) Batch(ctx context.Context, id int64) (Batch, error) {
	return one(ctx, s.r, scanBatch, `SELECT `+batchCols+` FROM batches b WHERE b.id = ?`, id)
}

// Batch returns one batch inside the transaction.
func (t *Tx) Batch(ctx context.Context, id int64) (Batch, error) {
	return one(ctx, t.tx, scanBatch, `SELECT `+batchCols+` FROM batches b WHERE b.id = ?`, id)
}

// AddBatch inserts a batch and returns its ID.
func (t *Tx) AddBatch(ctx context.Context, b Batch) (int64, error) {
	t.batchesChanged() // what HelloBatches keeps for the group (shared.go)
	var count any
	if b.Count > 0 {
		count = b.Count
	}
	id, err := t.insert(ctx, `INSERT INTO batches (venue, product, image, count, priority, state, note, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, b.Venue, b.Product, b.Image, count, b.Priority, b.State, b.Note,
		t.nowText(), t.nowText())
	if err != nil {
		return 0, fmt.Errorf("insert batch: %w", err)
	}
	return id, nil
}

// UpdateBatch writes a batch's state, priority and done count.
func (t *Tx) UpdateBatch(ctx context.Context, b Batch) error {
	t.batchesChanged() // what HelloBatches keeps for the group (shared.go)
	_, err := t.tx.ExecContext(ctx, `UPDATE batches SET state = ?, priority = ?, done = ?, updated_at = ? WHERE id = ?`,
		b.State, b.Priority, b.Done, t.nowText(), b.ID)
	return err
}

// SetBatchP2P sets a batch's peer-to-peer mode ("on", "off" or "inherit").
func (t *Tx) SetBatchP2P(ctx context.Context, id int64, mode string) error {
	t.batchesChanged() // what HelloBatches keeps for the group (shared.go)
	res, err := t.tx.ExecContext(ctx, `UPDATE batches SET p2p = ? WHERE id = ?`, mode, id)
	return affectedOne(res, err)
}

// DeploymentP2P returns the peer-to-peer modes of a deployment's batch ("inherit"
// when it has none) and of its image.
func (s *Store) DeploymentP2P(ctx context.Context, id int64) (batch, image string, err error) {
	err = s.r.QueryRowContext(ctx, `SELECT coalesce(b.p2p, 'inherit'), coalesce(i.p2p, 'inherit') FROM deployments d
		LEFT JOIN batches b ON b.id = d.batch_id LEFT JOIN images i ON i.name = d.image WHERE d.id = ?`, id).Scan(&batch, &image)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", ErrNotFound
	}
	return batch, image, err
}

// HelloBatch is a batch a new board may join (HelloBatches) with what a deployment
// in it is made of: ProductImageHead of the batch's product and image, read in the
// same query.
type HelloBatch struct {
	Batch
	Product Product
	// ProductKnown is false when the batch's product is not stored
	// (ProductImageHead's ErrNotFound).
	ProductKnown bool
	// Image is the head (ImageHead) of the batch's image, or of the product's
	// active image when the batch names none; ImageFound is false when there is
	// no such image (or the product has no active image).
	Image      Image
	ImageFound bool
}

// HelloBatches lists the active batches that a new board may join, best first:
// highest priority, then oldest. Batches whose verified plus open deployments
// reach their count are left out. Each comes with its product and image head:
// what a new board's hello reads in one statement where listing the batches and a
// ProductImageHead per batch took two or more (a statement costs the writer more
// than the reads in it). Within a group of write transactions the list is read
// once and kept for the functions after the first that asks, as the group's
// writes change it (shared.go); the caller gets its own copy.
func (t *Tx) HelloBatches(ctx context.Context) ([]HelloBatch, error) {
	if bs, ok := t.g.helloBatches(); ok {
		return bs, nil
	}
	bs, err := t.readHelloBatches(ctx)
	if err == nil {
		t.g.keepBatches(bs)
	}
	return bs, err
}

// readHelloBatches is HelloBatches read from the database.
func (t *Tx) readHelloBatches(ctx context.Context) ([]HelloBatch, error) {
	return collect(ctx, t.tx, func(r scanner) (HelloBatch, error) {
		var hb HelloBatch
		b, p, img := &hb.Batch, &hb.Product, &hb.Image
		var code, imgName sql.NullString
		err := r.Scan(&b.ID, &b.Venue, &b.Product, &b.Image, &b.Count, &b.Priority, &b.State, &b.Done, &b.InFlight,
			&b.Failed, &b.Note, &b.CreatedAt, &b.UpdatedAt, &b.P2P,
			&code, &p.Name, &p.Naming, &p.Digits, &p.Image, &p.FirstBoot, &p.CreatedAt,
			&imgName, &img.Size, &img.SHA256, &img.CompressedSize, &img.CompressedSHA256, &img.FirstBoot, &img.OSRelease,
			&img.State, &img.CreatedAt, &img.ReadyAt, &img.P2P)
		p.Code, hb.ProductKnown = code.String, code.Valid
		img.Name, hb.ImageFound = imgName.String, imgName.Valid
		if !hb.ImageFound {
			hb.Image = Image{}
		}
		return hb, err
	}, helloBatchesSQL)
}

const helloBatchesSQL = `SELECT ` + batchCols + `,
		p.code, coalesce(p.name, ''), coalesce(p.naming, ''), coalesce(p.digits, 0), coalesce(p.image, ''),
		coalesce(p.first_boot, ''), coalesce(p.created_at, ''),
		i.name, coalesce(i.size, 0), coalesce(i.sha256, ''), coalesce(i.compressed_size, 0), coalesce(i.compressed_sha256, ''),
		coalesce(i.first_boot, ''), coalesce(i.os_release, ''), coalesce(i.state, ''), coalesce(i.created_at, ''),
		coalesce(i.ready_at, ''), coalesce(i.p2p, '')
		FROM batches b LEFT JOIN products p ON p.code = b.product
		LEFT JOIN images i ON i.name = (CASE WHEN b.image != '' THEN b.image ELSE p.image END)
		WHERE b.state = 'active' AND (b.count IS NULL OR b.done + b.in_progress < b.count)
		ORDER BY b.priority DESC, b.id`
