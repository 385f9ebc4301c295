package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	sqlite3 "modernc.org/sqlite/lib"
)

// The writer's SQLite connection is the store's own, opened on SQLite's C API as
// modernc.org/sqlite transpiles it (modernc.org/sqlite/lib), not through
// database/sql and the driver. Every hello runs four statements on it; through
// database/sql and the driver each one also converted and copied its arguments
// twice (database/sql's driver.NamedValue list, then a C string per text
// argument), took the connection's mutex (SQLITE_OPEN_FULLMUTEX) on every bind
// and column call, and every query read and allocated its columns' names and
// declared types again: in hellobench's profile that was about a third of the
// writer goroutine's CPU besides SQLite's own work (docs/operations.md §10, tenth
// round). Here a statement is prepared once (SQLITE_PREPARE_PERSISTENT), its
// text and blob arguments are copied into one scratch buffer that SQLite copies
// from (SQLITE_TRANSIENT), its columns are read by their storage class straight
// into the caller's variables, and the connection is opened SQLITE_OPEN_NOMUTEX:
// only the writer goroutine uses it. The readers (Store.RDB) and everything else
// keep database/sql.
//
// Scan converts as database/sql's Scan does for the types the store reads (string,
// integers, float64, bool, []byte, any, and sql.Scanner such as sql.NullString);
// any other destination is an error, not a silent zero.

// liteConn is an open SQLite connection used by one goroutine at a time.
type liteConn struct {
	tls   *libc.TLS
	db    uintptr // sqlite3*
	stmts map[string]*liteStmt
	// buf is C memory the text and blob arguments are copied into for their
	// bind: SQLITE_TRANSIENT makes SQLite copy them again, so buf is free once
	// the bind returns.
	buf    uintptr
	bufLen int
	// inTx is whether the connection was in a transaction after its last
	// statement; txEnded counts the transactions that ended since it opened
	// (COMMIT, ROLLBACK, or SQLite rolling back by itself after an error).
	inTx    bool
	txEnded int
}

// liteError is an error SQLite returned: its (extended) result code and message.
// sqliteCode reads it as it reads the driver's *sqlite.Error.
type liteError struct {
	code int
	msg  string
}

func (e *liteError) Error() string { return e.msg }

// Code is the SQLite result code, extended where SQLite gives one.
func (e *liteError) Code() int { return e.code }

