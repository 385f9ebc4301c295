package store

import (
	"context"
	"fmt"
)

// Naming strategies of a product.
const (
	NamingPool   = "pool"   // the next free name of the venue's pool: KXP2-CORO-001
	NamingSerial = "serial" // the board serial's low 8 hex digits: RXP2-ARIA-ABC12345
)

// Product is a kind of board deployment with its naming strategy.
type Product struct {
	Code      string
	Name      string
	Naming    string // NamingPool or NamingSerial
	Digits    int    // width of pool numbers (pool naming), default 3
	Image     string // active image, "" when none
	FirstBoot string // JSON agentapi.FirstBoot defaults
	CreatedAt string
}

const productCols = `code, name, naming, digits, coalesce(image, ''), first_boot, created_at`

func scanProduct(r scanner) (Product, error) {
	var p Product
	err := r.Scan(&p.Code, &p.Name, &p.Naming, &p.Digits, &p.Image, &p.FirstBoot, &p.CreatedAt)
	return p, err
}

// Products lists all products by code.
func (s *Store) Products(ctx context.Context) ([]Product, error) {
	return collect(ctx, s.r, scanProduct, `SELECT `+productCols+` FROM products ORDER BY code`)
}

// Product returns one product.
func (s *Store) Product(ctx context.Context, code string) (Product, error) {
	return one(ctx, s.r, scanProduct, `SELECT `+productCols+` FROM products WHERE code = ?`, code)
}

// Product returns one product inside the transaction.
func (t *Tx) Product(ctx context.Context, code string) (Product, error) {
	return one(ctx, t.tx, scanProduct, `SELECT `+productCols+` FROM products WHERE code = ?`, code)
}

// PutProduct creates or updates a product (all fields but Image and CreatedAt).
func (t *Tx) PutProduct(ctx context.Context, p Product) error {
	t.batchesChanged() // what HelloBatches keeps for the group (shared.go)
	if p.FirstBoot == "" {
		p.FirstBoot = "{}"
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO products (code, name, naming, digits, first_boot, created_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (code) DO UPDATE SET name = excluded.name, naming = excluded.naming,
		digits = excluded.digits, first_boot = excluded.first_boot`,
		p.Code, p.Name, p.Naming, p.Digits, p.FirstBoot, t.nowText())
	if err != nil {
		return fmt.Errorf("put product %q: %w", p.Code, err)
	}
	return nil
}

// SetProductImage sets (or with "" clears) the product's active image.
func (t *Tx) SetProductImage(ctx context.Context, product, image string) error {
	t.batchesChanged() // what HelloBatches keeps for the group (shared.go)
	res, err := t.tx.ExecContext(ctx, `UPDATE products SET image = ? WHERE code = ?`, nullStr(image), product)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// ClearImageEverywhere removes image as any product's active image.
func (t *Tx) ClearImageEverywhere(ctx context.Context, image string) error {
	t.batchesChanged() // what HelloBatches keeps for the group (shared.go)
	_, err := t.tx.ExecContext(ctx, `UPDATE products SET image = NULL WHERE image = ?`, image)
	return err
}
