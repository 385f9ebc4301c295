package store

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMigrationSetsEqual pins that SQLite and PostgreSQL have the same migrations:
// the same numbers and names in migrations/ and migrations/postgres/.
func TestMigrationSetsEqual(t *testing.T) {
	sq, err := migrationFiles(dialectSQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := migrationFiles(dialectPostgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(sq) < 9 {
		t.Fatalf("only %d SQLite migrations found", len(sq))
	}
	if diff := cmp.Diff(sq, pg, cmp.AllowUnexported(migration{})); diff != "" {
		t.Errorf("migrations differ (-sqlite +postgres):\n%s", diff)
	}
}

// TestSchemasEqual migrates an empty SQLite and an empty PostgreSQL database and
// pins that they have the same tables, the same columns with mapped types
// (SQLite INTEGER = PostgreSQL bigint, REAL = double precision, TEXT = text) and
// the same named indexes. The one known difference: PostgreSQL's deployment_phases
// has a rowid column, the order of insertion that SQLite keeps in its implicit
// rowid.
func TestSchemasEqual(t *testing.T) {
	ctx := context.Background()
	schemas := map[string]map[string]string{} // dialect → "table.column" → type
	indexes := map[string][]string{}
	dialects(t, func(t *testing.T, cfg Config) {
		s := openCfg(t, cfg)
		cols := map[string]string{}
		var q, iq string
		if s.Postgres() {
			q = `SELECT table_name, column_name, data_type FROM information_schema.columns
				WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`
			iq = `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()
				AND indexname NOT LIKE '%\_pkey' AND indexname NOT LIKE '%\_key' ORDER BY indexname`
		} else {
			q = `SELECT m.name, c.name, c.type FROM sqlite_master m, pragma_table_info(m.name) c
				WHERE m.type = 'table' ORDER BY m.name, c.cid`
			iq = `SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name`
		}
		rows, err := s.RDB.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var table, col, typ string
			if err := rows.Scan(&table, &col, &typ); err != nil {
				t.Fatal(err)
			}
			typ = strings.ToLower(typ)
			switch typ {
			case "integer":
				typ = "bigint"
			case "real":
				typ = "double precision"
			}
			cols[table+"."+col] = typ
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if s.Postgres() {
			if cols["deployment_phases.rowid"] != "bigint" {
				t.Errorf("postgres deployment_phases.rowid: %q, want bigint", cols["deployment_phases.rowid"])
			}
			delete(cols, "deployment_phases.rowid")
		}
		names, err := collect(ctx, s.r, func(r scanner) (string, error) {
			var n string
			return n, r.Scan(&n)
		}, iq)
		if err != nil {
			t.Fatal(err)
		}
		d := "sqlite"
		if s.Postgres() {
			d = "postgres"
		}
		schemas[d], indexes[d] = cols, names
	})
	if len(schemas["sqlite"]) < 50 {
		t.Fatalf("SQLite schema has only %d columns", len(schemas["sqlite"]))
	}
	if diff := cmp.Diff(schemas["sqlite"], schemas["postgres"]); diff != "" {
		t.Errorf("columns differ (-sqlite +postgres):\n%s", diff)
	}
	if diff := cmp.Diff(indexes["sqlite"], indexes["postgres"]); diff != "" {
		t.Errorf("indexes differ (-sqlite +postgres):\n%s", diff)
	}
}