// openLite opens the SQLite database file path (which must exist) and runs
// pragmas on it, one statement each.
func openLite(path string, pragmas ...string) (*liteConn, error) {
	c := &liteConn{tls: libc.NewTLS(), stmts: make(map[string]*liteStmt)}
	name, err := libc.CString(path)
	if err != nil {
		c.tls.Close()
		return nil, err
	}
	defer libc.Xfree(c.tls, name)
	pdb := libc.Xmalloc(c.tls, types.Size_t(unsafe.Sizeof(uintptr(0))))
	if pdb == 0 {
		c.tls.Close()
		return nil, errors.New("sqlite: out of memory")
	}
	*(*uintptr)(cmem(pdb)) = 0
	rc := sqlite3.Xsqlite3_open_v2(c.tls, name, pdb, sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_NOMUTEX, 0)
	c.db = *(*uintptr)(cmem(pdb))
	libc.Xfree(c.tls, pdb)
	if rc != sqlite3.SQLITE_OK {
		err := c.errorOf(rc)
		c.close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	sqlite3.Xsqlite3_extended_result_codes(c.tls, c.db, 1)
	// Nothing else is configured: as the driver opens the store's other
	// connections (no _dqs or _defensive in their DSN), SQLite's defaults stay.
	for _, p := range pragmas {
		if _, err := c.exec(p); err != nil {
			c.close()
			return nil, fmt.Errorf("open %s: %s: %w", path, p, err)
		}
	}
	return c, nil
}

// The writer's connection (writerConn, stmts.go): the querier's methods, which
// ignore their context as wconn's statements do, and its bookkeeping.

func (c *liteConn) ExecContext(_ context.Context, q string, args ...any) (sql.Result, error) {
	res, err := c.exec(q, args...)
	return res, classify(err)
}

func (c *liteConn) QueryContext(_ context.Context, q string, args ...any) (rowsReader, error) {
	rows, err := c.query(q, args...)
	if err != nil {
		return nil, classify(err)
	}
	return rows, nil
}

func (c *liteConn) QueryRowContext(_ context.Context, q string, args ...any) row {
	return c.queryRow(q, args...)
}

func (c *liteConn) ended() int    { return c.txEnded }
func (c *liteConn) prepared() int { return len(c.stmts) }
func (c *liteConn) discard()      { c.close() }

// close finalizes c's statements and closes it; an open transaction is rolled
// back.
func (c *liteConn) close() {
	for _, st := range c.stmts {
		sqlite3.Xsqlite3_finalize(c.tls, st.p)
	}
	c.stmts = nil
	if c.db != 0 {
		sqlite3.Xsqlite3_close_v2(c.tls, c.db)
		c.db = 0
	}
	if c.buf != 0 {
		libc.Xfree(c.tls, c.buf)
		c.buf = 0
	}
	c.tls.Close()
}

// errorOf is the error of result code rc, with SQLite's message for it.
func (c *liteConn) errorOf(rc int32) error {
	msg := libc.GoString(sqlite3.Xsqlite3_errstr(c.tls, rc))
	if c.db != 0 {
		if m := libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db)); m != msg && m != "" {
			msg += ": " + m
		}
	}
	return &liteError{code: int(rc), msg: fmt.Sprintf("%s (%d)", msg, rc)}
}

// liteStmt is a statement prepared on a liteConn.
type liteStmt struct {
	c *liteConn
	p uintptr // sqlite3_stmt*
	// open: rows of it are being read (liteRows); a query of the same text
	// meanwhile gets a statement of its own.
	open bool
	// own: prepared for one use, finalized when that use ends.
	own bool
}

// stmt is the statement of q, prepared on first use.
func (c *liteConn) stmt(q string) (*liteStmt, error) {
	kept, ok := c.stmts[q]
	if ok && !kept.open {
		return kept, nil
	}
	st, err := c.prepare(q)
	if err != nil {
		return nil, err
	}
	st.own = ok // the kept one is busy
	if !ok {
		c.stmts[q] = st
	}
	return st, nil
}

// prepare compiles q, which must be one statement.
func (c *liteConn) prepare(q string) (*liteStmt, error) {
	z, err := libc.CString(q)
	if err != nil {
		return nil, err
	}
	defer libc.Xfree(c.tls, z)
	out := libc.Xmalloc(c.tls, 2*types.Size_t(unsafe.Sizeof(uintptr(0))))
	if out == 0 {
		return nil, errors.New("sqlite: out of memory")
	}
	defer libc.Xfree(c.tls, out)
	pp, ptail := out, out+unsafe.Sizeof(uintptr(0))
	*(*uintptr)(cmem(pp)) = 0
	*(*uintptr)(cmem(ptail)) = 0
	if rc := sqlite3.Xsqlite3_prepare_v3(c.tls, c.db, z, int32(len(q)), sqlite3.SQLITE_PREPARE_PERSISTENT, pp, ptail); rc != sqlite3.SQLITE_OK {
		return nil, c.errorOf(rc)
	}
	p := *(*uintptr)(cmem(pp))
	if p == 0 {
		return nil, fmt.Errorf("sqlite: no statement in %q", q)
	}
	if tail := *(*uintptr)(cmem(ptail)); tail != 0 {
		for rest := q[tail-z:]; rest != ""; rest = rest[1:] {
			if b := rest[0]; b != ' ' && b != '\t' && b != '\n' && b != '\r' && b != ';' {
				sqlite3.Xsqlite3_finalize(c.tls, p)
				return nil, fmt.Errorf("sqlite: more than one statement in %q", q)
			}
		}
	}
	return &liteStmt{c: c, p: p}, nil
}

