package store

import (
	"context"
	"fmt"
)

// Venue is a site boards are deployed to.
type Venue struct {
	Code      string // 4 upper-case letters
	Name      string
	CreatedAt string
}

func scanVenue(r scanner) (Venue, error) {
	var v Venue
	err := r.Scan(&v.Code, &v.Name, &v.CreatedAt)
	return v, err
}

// Venues lists all venues by code.
func (s *Store) Venues(ctx context.Context) ([]Venue, error) {
	return collect(ctx, s.r, scanVenue, `SELECT code, name, created_at FROM venues ORDER BY code`)
}

// Venue returns one venue.
func (s *Store) Venue(ctx context.Context, code string) (Venue, error) {
	return one(ctx, s.r, scanVenue, `SELECT code, name, created_at FROM venues WHERE code = ?`, code)
}

// Venue returns one venue inside the transaction.
func (t *Tx) Venue(ctx context.Context, code string) (Venue, error) {
	return one(ctx, t.tx, scanVenue, `SELECT code, name, created_at FROM venues WHERE code = ?`, code)
}

// PutVenue creates a venue or renames an existing one.
func (t *Tx) PutVenue(ctx context.Context, code, name string) (created bool, err error) {
	res, err := t.tx.ExecContext(ctx, `INSERT INTO venues (code, name, created_at) VALUES (?, ?, ?)
		ON CONFLICT (code) DO NOTHING`, code, name, t.nowText())
	if err != nil {
		return false, fmt.Errorf("insert venue %q: %w", code, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	_, err = t.tx.ExecContext(ctx, `UPDATE venues SET name = ? WHERE code = ?`, name, code)
	return false, err
}

// DeleteVenue removes a venue that nothing refers to.
func (t *Tx) DeleteVenue(ctx context.Context, code string) error {
	var n int
	if err := t.tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM pool_names WHERE venue = ?) +
		(SELECT count(*) FROM batches WHERE venue = ?) + (SELECT count(*) FROM deployments WHERE venue = ?)`,
		code, code, code).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("venue %q has pool names, batches or deployments: %w", code, ErrConflict)
	}
	res, err := t.tx.ExecContext(ctx, `DELETE FROM venues WHERE code = ?`, code)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
