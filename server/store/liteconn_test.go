package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	sqlite3 "modernc.org/sqlite/lib"
)

// liteAndSQL opens one SQLite file twice: with the store's own connection
// (liteconn.go) and through database/sql and modernc.org/sqlite, the driver every
// other connection of the store uses.
func liteAndSQL(t *testing.T) (*liteConn, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lite.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)`); err != nil {
		t.Fatal(err)
	}
	c, err := openLite(path, `PRAGMA busy_timeout = 10000`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c, db
}

// TestLiteScansAsDatabaseSQL: every value SQLite can hold (integers, reals,
// texts that read as numbers or booleans or neither, NULL, blobs), scanned into
// every destination type the store reads, comes out of the writer's connection
// exactly as database/sql's Scan gives it from the driver: the same value, or an
// error where database/sql gives one.
func TestLiteScansAsDatabaseSQL(t *testing.T) {
	c, db := liteAndSQL(t)
	exprs := []string{"1", "0", "-7", "9223372036854775807", "1.5", "2.0", "-0.25", "'abc'", "''", "'12'", "'-3'",
		"'1.25'", "'true'", "'0'", "'ü€'", "NULL", "x'00ff'", "x''", "x'3132'"}
	dests := []func() any{
		func() any { return new(string) }, func() any { return new(int64) }, func() any { return new(int) },
		func() any { return new(int32) }, func() any { return new(bool) }, func() any { return new(float64) },
		func() any { return new([]byte) }, func() any { return new(any) }, func() any { return new(sql.NullString) },
		func() any { return new(sql.NullInt64) }, func() any { return new(sql.NullFloat64) }, func() any { return new(sql.NullBool) },
	}
	compared := 0
	for _, e := range exprs {
		q := "SELECT " + e
		for _, mk := range dests {
			want, got := mk(), mk()
			werr := db.QueryRow(q).Scan(want)
			gerr := c.queryRow(q).Scan(got)
			name := fmt.Sprintf("%s into %T", q, want)
			if (werr == nil) != (gerr == nil) {
				t.Errorf("%s: error %v, database/sql's %v", name, gerr, werr)
				continue
			}
			if werr == nil && !reflect.DeepEqual(want, got) {
				t.Errorf("%s: %#v, database/sql's %#v", name, reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem())
			}
			compared++
		}
	}
	if compared != len(exprs)*len(dests) {
		t.Errorf("compared %d of %d", compared, len(exprs)*len(dests))
	}
}

// TestLiteBindsAsDatabaseSQL: every argument type the store passes is stored by
// the writer's connection as database/sql and the driver store it: the same
// storage class and the same value (SQLite's quote() of it).
func TestLiteBindsAsDatabaseSQL(t *testing.T) {
	c, db := liteAndSQL(t)
	args := []any{nil, "", "abc", "ü€\x00x", int64(-1), 7, int32(-3), uint32(4000000000), true, false, 1.5, -0.0,
		[]byte{0, 1, 0xff}, []byte{}, []byte(nil), sql.NullString{}, sql.NullString{String: "x", Valid: true},
		sql.NullInt64{Int64: 9, Valid: true}}
	const q = `SELECT typeof(?1), quote(?1)`
	for _, a := range args {
		var wt, wq, gt, gq string
		if err := db.QueryRow(q, a).Scan(&wt, &wq); err != nil {
			t.Fatalf("%#v through database/sql: %v", a, err)
		}
		if err := c.queryRow(q, a).Scan(&gt, &gq); err != nil {
			t.Fatalf("%#v: %v", a, err)
		}
		if gt != wt || gq != wq {
			t.Errorf("%#v is stored as %s %s, by database/sql as %s %s", a, gt, gq, wt, wq)
		}
	}
	if _, err := c.exec(`SELECT ?`, struct{}{}); err == nil {
		t.Error("an argument of a type SQLite cannot hold was bound")
	}
	if _, err := c.exec(`SELECT ?, ?`, 1); err == nil {
		t.Error("one argument for two parameters: no error")
	}
}

// TestLiteStatements: results of INSERT and UPDATE, rows read in a loop that runs
// the same query again inside it (each gets a statement of its own; the kept one
// still serves after), one statement per call, and SQLite's result codes in the
// errors (the store tells a duplicate from a storage failure by them).
func TestLiteStatements(t *testing.T) {
	c, _ := liteAndSQL(t)
	for i, v := range []string{"a", "b", "c"} {
		res, err := c.exec(`INSERT INTO t (v) VALUES (?)`, v)
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := res.LastInsertId(); id != int64(i+1) {
			t.Errorf("insert %q: id %d, want %d", v, id, i+1)
		}
	}
	res, err := c.exec(`UPDATE t SET v = v || '!' WHERE id >= ?`, 2)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 2 {
		t.Errorf("update: %d rows, want 2", n)
	}
	const all = `SELECT id, v FROM t ORDER BY id`
	var outer []string
	rows, err := c.query(all)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		inner, err := collect(context.Background(), c, func(r scanner) (string, error) {
			var id int64
			var v string
			err := r.Scan(&id, &v)
			return v, err
		}, all)
		if err != nil || len(inner) != 3 {
			t.Fatalf("the same query inside the loop: %v %v", inner, err)
		}
		outer = append(outer, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b!", "c!"}; !reflect.DeepEqual(outer, want) {
		t.Errorf("rows %q, want %q", outer, want)
	}
	if rows.Next() || rows.Scan(new(int64), new(string)) == nil {
		t.Error("closed rows gave another row")
	}
	var n int
	if err := c.queryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 3 {
		t.Errorf("count after the loops: %d %v", n, err)
	}
	if err := c.queryRow(`SELECT v FROM t WHERE id = 99`).Scan(new(string)); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("no row: %v, want sql.ErrNoRows", err)
	}
	if _, err := c.exec(`SELECT 1; SELECT 2`); err == nil {
		t.Error("two statements in one call ran")
	}
	if _, err := c.exec(`SELECT 1;`); err != nil {
		t.Errorf("one statement with its semicolon: %v", err)
	}
	_, err = c.exec(`INSERT INTO t (v) VALUES ('a')`)
	if !sqliteUnique(err) || sqliteCode(err) != sqlite3.SQLITE_CONSTRAINT_UNIQUE {
		t.Errorf("duplicate: %v (code %d), want SQLITE_CONSTRAINT_UNIQUE", err, sqliteCode(err))
	}
	if _, err := c.exec(`INSERT INTO nowhere VALUES (1)`); err == nil || sqliteCode(err) != sqlite3.SQLITE_ERROR {
		t.Errorf("unknown table: %v (code %d)", err, sqliteCode(err))
	}
}

// TestLiteCountsEndedTransactions: the writer learns that its group's
// transaction is gone from ended, which counts every transaction that ends (COMMIT,
// ROLLBACK, or SQLite rolling back by itself), not the statements inside one, nor
// a statement outside any.
func TestLiteCountsEndedTransactions(t *testing.T) {
	c, _ := liteAndSQL(t)
	step := func(q string, want int) {
		t.Helper()
		if _, err := c.exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if c.txEnded != want {
			t.Errorf("after %s: ended %d, want %d", q, c.txEnded, want)
		}
	}
	step(`INSERT INTO t (v) VALUES ('outside')`, 0)
	step(`BEGIN IMMEDIATE`, 0)
	step(`INSERT INTO t (v) VALUES ('in')`, 0)
	step(`SAVEPOINT s`, 0)
	step(`ROLLBACK TO s`, 0)
	step(`RELEASE s`, 0)
	step(`COMMIT`, 1)
	step(`BEGIN IMMEDIATE`, 1)
	step(`ROLLBACK`, 2)
	// A statement that fails inside a transaction leaves it open (SQLite undoes the
	// statement alone): nothing ended.
	step(`BEGIN IMMEDIATE`, 2)
	if _, err := c.exec(`INSERT INTO t (v) VALUES ('in')`); err == nil {
		t.Fatal("duplicate inserted")
	}
	if c.txEnded != 2 || !c.inTx {
		t.Errorf("a failed statement: ended %d, in a transaction %v; want 2, true", c.txEnded, c.inTx)
	}
	step(`ROLLBACK`, 3)
}