// release ends a use of st: it is reset (its locks and rows released), and
// finalized when it was prepared for that use alone.
func (st *liteStmt) release() {
	st.open = false
	if st.own {
		sqlite3.Xsqlite3_finalize(st.c.tls, st.p)
		st.p = 0
		return
	}
	sqlite3.Xsqlite3_reset(st.c.tls, st.p)
}

// step runs st one step: SQLITE_ROW, SQLITE_DONE or the error. It keeps count of
// the transactions that end.
func (st *liteStmt) step() (int32, error) {
	c := st.c
	rc := sqlite3.Xsqlite3_step(c.tls, st.p)
	inTx := sqlite3.Xsqlite3_get_autocommit(c.tls, c.db) == 0
	if c.inTx && !inTx {
		c.txEnded++
	}
	c.inTx = inTx
	if rc == sqlite3.SQLITE_ROW || rc == sqlite3.SQLITE_DONE {
		return rc, nil
	}
	return rc, c.errorOf(rc)
}

// bind binds args to st's parameters, in order.
func (st *liteStmt) bind(args []any) error {
	c := st.c
	if n := int(sqlite3.Xsqlite3_bind_parameter_count(c.tls, st.p)); n != len(args) {
		return fmt.Errorf("sqlite: %d arguments for %d parameters", len(args), n)
	}
	for i, a := range args {
		if err := st.bindOne(int32(i+1), a); err != nil {
			return fmt.Errorf("argument %d: %w", i+1, err)
		}
	}
	return nil
}

// transient is SQLITE_TRANSIENT: SQLite copies the value before the bind returns.
const transient = ^uintptr(0)

func (st *liteStmt) bindOne(i int32, a any) error {
	c := st.c
	var rc int32
	switch v := a.(type) {
	case nil:
		rc = sqlite3.Xsqlite3_bind_null(c.tls, st.p, i)
	case string:
		p, err := scratchCopy(c, v)
		if err != nil {
			return err
		}
		rc = sqlite3.Xsqlite3_bind_text(c.tls, st.p, i, p, int32(len(v)), transient)
	case []byte:
		if v == nil {
			rc = sqlite3.Xsqlite3_bind_null(c.tls, st.p, i)
			break
		}
		p, err := scratchCopy(c, v)
		if err != nil {
			return err
		}
		rc = sqlite3.Xsqlite3_bind_blob(c.tls, st.p, i, p, int32(len(v)), transient)
	case int64:
		rc = sqlite3.Xsqlite3_bind_int64(c.tls, st.p, i, v)
	case int:
		rc = sqlite3.Xsqlite3_bind_int64(c.tls, st.p, i, int64(v))
	case int32:
		rc = sqlite3.Xsqlite3_bind_int64(c.tls, st.p, i, int64(v))
	case uint32:
		rc = sqlite3.Xsqlite3_bind_int64(c.tls, st.p, i, int64(v))
	case bool:
		b := int64(0)
		if v {
			b = 1
		}
		rc = sqlite3.Xsqlite3_bind_int64(c.tls, st.p, i, b)
	case float64:
		rc = sqlite3.Xsqlite3_bind_double(c.tls, st.p, i, v)
	case driver.Valuer:
		dv, err := v.Value()
		if err != nil {
			return err
		}
		if _, again := dv.(driver.Valuer); again {
			return fmt.Errorf("sqlite: Value of %T gave a Valuer", a)
		}
		return st.bindOne(i, dv)
	default:
		return fmt.Errorf("sqlite: unsupported argument type %T", a)
	}
	if rc != sqlite3.SQLITE_OK {
		return c.errorOf(rc)
	}
	return nil
}

