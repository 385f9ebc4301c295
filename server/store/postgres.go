package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// openPostgres opens the PostgreSQL database at dsn and migrates it: a writer pool
// of one connection (group commit, writer.go) and a reader pool. database/sql
// replaces a connection that broke, so the store outlives a restart of the server.
func openPostgres(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, fmt.Errorf("database URL %q: not a valid PostgreSQL connection URL", Redact(dsn))
	}
	where := fmt.Sprintf("postgres %s/%s", cfg.Host, cfg.Database)
	w, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", where, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	s := &Store{DB: w, where: where, dialect: dialectPostgres, now: time.Now}
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("connect to %s: %w", where, classify(err))
	}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	r, err := sql.Open("pgx", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", where, err)
	}
	n := max(4, runtime.GOMAXPROCS(0)*2)
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	// A connection broken by a server restart is found out when used; an idle one
	// is not kept for ever.
	r.SetConnMaxIdleTime(5 * time.Minute)
	s.RDB = r
	s.start()
	return s, nil
}

// Redact returns a database URL fit for a log or an error message: the password of
// its user part and a password query parameter are replaced by "xxxxx". A string
// that does not parse as a URL is replaced whole.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable URL)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
