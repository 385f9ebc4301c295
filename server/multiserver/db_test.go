package multiserver

import (
	"database/sql"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// openDB opens the servers' database for the test's own reads: a postgres:// URL
// with pgx, else a SQLite file path.
func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	driver := "sqlite"
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		driver = "pgx"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// checkStored checks, in the database itself, that the pool names bound are
// exactly the names acknowledged (byName: name → serial), that every board
// acknowledged a name holds its open deployment under that name and ID, that no
// other deployment is open, and that no hostname was ever given to two boards.
func checkStored(t *testing.T, db *sql.DB, bs []board, out []outcome, byName map[string]string) {
	t.Helper()
	bound := map[string]string{}
	rows, err := db.Query(`SELECT name, serial FROM pool_names WHERE serial IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, serial string
		if err := rows.Scan(&name, &serial); err != nil {
			t.Fatal(err)
		}
		bound[name] = serial
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	for name, serial := range byName {
		if bound[name] != serial {
			t.Errorf("pool name %s: bound to %q in the database, acknowledged to %s", name, bound[name], serial)
		}
	}
	for name, serial := range bound {
		if byName[name] != serial {
			t.Errorf("pool name %s bound to %s in the database but never acknowledged to it", name, serial)
		}
	}

	type dep struct {
		hostname string
		id       int64
	}
	open := map[string]dep{}
	rows, err = db.Query(`SELECT serial, hostname, id FROM deployments WHERE state = 'open'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var serial string
		var d dep
		if err := rows.Scan(&serial, &d.hostname, &d.id); err != nil {
			t.Fatal(err)
		}
		if prev, ok := open[serial]; ok {
			t.Errorf("board %s has two open deployments: %d and %d", serial, prev.id, d.id)
		}
		open[serial] = d
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	acked := 0
	for i, o := range out {
		if o.hostname == "" {
			continue
		}
		acked++
		if got := open[bs[i].serial]; got.hostname != o.hostname || got.id != o.id {
			t.Errorf("board %s: open deployment %d %q in the database, acknowledged %d %q", bs[i].serial, got.id, got.hostname, o.id, o.hostname)
		}
	}
	if len(open) != acked {
		t.Errorf("%d deployments open in the database, %d acknowledged", len(open), acked)
	}

	rows, err = db.Query(`SELECT hostname FROM deployments GROUP BY hostname HAVING COUNT(DISTINCT serial) > 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		t.Errorf("hostname %s was given to more than one board", name)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
}
