// Package store is rpi-deployd's database: by default SQLite, one file in the data
// directory; or PostgreSQL (Config.URL), which several servers can share. The schema
// is created and migrated on open from the numbered SQL files embedded in the binary
// (migrations/NNNN_*.sql for SQLite, migrations/postgres/NNNN_*.sql for PostgreSQL:
// the same numbers and names, the same tables and columns; 0001–0049 belong to the
// server core, 0050–0069 to netboot, 0070–0079 to first-boot profiles). It knows
// nothing of HTTP, and its callers do not know which database it runs on.
//
// Writes go through one connection, which the writer goroutine holds. It commits
// the write transactions waiting at the same time together, so that a failing one
// leaves nothing and the others commit (group commit, writer.go: on PostgreSQL each
// in a savepoint of its own; on SQLite first without savepoints, and again with
// them when one fails). On SQLite the group runs in BEGIN
// IMMEDIATE, and its callers are answered once the WAL file holding its commit is
// synced (walsync.go): an Update that returned nil is on disk. On
// PostgreSQL it runs in BEGIN with the advisory lock writeLockKey taken first, so
// the writes of several servers on one database are serial exactly as SQLite's
// single writer makes them. Reads use a separate pool of connections (WAL lets them
// run beside SQLite's writer). Each table has its own file of methods; a *Tx offers
// the same writes inside one transaction for the domain's multi-step operations.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed migrations/*.sql migrations/postgres/*.sql
var migrations embed.FS

// FileName is the database file inside the data directory.
const FileName = "rpi-deployd.db"

// TimeFormat is how times are stored: fixed width, so text order is time order.
const TimeFormat = "2006-01-02T15:04:05.000000000Z"

// FormatTime renders t for the database.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// ParseTime reads a stored time; "" gives the zero time.
func ParseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Store is the open database.
type Store struct {
	// DB is the writer's pool (writerConns): the writer goroutine holds one of its
	// connections for its groups (SQLite: BEGIN IMMEDIATE transactions;
	// PostgreSQL: each group takes the write lock). Writes belong in Update, which
	// serialises them; DB is exported for tests and tools that inspect or seed the
	// database, which get its other connection.
	DB *sql.DB
	// RDB is the reader pool.
	RDB     *sql.DB
	path    string
	dialect dialect
	// serializable: Config.Serializable (writer.go, groupSerializable).
	serializable bool
	where        string // the database for messages: the file, or PostgreSQL's host and database (never a password)

	r   *dbStmts  // prepared statements of the reader pool
	wc  *wconn    // the writer's connection, nil until its first group (writer.go); the writer goroutine's only
	wal *walState // SQLite: the syncer, which answers committed groups once their WAL is on disk (walsync.go)
	// queue takes Update's transactions to the writer goroutine (writer.go), which
	// commits those waiting together; quit stops it, writerDone says it stopped.
	queue      chan *writeReq
	quit       chan struct{}
	writerDone chan struct{}
	closeOnce  sync.Once

	now func() time.Time // the clock of write transactions (Tx.Now); SetClock

	errMu    sync.Mutex
	writeErr error     // the last failed write transaction, nil after a success
	writeAt  time.Time // when writeErr happened
}

// writerConns is the size of Store.DB: on PostgreSQL one is the writer's
// connection, which the writer goroutine keeps (writer.go); the others are for the
// migrations before it starts and for tests and tools that use DB directly (on
// SQLite such a write waits for the writer's transaction, busy_timeout).
const writerConns = 2

// sqlitePragmas are the pragmas of every SQLite connection of the store: the
// readers' and Store.DB's (in their DSN) and the writer's (newWconn).
var sqlitePragmas = []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(1)"}

// writerCacheKiB is the page cache of the writer's SQLite connection, in KiB
// (PRAGMA cache_size of a negative number): pages it holds are not read from the
// file again while no other connection writes (none does while the writer runs).
// It fills only as pages are read.
const writerCacheKiB = 64 << 10

// DirMode and FileMode are the permissions of the data directory and of the files in
// it (the database and its -wal and -shm files): they hold password hashes, session
// hashes and the audit log, which are the operator's only.
const (
	DirMode  os.FileMode = 0o700
	FileMode os.FileMode = 0o600
)

// Config says which database to open. Its zero value (with Dir set) is SQLite.
type Config struct {
	// Dir is the data directory: the SQLite file lives there when URL is empty.
	Dir string
	// URL, when set, is a PostgreSQL connection URL (postgres://… or
	// postgresql://…, as libpq and pgx read it); "" means SQLite in Dir.
	URL string
	// Serializable (PostgreSQL only) replaces the write lock by SERIALIZABLE
	// transactions that run again after a serialization failure. It is the
	// alternative measured against the lock (docs/architecture.md, "Several servers
	// on one PostgreSQL"); the lock is the default and the choice.
	Serializable bool
}

