package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestDeploymentStateCheck: migration 0041 rewrote the deployments' state CHECK
// (an IN list, for which SQLite built a temporary b-tree on every INSERT and every
// state change) as a chain of equalities. The constraint holds as before on both
// dialects: the four states are taken, any other value is refused, by INSERT and
// by UPDATE.
func TestDeploymentStateCheck(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		var id int64
		err := s.Update(ctx, func(t *Tx) error {
			if err := t.SeeBoard(ctx, Board{Serial: "10000000deadbeef"}); err != nil {
				return err
			}
			var err error
			id, err = t.AddDeployment(ctx, Deployment{Serial: "10000000deadbeef", Venue: "CORO", Product: "RXP2",
				Hostname: "RXP2-CORO-DEADBEEF", Image: "img", Phase: "hello"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, state := range []string{DeployVerified, DeployFailed, DeployAbandoned, DeployOpen, "bogus", "OPEN", ""} {
			err := s.Update(ctx, func(t *Tx) error {
				_, err := t.tx.ExecContext(ctx, `UPDATE deployments SET state = ? WHERE id = ?`, state, id)
				return err
			})
			if refused := err != nil; refused != (state == "bogus" || state == "OPEN" || state == "") {
				t.Errorf("state %q: %v", state, err)
			}
		}
		err = s.Update(ctx, func(t *Tx) error {
			_, err := t.tx.ExecContext(ctx, `INSERT INTO deployments (serial, venue, product, hostname, image, state, phase,
				started_at, updated_at) VALUES ('10000000deadbeef', 'CORO', 'RXP2', 'x', 'img', 'closed', 'hello', 'x', 'x')`)
			return err
		})
		if err == nil {
			t.Error("a deployment inserted in state closed")
		}
	})
}

// TestDeploymentInsertBuildsNoTempTable: on SQLite a new deployment's INSERT runs
// without a temporary b-tree (OpenEphemeral), which the state CHECK's IN list cost
// it before migration 0041, on every connection that reads the database after the
// migration: the writer's (the migration's own connection; it reloads the schema),
// a reader, and a connection of another process that had read the old schema
// before (the migration raises the schema version). The database has every
// migration but 0041 first, as an older server left it.
func TestDeploymentInsertBuildsNoTempTable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dsn := "file:" + filepath.Join(dir, FileName) + "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)"
	other, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetMaxOpenConns(1)
	if _, err := other.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	all, err := migrationFiles(dialectSQLite)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if m.version == 41 {
			continue
		}
		body, err := migrations.ReadFile(migrationDir(dialectSQLite) + "/" + m.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if _, err := other.Exec(`INSERT INTO schema_migrations VALUES (?, ?, 'x')`, m.version, m.name); err != nil {
			t.Fatal(err)
		}
	}
	if n := tempTables(t, sqlDB{other}); n == 0 {
		t.Fatalf("before migration 0041 the INSERT builds no temporary table: the test does not test it")
	}
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Update(ctx, func(tx *Tx) error {
		if n := tempTables(t, tx.tx); n != 0 {
			t.Errorf("writer's connection: the INSERT builds %d temporary tables", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := tempTables(t, s.r); n != 0 {
		t.Errorf("reader: the INSERT builds %d temporary tables", n)
	}
	// EXPLAIN compiles from the schema a connection holds; a statement that runs
	// reads the schema version first, and the schema again if it changed.
	var n int
	if err := other.QueryRow(`SELECT count(*) FROM deployments`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n := tempTables(t, sqlDB{other}); n != 0 {
		t.Errorf("another process's connection: the INSERT builds %d temporary tables", n)
	}
}

// tempTables counts the OpenEphemeral instructions of AddClaimedDeployment's INSERT
// as q's connection compiles it.
func tempTables(t *testing.T, q interface {
	QueryContext(context.Context, string, ...any) (rowsReader, error)
}) int {
	t.Helper()
	rows, err := q.QueryContext(context.Background(), `EXPLAIN `+addDeploymentSQL, make([]any, 13)...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var addr, p1, p2, p3, p5 int64
		var op string
		var p4, comment any
		if err := rows.Scan(&addr, &op, &p1, &p2, &p3, &p4, &p5, &comment); err != nil {
			t.Fatal(err)
		}
		if op == "OpenEphemeral" {
			n++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// sqlDB is a *sql.DB as tempTables queries it.
type sqlDB struct{ db *sql.DB }

func (d sqlDB) QueryContext(ctx context.Context, q string, args ...any) (rowsReader, error) {
	return d.db.QueryContext(ctx, q, args...)
}