// scratchCopy copies v into c's scratch buffer and returns its address there.
func scratchCopy[T string | []byte](c *liteConn, v T) (uintptr, error) {
	p, err := c.scratch(len(v))
	if err == nil {
		copy(unsafe.Slice((*byte)(cmem(p)), len(v)), v)
	}
	return p, err
}

// scratch is c.buf grown to at least n bytes (one byte at least: a zero-length
// text is bound from a non-NULL pointer, so it stays an empty text, not NULL).
func (c *liteConn) scratch(n int) (uintptr, error) {
	if n > math.MaxInt32 {
		return 0, errors.New("sqlite: argument too long")
	}
	if n == 0 {
		n = 1
	}
	if n > c.bufLen {
		size := max(n, 2*c.bufLen, 512)
		p := libc.Xmalloc(c.tls, types.Size_t(size))
		if p == 0 {
			return 0, errors.New("sqlite: out of memory")
		}
		if c.buf != 0 {
			libc.Xfree(c.tls, c.buf)
		}
		c.buf, c.bufLen = p, size
	}
	return c.buf, nil
}

// liteResult is an Exec's sql.Result.
type liteResult struct{ id, n int64 }

func (r liteResult) LastInsertId() (int64, error) { return r.id, nil }
func (r liteResult) RowsAffected() (int64, error) { return r.n, nil }

// exec runs q with args to its end (rows it returns are passed over).
func (c *liteConn) exec(q string, args ...any) (sql.Result, error) {
	st, err := c.stmt(q)
	if err != nil {
		return nil, err
	}
	defer st.release()
	if err := st.bind(args); err != nil {
		return nil, err
	}
	for {
		rc, err := st.step()
		if err != nil {
			return nil, err
		}
		if rc == sqlite3.SQLITE_DONE {
			break
		}
	}
	return liteResult{id: sqlite3.Xsqlite3_last_insert_rowid(c.tls, c.db), n: sqlite3.Xsqlite3_changes64(c.tls, c.db)}, nil
}

// query runs q with args; the caller reads its rows and closes them.
func (c *liteConn) query(q string, args ...any) (*liteRows, error) {
	st, err := c.stmt(q)
	if err != nil {
		return nil, err
	}
	if err := st.bind(args); err != nil {
		st.release()
		return nil, err
	}
	st.open = true
	return &liteRows{st: st}, nil
}

// queryRow runs q with args and steps to its first row, which Scan reads.
func (c *liteConn) queryRow(q string, args ...any) liteRow {
	st, err := c.stmt(q)
	if err != nil {
		return liteRow{err: err}
	}
	if err := st.bind(args); err != nil {
		st.release()
		return liteRow{err: err}
	}
	rc, err := st.step()
	if err != nil {
		st.release()
		return liteRow{err: err}
	}
	if rc == sqlite3.SQLITE_DONE {
		st.release()
		return liteRow{err: sql.ErrNoRows}
	}
	st.open = true
	return liteRow{st: st}
}

// liteRow is queryRow's row: Scan reads it and releases its statement.
type liteRow struct {
	st  *liteStmt
	err error
}

func (r liteRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.st.release()
	return r.st.scan(dest)
}

// liteRows are a query's rows, as *sql.Rows gives them.
type liteRows struct {
	st     *liteStmt
	err    error
	row    bool // the statement is on a row
	closed bool
}

func (r *liteRows) Next() bool {
	if r.closed {
		return false
	}
	rc, err := r.st.step()
	if err != nil || rc != sqlite3.SQLITE_ROW {
		r.err = err
		r.Close()
		return false
	}
	r.row = true
	return true
}

func (r *liteRows) Scan(dest ...any) error {
	if r.closed || !r.row {
		return errors.New("sql: Scan called without calling Next")
	}
	return r.st.scan(dest)
}

func (r *liteRows) Err() error { return r.err }

func (r *liteRows) Close() error {
	if !r.closed {
		r.closed, r.row = true, false
		r.st.release()
	}
	return nil
}

