package store

import (
	"context"
	"database/sql"
	"sync"
)

// SQLite spends most of a small query parsing it; the store keeps one prepared
// statement per query text and reuses it. The query texts are the store's own (?
// placeholders); they are rewritten for the dialect when prepared (dialect.go),
// and errors that say the database is unreachable come back marked ErrUnavailable.

// dbStmts is a querier over a *sql.DB whose statements are prepared once.
type dbStmts struct {
	db *sql.DB
	d  dialect
	m  sync.Map // query (as the store writes it) → *sql.Stmt
}

func (d *dbStmts) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if s, ok := d.m.Load(q); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := d.db.PrepareContext(ctx, d.d.text(q))
	if err != nil {
		return nil, classify(err)
	}
	if old, loaded := d.m.LoadOrStore(q, s); loaded {
		s.Close()
		return old.(*sql.Stmt), nil
	}
	return s, nil
}

func (d *dbStmts) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	s, err := d.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	res, err := s.ExecContext(ctx, d.d.args(args)...)
	return res, classify(err)
}

func (d *dbStmts) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	s, err := d.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	rows, err := s.QueryContext(ctx, d.d.args(args)...)
	return rows, classify(err)
}

func (d *dbStmts) QueryRowContext(ctx context.Context, q string, args ...any) row {
	s, err := d.stmt(ctx, q)
	if err != nil {
		// Let the plain path report the error through Row.Scan.
		return row{d.db.QueryRowContext(ctx, d.d.text(q), d.d.args(args)...)}
	}
	return row{s.QueryRowContext(ctx, d.d.args(args)...)}
}

// row is a *sql.Row whose Scan marks an unreachable database ErrUnavailable, as
// the store's other calls do: a single-row read is where a reset connection shows.
type row struct{ r *sql.Row }

func (r row) Scan(dest ...any) error { return classify(r.r.Scan(dest...)) }

func (d *dbStmts) close() {
	d.m.Range(func(_, v any) bool {
		v.(*sql.Stmt).Close()
		return true
	})
}

// txStmts is a querier inside a write transaction. Statements already prepared on
// the writer connection are reused; new query texts run unprepared this time and are
// prepared after the transaction ends (the only writer connection is busy until then).
// Statements ignore the cancellation of the context they are given: the
// transaction is shared by a group of callers (writer.go), and SQLite answers an
// interrupted write by rolling back the whole transaction, not just the statement.
// The transaction's form of each statement is made once per transaction (a group
// runs the same dozen statements for each of its callers).
type txStmts struct {
	tx      *sql.Tx
	cache   *dbStmts
	missing []string
	bound   map[string]*sql.Stmt // query → the prepared statement bound to tx
}

func (t *txStmts) get(ctx context.Context, q string) *sql.Stmt {
	if s, ok := t.bound[q]; ok {
		return s
	}
	if s, ok := t.cache.m.Load(q); ok {
		ts := t.tx.StmtContext(ctx, s.(*sql.Stmt))
		if t.bound == nil {
			t.bound = make(map[string]*sql.Stmt)
		}
		t.bound[q] = ts
		return ts
	}
	t.missing = append(t.missing, q)
	return nil
}

func (t *txStmts) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	ctx = context.WithoutCancel(ctx)
	d := t.cache.d
	if s := t.get(ctx, q); s != nil {
		res, err := s.ExecContext(ctx, d.args(args)...)
		return res, classify(err)
	}
	res, err := t.tx.ExecContext(ctx, d.text(q), d.args(args)...)
	return res, classify(err)
}

func (t *txStmts) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	ctx = context.WithoutCancel(ctx)
	d := t.cache.d
	if s := t.get(ctx, q); s != nil {
		rows, err := s.QueryContext(ctx, d.args(args)...)
		return rows, classify(err)
	}
	rows, err := t.tx.QueryContext(ctx, d.text(q), d.args(args)...)
	return rows, classify(err)
}

func (t *txStmts) QueryRowContext(ctx context.Context, q string, args ...any) row {
	ctx = context.WithoutCancel(ctx)
	d := t.cache.d
	if s := t.get(ctx, q); s != nil {
		return row{s.QueryRowContext(ctx, d.args(args)...)}
	}
	return row{t.tx.QueryRowContext(ctx, d.text(q), d.args(args)...)}
}

// prepareMissing prepares the query texts a transaction ran unprepared.
func (t *txStmts) prepareMissing(ctx context.Context) {
	for _, q := range t.missing {
		t.cache.stmt(ctx, q)
	}
}
