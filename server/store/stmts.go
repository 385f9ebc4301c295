package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"slices"
	"sync"
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

func (d *dbStmts) QueryContext(ctx context.Context, q string, args ...any) (rowsReader, error) {
	s, err := d.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	rows, err := s.QueryContext(ctx, d.d.args(args)...)
	if err != nil {
		return nil, classify(err)
	}
	return rows, nil
}

func (d *dbStmts) QueryRowContext(ctx context.Context, q string, args ...any) row {
	s, err := d.stmt(ctx, q)
	if err != nil {
		// Let the plain path report the error through Row.Scan.
		return sqlRow{d.db.QueryRowContext(ctx, d.d.text(q), d.d.args(args)...)}
	}
	return sqlRow{s.QueryRowContext(ctx, d.d.args(args)...)}
}

// row is a single-row read's result: sqlRow, or liteRow on the writer's own
// SQLite connection.
type row interface{ Scan(dest ...any) error }

// sqlRow is a *sql.Row whose Scan marks an unreachable database ErrUnavailable, as
// the store's other calls do: a single-row read is where a reset connection shows.
type sqlRow struct{ r *sql.Row }

func (r sqlRow) Scan(dest ...any) error { return classify(r.r.Scan(dest...)) }

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

// wconn is the writer's connection (writer.go), which the writer goroutine holds
// from its first group until Close, or until a group finds the transaction lost
// (then the connection is discarded and the next group opens a new one): on SQLite
// the store's own connection on SQLite's C API (liteConn, liteconn.go), on
// PostgreSQL one connection of Store.DB (pgConn). Its statements are prepared on
// it once and kept, BEGIN and COMMIT included: no database/sql transaction (sql.Tx)
// wraps the groups, so no statement is bound to a transaction again for each
// group, and no query starts a goroutine to watch a transaction's context. Only
// the writer goroutine uses it.
//
// Statements ignore the cancellation of the context they are given: the
// transaction is shared by a group of callers, and SQLite answers an interrupted
// write by rolling back the whole transaction, not just the statement.
type wconn struct {
	writerConn
	wal *os.File // SQLite: the WAL file the syncer syncs (walsync.go), opened in the first transaction
}

// writerConn is what the writer needs of its connection, on either dialect.
type writerConn interface {
	querier
	// ended counts the transactions that ended on the connection (SQLite: by
	// COMMIT, ROLLBACK, or SQLite rolling back by itself on an error): a group
	// that runs without savepoints (writer.go) learns so that its transaction is
	// gone, even under a function that swallowed the error. Always 0 on
	// PostgreSQL, whose groups use savepoints.
	ended() int
	// prepared is how many statements the connection keeps prepared.
	prepared() int
	// close closes the connection's statements and the connection, or gives it
	// back to its pool (on Close).
	close()
	// discard closes the connection for good: whatever state a lost transaction
	// left on it (SQLite: perhaps still open, rolled back as it closes;
	// PostgreSQL: perhaps broken) goes with it.
	discard()
}

// sqliteWriterPragmas are the writer's SQLite pragmas besides sqlitePragmas:
//   - synchronous=NORMAL: its COMMIT does not sync; the syncer does, before the
//     answers (walsync.go).
//   - temp_store=MEMORY: the savepoints' and statements' journal stays in memory.
//     Group commit opens a savepoint per transaction when a group runs again after
//     a failure (writer.go), SQLite a statement journal for statements that may
//     fail midway, and on disk that journal cost a write system call for every page
//     a hello touched (when every transaction had a savepoint).
//   - cache_size: writerCacheKiB. With SQLite's default 2 MiB, on a database of
//     55 000 open deployments pages were read from the file again and again, most
//     in the server's first seconds (hellobench's 55 000 scenario: 15 400 pread
//     calls in all, 13 000 of them in the first second; with the larger cache
//     7 300, 4 300; in each measured burst about 640 and 575).
var sqliteWriterPragmas = []string{"synchronous(NORMAL)", "temp_store(MEMORY)", fmt.Sprintf("cache_size(%d)", -writerCacheKiB)}

// newWconn opens the writer's connection: on SQLite its own on the file at path,
// with sqlitePragmas (those of Store.DB's connections) and sqliteWriterPragmas; on
// PostgreSQL a connection of db.
func newWconn(ctx context.Context, db *sql.DB, d dialect, path string) (*wconn, error) {
	if d == dialectSQLite {
		var pragmas []string
		for _, p := range append(slices.Clone(sqlitePragmas), sqliteWriterPragmas...) {
			pragmas = append(pragmas, "PRAGMA "+p)
		}
		c, err := openLite(path, pragmas...)
		if err != nil {
			return nil, classify(err)
		}
		return &wconn{writerConn: c}, nil
	}
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, classify(err)
	}
	return &wconn{writerConn: &pgConn{conn: c, stmts: make(map[string]*sql.Stmt)}}, nil
}

// close closes w and its handle of the WAL file.
func (w *wconn) close() {
	w.closeWAL()
	w.writerConn.close()
}

// discard closes w for good (writerConn.discard) and its handle of the WAL file.
func (w *wconn) discard() {
	w.closeWAL()
	w.writerConn.discard()
}

// closeWAL closes w's handle of the WAL file (the syncer is done with it).
func (w *wconn) closeWAL() {
	if w.wal != nil {
		w.wal.Close()
		w.wal = nil
	}
}

// pgConn is the writer's connection on PostgreSQL: a connection of Store.DB with
// the statements prepared on it.
type pgConn struct {
	conn  *sql.Conn
	stmts map[string]*sql.Stmt // query (as the store writes it) → prepared on conn
}

func (w *pgConn) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if s, ok := w.stmts[q]; ok {
		return s, nil
	}
	s, err := w.conn.PrepareContext(ctx, dialectPostgres.text(q))
	if err != nil {
		return nil, classify(err)
	}
	w.stmts[q] = s
	return s, nil
}

func (w *pgConn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	ctx = stmtCtx
	s, err := w.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	res, err := s.ExecContext(ctx, dialectPostgres.args(args)...)
	return res, classify(err)
}

func (w *pgConn) QueryContext(ctx context.Context, q string, args ...any) (rowsReader, error) {
	ctx = stmtCtx
	s, err := w.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	rows, err := s.QueryContext(ctx, dialectPostgres.args(args)...)
	if err != nil {
		return nil, classify(err)
	}
	return rows, nil
}

func (w *pgConn) QueryRowContext(ctx context.Context, q string, args ...any) row {
	ctx = stmtCtx
	s, err := w.stmt(ctx, q)
	if err != nil {
		// Let the plain path report the error through Row.Scan.
		return sqlRow{w.conn.QueryRowContext(ctx, dialectPostgres.text(q), dialectPostgres.args(args)...)}
	}
	return sqlRow{s.QueryRowContext(ctx, dialectPostgres.args(args)...)}
}

func (w *pgConn) ended() int    { return 0 }
func (w *pgConn) prepared() int { return len(w.stmts) }

func (w *pgConn) close() {
	w.closeStmts()
	w.conn.Close()
}

func (w *pgConn) discard() {
	w.closeStmts()
	w.conn.Raw(func(any) error { return driver.ErrBadConn }) // database/sql closes a bad connection
	w.conn.Close()
}

// closeStmts closes the statements prepared on w's connection, before it goes.
func (w *pgConn) closeStmts() {
	for _, s := range w.stmts {
		s.Close()
	}
	w.stmts = nil
}
