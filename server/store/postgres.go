package store

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// ConnectTimeout is how long opening a PostgreSQL connection may take when the URL
// sets no connect_timeout; past it the call fails with ErrUnavailable.
const ConnectTimeout = 5 * time.Second

// openPostgres opens the PostgreSQL database at dsn and migrates it: a writer pool
// (writerConns: the writer goroutine's connection, writer.go, and one for tools) and
// a reader pool. A connection that broke is replaced (the writer takes a new one
// after a lost transaction), so the store outlives a restart of the server.
func openPostgres(ctx context.Context, dsn string, serializable bool) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, fmt.Errorf("database URL %q: not a valid PostgreSQL connection URL", Redact(dsn))
	}
	where := fmt.Sprintf("postgres %s/%s", cfg.Host, cfg.Database)
	// A server that does not answer at all (a dropped route) must not hold the
	// writer, and every hello queued behind it, for the kernel's TCP timeout.
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = ConnectTimeout
	}
	w := stdlib.OpenDB(*cfg)
	w.SetMaxOpenConns(writerConns)
	w.SetMaxIdleConns(writerConns)
	w.SetConnMaxLifetime(0)
	s := &Store{DB: w, where: where, dialect: dialectPostgres, serializable: serializable, now: time.Now}
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("connect to %s: %w", where, classify(err))
	}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	r := stdlib.OpenDB(*cfg)
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
// that is not a URL with a scheme (a keyword=value DSN may hold password=…) is
// replaced whole.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "(not a URL)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
