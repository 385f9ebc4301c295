package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"sync"

	"modernc.org/sqlite"
)

// SQLite spends most of a small query parsing it; the store keeps one prepared
// statement per query text and reuses it: on the reader pool (dbStmts) and on the
// writer's connection (wconn). The query texts are the store's own (?
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

// stmtCtx is the context of every statement on the writer's connection: never
// cancelled (see wconn). The context a caller gives carries nothing else that the
// drivers read; context.WithoutCancel of it cost an allocation per statement.
var stmtCtx = context.Background()

// wconn is the writer's connection (writer.go): one connection of Store.DB that
// the writer goroutine holds from its first group until Close, or until a group
// finds the transaction lost (then the connection is discarded and the next group
// takes a new one). Its statements are prepared on it once and kept, BEGIN and
// COMMIT included: no database/sql transaction (sql.Tx) wraps the groups, so no
// statement is bound to a transaction again for each group, and no query starts a
// goroutine to watch a transaction's context. Only the writer goroutine uses it.
//
// Statements ignore the cancellation of the context they are given: the
// transaction is shared by a group of callers, and SQLite answers an interrupted
// write by rolling back the whole transaction, not just the statement.
type wconn struct {
	conn  *sql.Conn
	d     dialect
	stmts map[string]*sql.Stmt // query (as the store writes it) → prepared on conn
	wal   *os.File             // SQLite: the WAL file the syncer syncs (walsync.go), opened in the first transaction
	// rollbacks counts the transactions SQLite rolled back on conn, by a ROLLBACK
	// or by itself on an error (sqlite3_rollback_hook; ROLLBACK TO a savepoint is
	// not one): a group that runs without savepoints (writer.go) learns so that
	// its transaction is gone, even under a function that swallowed the error.
	// Always 0 on PostgreSQL, whose groups use savepoints.
	rollbacks int
}

// rollbackHooker is the method of modernc.org/sqlite's connections that sets
// their rollback hook.
type rollbackHooker interface {
	RegisterRollbackHook(sqlite.RollbackHookFn)
}

// newWconn takes a connection of db for the writer.
func newWconn(ctx context.Context, db *sql.DB, d dialect) (*wconn, error) {
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, classify(err)
	}
	w := &wconn{conn: c, d: d, stmts: make(map[string]*sql.Stmt)}
	if d == dialectSQLite {
		err := c.Raw(func(dc any) error {
			h, ok := dc.(rollbackHooker)
			if !ok {
				return fmt.Errorf("sqlite connection %T has no rollback hook", dc)
			}
			h.RegisterRollbackHook(func() { w.rollbacks++ }) // run by the writer's own statements
			return nil
		})
		if err != nil {
			c.Close()
			return nil, err
		}
	}
	return w, nil
}

func (w *wconn) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if s, ok := w.stmts[q]; ok {
		return s, nil
	}
	s, err := w.conn.PrepareContext(ctx, w.d.text(q))
	if err != nil {
		return nil, classify(err)
	}
	w.stmts[q] = s
	return s, nil
}

func (w *wconn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	ctx = stmtCtx
	s, err := w.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	res, err := s.ExecContext(ctx, w.d.args(args)...)
	return res, classify(err)
}

func (w *wconn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	ctx = stmtCtx
	s, err := w.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	rows, err := s.QueryContext(ctx, w.d.args(args)...)
	return rows, classify(err)
}

func (w *wconn) QueryRowContext(ctx context.Context, q string, args ...any) row {
	ctx = stmtCtx
	s, err := w.stmt(ctx, q)
	if err != nil {
		// Let the plain path report the error through Row.Scan.
		return row{w.conn.QueryRowContext(ctx, w.d.text(q), w.d.args(args)...)}
	}
	return row{s.QueryRowContext(ctx, w.d.args(args)...)}
}

// close closes w's statements and gives its connection back to the pool (on
// Close).
func (w *wconn) close() {
	w.closeStmts()
	w.closeWAL()
	w.conn.Raw(func(dc any) error { // the pool's other users count nothing
		if h, ok := dc.(rollbackHooker); ok {
			h.RegisterRollbackHook(nil)
		}
		return nil
	})
	w.conn.Close()
}

// closeWAL closes w's handle of the WAL file (the syncer is done with it).
func (w *wconn) closeWAL() {
	if w.wal != nil {
		w.wal.Close()
		w.wal = nil
	}
}

// discard closes w's statements and closes its connection for good, not back
// into the pool: whatever state a lost transaction left on it (SQLite: perhaps
// still open; PostgreSQL: perhaps broken) goes with it.
func (w *wconn) discard() {
	w.closeStmts()
	w.closeWAL()
	w.conn.Raw(func(any) error { return driver.ErrBadConn }) // database/sql closes a bad connection
	w.conn.Close()
}

// closeStmts closes the statements prepared on w's connection, before it goes.
func (w *wconn) closeStmts() {
	for _, s := range w.stmts {
		s.Close()
	}
	w.stmts = nil
}
