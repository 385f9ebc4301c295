package store

import (
	"context"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// dialects runs f once on SQLite and once on PostgreSQL (a fresh database of the
// test binary's pgtest cluster), as subtests named for the dialect.
func dialects(t *testing.T, f func(t *testing.T, cfg Config)) {
	t.Helper()
	for _, d := range []dialect{dialectSQLite, dialectPostgres} {
		t.Run(d.String(), func(t *testing.T) {
			cfg := Config{Dir: t.TempDir()}
			if d == dialectPostgres {
				cfg.URL = pgtest.DB(t)
			}
			f(t, cfg)
		})
	}
}

// openCfg opens the store cfg names, closed with the test.
func openCfg(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := OpenDB(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestDollarParams pins the placeholder rewriting for PostgreSQL: ? outside
// literals, quoted identifiers and comments becomes $1, $2, …; inside them it stays.
func TestDollarParams(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`a = ? AND b = ?`, `a = $1 AND b = $2`},
		{`x = '?' AND y = ?`, `x = '?' AND y = $1`},
		{`x = 'it''s ?' AND y = ?`, `x = 'it''s ?' AND y = $1`},
		{`"odd?col" = ?`, `"odd?col" = $1`},
		{"-- why?\nx = ?", "-- why?\nx = $1"},
		{`x = 'open`, `x = 'open`},
	} {
		if got := dollarParams(tc.in); got != tc.want {
			t.Errorf("dollarParams(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
