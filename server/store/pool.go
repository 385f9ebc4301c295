package store

import (
	"context"
	"fmt"
)

// PoolName is one hostname of a venue's pool for a product.
type PoolName struct {
	Name      string
	Venue     string
	Product   string
	Seq       int
	Serial    string // the board holding it; "" while free
	BoundAt   string
	Retired   bool
	CreatedAt string
}

const poolCols = `name, venue, product, seq, coalesce(serial, ''), coalesce(bound_at, ''), retired, created_at`

func scanPool(r scanner) (PoolName, error) {
	var p PoolName
	err := r.Scan(&p.Name, &p.Venue, &p.Product, &p.Seq, &p.Serial, &p.BoundAt, &p.Retired, &p.CreatedAt)
	return p, err
}

// PoolFilter selects pool names; empty fields match all.
type PoolFilter struct {
	Venue, Product string
	Free           bool // only unbound, unretired names
}

// PoolNames lists pool names by venue, product and sequence.
func (s *Store) PoolNames(ctx context.Context, f PoolFilter) ([]PoolName, error) {
	q := `SELECT ` + poolCols + ` FROM pool_names WHERE (? = '' OR venue = ?) AND (? = '' OR product = ?)`
	if f.Free {
		q += ` AND serial IS NULL AND retired = 0`
	}
	return collect(ctx, s.r, scanPool, q+` ORDER BY venue, product, seq`, f.Venue, f.Venue, f.Product, f.Product)
}

// PoolStats counts a venue+product pool.
type PoolStats struct {
	Venue   string
	Product string
	Total   int
	Bound   int
	Retired int
	Free    int
}

// PoolStats counts every pool.
func (s *Store) PoolStats(ctx context.Context) ([]PoolStats, error) {
	return collect(ctx, s.r, func(r scanner) (PoolStats, error) {
		var p PoolStats
		err := r.Scan(&p.Venue, &p.Product, &p.Total, &p.Bound, &p.Retired, &p.Free)
		return p, err
	}, `SELECT venue, product, count(*), count(serial), sum(retired),
		sum(CASE WHEN serial IS NULL AND retired = 0 THEN 1 ELSE 0 END)
		FROM pool_names GROUP BY venue, product ORDER BY venue, product`)
}

// PoolName returns one pool name.
func (s *Store) PoolName(ctx context.Context, name string) (PoolName, error) {
	return one(ctx, s.r, scanPool, `SELECT `+poolCols+` FROM pool_names WHERE name = ?`, name)
}

// PoolName returns one pool name, as the transaction sees it.
func (t *Tx) PoolName(ctx context.Context, name string) (PoolName, error) {
	return one(ctx, t.tx, scanPool, `SELECT `+poolCols+` FROM pool_names WHERE name = ?`, name)
}

// MaxPoolSeq is the highest sequence number in a pool (0 when empty).
func (t *Tx) MaxPoolSeq(ctx context.Context, venue, product string) (int, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM pool_names WHERE venue = ? AND product = ?`,
		venue, product).Scan(&n)
	return n, err
}

// AddPoolName inserts a free name. An existing name gives ErrConflict.
func (t *Tx) AddPoolName(ctx context.Context, p PoolName) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO pool_names (name, venue, product, seq, serial, bound_at, retired, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, p.Name, p.Venue, p.Product, p.Seq, nullStr(p.Serial), nullStr(p.BoundAt), p.Retired, t.nowText())
	if isUnique(err) {
		return fmt.Errorf("pool name %q (or its holder) exists: %w", p.Name, ErrConflict)
	}
	return err
}

// HeldName returns the name of the pool that serial holds, or ErrNotFound.
func (t *Tx) HeldName(ctx context.Context, venue, product, serial string) (PoolName, error) {
	return one(ctx, t.tx, scanPool, `SELECT `+poolCols+` FROM pool_names WHERE venue = ? AND product = ? AND serial = ?`,
		venue, product, serial)
}

// BindNextName binds the free name with the lowest sequence to serial. No free name
// gives ErrNotFound; a name bound meanwhile by a writer outside the store's lock,
// ErrConflict (nothing is bound twice).
func (t *Tx) BindNextName(ctx context.Context, venue, product, serial string) (PoolName, error) {
	p, err := one(ctx, t.tx, scanPool, `SELECT `+poolCols+` FROM pool_names
		WHERE venue = ? AND product = ? AND retired = 0 AND serial IS NULL ORDER BY seq LIMIT 1`, venue, product)
	if err != nil {
		return p, err
	}
	p.Serial, p.BoundAt = serial, t.nowText()
	res, err := t.tx.ExecContext(ctx, `UPDATE pool_names SET serial = ?, bound_at = ? WHERE name = ? AND serial IS NULL`,
		serial, p.BoundAt, p.Name)
	if err != nil {
		return p, err
	}
	// Never with the store's serial writes (one writer; PostgreSQL's advisory lock):
	// a writer that bypassed them lost the name to another board.
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return p, fmt.Errorf("pool name %q was bound by another writer meanwhile: %w", p.Name, ErrConflict)
	}
	return p, nil
}

// SetPoolRetired retires (or un-retires) a name.
func (t *Tx) SetPoolRetired(ctx context.Context, name string, retired bool) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE pool_names SET retired = ? WHERE name = ?`, retired, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// ReleasePoolName unbinds a name from its board (it becomes free again unless retired).
func (t *Tx) ReleasePoolName(ctx context.Context, name string) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE pool_names SET serial = NULL, bound_at = NULL WHERE name = ?`, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