// IsPostgresURL reports whether url names a PostgreSQL database.
func IsPostgresURL(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// Open opens (creating if needed) the SQLite database in dir and migrates it.
func Open(ctx context.Context, dir string) (*Store, error) {
	return OpenDB(ctx, Config{Dir: dir})
}

// OpenDB opens the database cfg names and migrates it: PostgreSQL when cfg.URL is
// set, else SQLite in cfg.Dir.
func OpenDB(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.URL == "" {
		if cfg.Serializable {
			return nil, fmt.Errorf("serializable writes: PostgreSQL only")
		}
		return openSQLite(ctx, cfg.Dir)
	}
	if !IsPostgresURL(cfg.URL) {
		return nil, fmt.Errorf("database URL %q: want postgres://… or postgresql://…", Redact(cfg.URL))
	}
	return openPostgres(ctx, cfg.URL, cfg.Serializable)
}

// openSQLite opens (creating if needed) the SQLite database in dir and migrates it.
func openSQLite(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return nil, fmt.Errorf("create data directory %q: %w", dir, err)
	}
	if err := os.Chmod(dir, DirMode); err != nil {
		return nil, fmt.Errorf("data directory %q: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	// SQLite creates the -wal and -shm files with the mode of the database file, so
	// the database file is created (empty: SQLite takes it as a new database) or
	// tightened first. Files of an older version (0644) are tightened on every start.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, FileMode); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("database file %q: %w", p, err)
		}
	}
	// Every connection commits with synchronous=FULL but the writer's, which is
	// the store's own (newWconn, liteconn.go), runs NORMAL, and whose commits the
	// syncer makes durable before answering (walsync.go).
	dsn := "file:" + path + "?_txlock=immediate"
	for _, p := range append(slices.Clone(sqlitePragmas), "synchronous(FULL)") {
		dsn += "&_pragma=" + p
	}
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	w.SetMaxOpenConns(writerConns)
	w.SetMaxIdleConns(writerConns)
	w.SetConnMaxLifetime(0)
	s := &Store{DB: w, path: path, where: path, dialect: dialectSQLite, now: time.Now}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0)*2)
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s.RDB = r
	s.start()
	return s, nil
}

// start prepares the statement caches and starts the writer goroutine.
func (s *Store) start() {
	s.r = &dbStmts{db: s.RDB, d: s.dialect}
	s.queue, s.quit, s.writerDone = make(chan *writeReq, maxGroup), make(chan struct{}), make(chan struct{})
	if s.dialect == dialectSQLite {
		s.startSyncer()
	}
	go s.writer()
}

// SetClock sets the clock that stamps write transactions (Tx.Now, and so every
// time the store writes); nil restores time.Now. Call it before the store is used:
// tests pass a clock they advance instead of sleeping.
func (s *Store) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	s.now = now
}

// Path is the database file; "" on PostgreSQL.
func (s *Store) Path() string { return s.path }

// Where names the database for messages and logs: the SQLite file, or PostgreSQL's
// host and database name (never a password).
func (s *Store) Where() string { return s.where }

// Postgres reports whether the store runs on PostgreSQL.
func (s *Store) Postgres() bool { return s.dialect == dialectPostgres }

// Close stops the writer (an Update after it returns ErrClosed) and closes both
// pools.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.writerDone
	})
	s.r.close()
	return errors.Join(s.RDB.Close(), s.DB.Close())
}

// migration is one embedded migration file.
type migration struct {
	version int
	name    string // NNNN_name.sql
}

// migrationDir is where d's migrations are embedded.
func migrationDir(d dialect) string { return d.pick("migrations", "migrations/postgres") }

// migrations lists d's migrations by version.
func migrationFiles(d dialect) ([]migration, error) {
	ents, err := fs.ReadDir(migrations, migrationDir(d))
	if err != nil {
		return nil, err
	}
	var all []migration
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration %q: want NNNN_name.sql", e.Name())
		}
		all = append(all, migration{v, e.Name()})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].version < all[j].version })
	return all, nil
}

// writeLockKey is the PostgreSQL advisory lock (pg_advisory_xact_lock) that every
// write transaction and every migration of the store takes first: the writes of all
// servers sharing the database run one after the other.
const writeLockKey = 0x7270692d6465706c // "rpi-depl"

// execer is a *sql.Tx (migrations) or the writer's connection inside a transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// lockForWrite takes the write lock inside tx on PostgreSQL (SQLite's BEGIN
// IMMEDIATE already holds its only writer lock).
func (s *Store) lockForWrite(ctx context.Context, tx execer) error {
	if s.dialect != dialectPostgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(writeLockKey)); err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	return nil
}