// scan reads the statement's current row into dest, one destination per column.
func (st *liteStmt) scan(dest []any) error {
	c := st.c
	if n := int(sqlite3.Xsqlite3_column_count(c.tls, st.p)); n != len(dest) {
		return fmt.Errorf("sql: expected %d destination arguments in Scan, not %d", n, len(dest))
	}
	for i, d := range dest {
		if err := st.scanOne(int32(i), d); err != nil {
			return fmt.Errorf("sql: Scan error on column index %d: %w", i, err)
		}
	}
	return nil
}

// scanOne converts column i into d. The common cases (an integer into an
// integer, a text into a string, a real into a float64) are read directly;
// every other goes through database/sql's own conversion (sql.Null's Scan) from
// the value the driver would have given: int64, float64, string, []byte (nil
// when empty) or nil.
func (st *liteStmt) scanOne(i int32, d any) error {
	c := st.c
	switch sqlite3.Xsqlite3_column_type(c.tls, st.p, i) {
	case sqlite3.SQLITE_INTEGER:
		v := sqlite3.Xsqlite3_column_int64(c.tls, st.p, i)
		switch p := d.(type) {
		case *int64:
			*p = v
			return nil
		case *int:
			*p = int(v)
			return nil
		}
		return convertAssign(v, d)
	case sqlite3.SQLITE_FLOAT:
		v := sqlite3.Xsqlite3_column_double(c.tls, st.p, i)
		if p, ok := d.(*float64); ok {
			*p = v
			return nil
		}
		return convertAssign(v, d)
	case sqlite3.SQLITE_TEXT:
		// The bytes are SQLite's until the next step or reset: copied here.
		var s string
		p := sqlite3.Xsqlite3_column_text(c.tls, st.p, i)
		if n := sqlite3.Xsqlite3_column_bytes(c.tls, st.p, i); p != 0 && n > 0 {
			s = string(unsafe.Slice((*byte)(cmem(p)), n))
		}
		if p, ok := d.(*string); ok {
			*p = s
			return nil
		}
		return convertAssign(s, d)
	case sqlite3.SQLITE_BLOB:
		var b []byte
		p := sqlite3.Xsqlite3_column_blob(c.tls, st.p, i)
		if n := sqlite3.Xsqlite3_column_bytes(c.tls, st.p, i); p != 0 && n > 0 {
			b = append([]byte(nil), unsafe.Slice((*byte)(cmem(p)), n)...)
		}
		return convertAssign(b, d)
	}
	return convertAssign(nil, d)
}

// convertAssign stores src, a driver value, into d as database/sql's Scan does.
func convertAssign(src, d any) error {
	if src == nil { // NULL: nil for these, an error for the other types (assign)
		switch p := d.(type) {
		case *[]byte:
			*p = nil
			return nil
		case *any:
			*p = nil
			return nil
		}
	}
	switch p := d.(type) {
	case sql.Scanner:
		return p.Scan(src)
	case *string:
		return assign(p, src)
	case *int64:
		return assign(p, src)
	case *int:
		return assign(p, src)
	case *int32:
		return assign(p, src)
	case *bool:
		return assign(p, src)
	case *float64:
		return assign(p, src)
	case *[]byte:
		return assign(p, src)
	case *any:
		return assign(p, src)
	}
	return fmt.Errorf("unsupported Scan, storing driver.Value type %T into type %T", src, d)
}

// assign is convertAssign for *T through sql.Null[T], whose Scan is database/sql's
// conversion; NULL is an error here, as Scan gives it for these types.
func assign[T any](p *T, src any) error {
	if src == nil {
		return fmt.Errorf("converting NULL to %T is unsupported", *p)
	}
	var n sql.Null[T]
	if err := n.Scan(src); err != nil {
		return err
	}
	*p = n.V
	return nil
}

// cmem is the address p of SQLite's (C) memory, which modernc.org/libc allocates
// outside Go's heap, as a pointer.
func cmem(p uintptr) unsafe.Pointer { return unsafe.Add(nil, p) }
