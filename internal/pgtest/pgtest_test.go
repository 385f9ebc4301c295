package pgtest

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// A committed row survives a clean restart and a SIGKILL of every server process;
// the server listens on its socket only.
func TestRestartKeepsCommitted(t *testing.T) {
	ctx := context.Background()
	s := Start(t)
	if _, err := s.Psql(ctx, "postgres", "CREATE TABLE t (v int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Psql(ctx, "postgres", "SHOW listen_addresses"); err != nil || got != "" {
		t.Errorf("listen_addresses = %q (%v), want '' (socket only)", got, err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Psql(ctx, "postgres", "SELECT 1"); err == nil {
		t.Error("psql answered while the server was stopped")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Psql(ctx, "postgres", "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("second Kill: %v, want ErrNotRunning", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("start after SIGKILL: %v\n%s", err, s.Log())
	}
	got, err := s.Psql(ctx, "postgres", "SELECT string_agg(v::text, ',' ORDER BY v) FROM t")
	if err != nil || got != "1,2" {
		t.Errorf("rows after kill and recovery: %q (%v), want 1,2", got, err)
	}
}

// Each DB call gives an empty database of its own on the shared cluster.
func TestDBIsFreshAndShared(t *testing.T) {
	ctx := context.Background()
	a, b := DB(t), DB(t)
	if a == b {
		t.Fatalf("two DB calls gave the same DSN %q", a)
	}
	srv := Shared()
	name := func(dsn string) string {
		return strings.TrimPrefix(strings.SplitN(dsn, "?", 2)[0], "postgres://postgres@/")
	}
	if _, err := srv.Psql(ctx, name(a), "CREATE TABLE only_in_a (v int)"); err != nil {
		t.Fatal(err)
	}
	got, err := srv.Psql(ctx, name(b), "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'")
	if err != nil || got != "0" {
		t.Errorf("table of database a seen in b: %q (%v)", got, err)
	}
	if !strings.Contains(a, "host=") || strings.Contains(a, "127.0.0.1") {
		t.Errorf("DSN %q: want a Unix socket host", a)
	}
}