// migrate applies every embedded migration of the store's dialect newer than the
// recorded version, each in its own transaction together with its version row. On
// PostgreSQL each transaction takes the write lock first, so servers starting
// together on one database apply each migration once.
func (s *Store) migrate(ctx context.Context) error {
	all, err := migrationFiles(s.dialect)
	if err != nil {
		return err
	}
	create := s.dialect.pick(`CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS schema_migrations (
		version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`)
	if err := s.migrateTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, create)
		return err
	}); err != nil {
		return fmt.Errorf("create schema_migrations: %w", classify(err))
	}
	for _, m := range all {
		body, err := migrations.ReadFile(migrationDir(s.dialect) + "/" + m.name)
		if err != nil {
			return err
		}
		err = s.migrateTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, s.dialect.text(`SELECT count(*) FROM schema_migrations WHERE version = ?`),
				m.version).Scan(&n); err != nil || n > 0 {
				return err
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			if err := s.schemaEdited(ctx, tx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, s.dialect.text(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
				m.version, m.name, FormatTime(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %q: %w", m.name, classify(err))
		}
	}
	return nil
}

// schemaEdited finishes a SQLite migration that edits the schema's text in place
// (PRAGMA writable_schema, SQLite's documented way to change a CHECK constraint
// without rebuilding the table; the migration itself ends with writable_schema =
// RESET, which reloads the schema on its own connection): it raises the schema
// version by one, so that every other connection, of this process or another,
// reads the new text before its next statement. Any other migration is left alone.
func (s *Store) schemaEdited(ctx context.Context, tx *sql.Tx, body string) error {
	if s.dialect != dialectSQLite || !strings.Contains(body, "PRAGMA writable_schema") {
		return nil
	}
	var v int64
	if err := tx.QueryRowContext(ctx, `PRAGMA schema_version`).Scan(&v); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `PRAGMA schema_version = `+strconv.FormatInt(v+1, 10))
	return err
}

// migrateTx runs fn in a write transaction of its own, holding the write lock.
func (s *Store) migrateTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := s.lockForWrite(ctx, tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Version is the highest applied migration.
func (s *Store) Version(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.RDB.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), classify(err)
}

// querier runs the store's queries through prepared statements: dbStmts on the
// reader pool, wconn on the writer's connection (stmts.go).
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (rowsReader, error)
	QueryRowContext(ctx context.Context, query string, args ...any) row
}

// rowsReader is a query's rows: *sql.Rows, or those of the writer's own SQLite
// connection (liteconn.go).
type rowsReader interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// Tx is one write transaction.
type Tx struct {
	tx  querier
	d   dialect
	Now time.Time // the transaction's clock: every row it writes carries this time
	// later holds the history rows written at the group's commit (later.go).
	later *laterRows
	// g is what the functions of the Tx's group share (shared.go): every Tx runs
	// in a group (runOne, writer.go).
	g *groupReads
	// nowAt and nowStr are the latest Now formatted (nowText).
	nowAt  time.Time
	nowStr string
}

// nowText is FormatTime(t.Now), formatted once for the rows of the transaction (a
// new board's hello writes it in four of them) and again only when Now changed.
func (t *Tx) nowText() string {
	if t.nowStr == "" || t.nowAt != t.Now {
		t.nowAt, t.nowStr = t.Now, FormatTime(t.Now)
	}
	return t.nowStr
}

// noteWrite records the outcome of a write transaction for WriteError: a success
// clears it; a failure of the database itself (disk full, I/O error, read-only
// file) sets it. Errors of the caller's rules (not found, conflict, bad input) and a
// cancelled request say nothing about the database and are ignored. A failed WAL
// sync (walsync.go) is for good: a success noted after it, by the writer finishing
// a commit the failed sync was to cover, does not clear it.
func (s *Store) noteWrite(err error) {
	if err != nil && !isStorageError(err) {
		return
	}
	s.errMu.Lock()
	defer s.errMu.Unlock()
	// Checked under errMu: the syncer sets the WAL's error before it notes it here.
	if err == nil && s.wal != nil && s.wal.failed() != nil {
		return
	}
	s.writeErr = err
	if err != nil {
		s.writeAt = time.Now()
	}
}

// WriteError returns the error of the last write transaction and when it happened,
// or nil when the last write succeeded (or none failed since the start).
func (s *Store) WriteError() (error, time.Time) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.writeErr, s.writeAt
}

// Probe writes to the database (it rewrites one row of schema_migrations with its own
// values) to learn whether writes work again; its outcome updates WriteError.
func (s *Store) Probe(ctx context.Context) error {
	return s.Update(ctx, func(t *Tx) error {
		_, err := t.tx.ExecContext(ctx, `UPDATE schema_migrations SET applied_at = applied_at
			WHERE version = (SELECT max(version) FROM schema_migrations)`)
		return err
	})
}

// nullStr maps "" to NULL.
func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// scanner is a row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// collect runs a query and scans each row with scan.
func collect[T any](ctx context.Context, q querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, classify(err)
		}
		out = append(out, v)
	}
	return out, classify(rows.Err())
}

// one runs a query for a single row; no row gives ErrNotFound.
func one[T any](ctx context.Context, q querier, scan func(scanner) (T, error), query string, args ...any) (T, error) {
	v, err := scan(q.QueryRowContext(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return v, ErrNotFound
	}
	return v, classify(err)
}

// affectedOne turns an UPDATE of no row into ErrNotFound.
func affectedOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
