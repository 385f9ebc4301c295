package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// probeTable makes a TEMP table on the writer's connection (a table only that
// connection sees, on both dialects), and probe reports whether the writer's
// connection still sees it: true while the writer keeps the connection it had.
func probeTable(t *testing.T, s *Store) (probe func() bool) {
	t.Helper()
	ctx := context.Background()
	if err := s.Update(ctx, func(tx *Tx) error {
		_, err := tx.tx.ExecContext(ctx, `CREATE TEMP TABLE writer_probe (x INTEGER)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return func() bool {
		t.Helper()
		err := s.Update(ctx, func(tx *Tx) error {
			_, err := tx.tx.ExecContext(ctx, `INSERT INTO writer_probe (x) VALUES (1)`)
			return err
		})
		return err == nil
	}
}

// TestWriterKeepsItsConnection: the writer runs its groups on one connection
// with statements prepared on it once. A function that fails — its own error, a
// statement the database refuses (a duplicate key; on PostgreSQL that aborts the
// transaction until the savepoint is rolled back), a panic — rolls back its
// savepoint only: the group's others commit, the connection and its statements
// stay (the temporary table made on it is still there, no statement is prepared
// again), and so does a group whose Update's context was cancelled before its
// turn. After a lost transaction (the function ran ROLLBACK itself) the writer
// rolls back what is left; where even that fails (SQLite: no transaction is
// active) it discards the connection; either way the next group works.
func TestWriterKeepsItsConnection(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.PutVenue(ctx, "CORO", ""); return err }); err != nil {
			t.Fatal(err)
		}
		probe := probeTable(t, s)
		w, prepared := s.wc, s.wc.prepared()
		boom := errors.New("boom")
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		for round := range 3 {
			serial := fmt.Sprintf("00000000000000%02x", round)
			wait := holdWriter(t, s, 4, func(tx *Tx) error { return tx.SeeBoard(ctx, Board{Serial: serial}) })
			errs := make(chan error, 4)
			go func() {
				errs <- s.Update(ctx, func(tx *Tx) error {
					_, err := tx.tx.ExecContext(ctx, `INSERT INTO venues (code, name, created_at) VALUES ('CORO', '', '')`)
					return err
				})
			}()
			go func() {
				errs <- s.Update(ctx, func(tx *Tx) error {
					if err := tx.SeeBoard(ctx, Board{Serial: "00000000000000ee"}); err != nil {
						return err
					}
					return boom
				})
			}()
			go func() {
				defer func() { errs <- fmt.Errorf("panicked: %v", recover()) }()
				s.Update(ctx, func(tx *Tx) error { panic("in a write") })
			}()
			go func() {
				errs <- s.Update(cancelled, func(tx *Tx) error { return tx.SeeBoard(ctx, Board{Serial: "00000000000000ef"}) })
			}()
			if err := wait(); err != nil {
				t.Fatalf("round %d: the group's successful update: %v", round, err)
			}
			for range 4 {
				if err := <-errs; err == nil {
					t.Errorf("round %d: a failing update returned nil", round)
				}
			}
			if _, err := s.Board(ctx, serial); err != nil {
				t.Errorf("round %d: board of the successful update: %v", round, err)
			}
			if s.wc != w || (round > 0 && s.wc.prepared() != prepared) || !probe() {
				t.Errorf("round %d: the writer's connection changed (%p → %p) or prepared again (%d → %d statements)",
					round, w, s.wc, prepared, s.wc.prepared())
			}
			prepared = s.wc.prepared() // round 0 prepared the statements of the failing functions
		}
		for _, serial := range []string{"00000000000000ee", "00000000000000ef"} {
			if _, err := s.Board(ctx, serial); !errors.Is(err, ErrNotFound) {
				t.Errorf("board %s of a failed update: %v, want ErrNotFound", serial, err)
			}
		}

		gone := errors.New("transaction gone")
		if err := s.Update(ctx, func(tx *Tx) error {
			if _, err := tx.tx.ExecContext(ctx, `ROLLBACK`); err != nil {
				return err
			}
			return gone
		}); !errors.Is(err, gone) {
			t.Errorf("update that lost the transaction: %v", err)
		}
		// SQLite: ROLLBACK fails (no transaction is active) and the connection goes;
		// PostgreSQL answers it with a warning only, and the connection, in no
		// transaction, is kept.
		if kept := probe(); kept != s.Postgres() {
			t.Errorf("after a lost transaction the writer kept its connection: %v, want %v", kept, s.Postgres())
		}
		if err := s.Update(ctx, func(tx *Tx) error { return tx.SeeBoard(ctx, Board{Serial: "00000000000000f0"}) }); err != nil {
			t.Errorf("the group after a lost transaction: %v", err)
		}
	})
}

// TestWriterBusy (SQLite): another connection holding the database's write lock
// delays the writer's group (busy_timeout) and does not fail it; when the lock
// outlasts the writer's busy timeout, BEGIN fails with SQLITE_BUSY, the caller
// gets that error and nothing is written, and the writer takes a new connection
// for the next group, which works once the lock is gone.
func TestWriterBusy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openCfg(t, Config{Dir: dir})
	other, err := sql.Open("sqlite", "file:"+filepath.Join(dir, FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetMaxOpenConns(1)
	lock := func() *sql.Conn {
		t.Helper()
		c, err := other.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
			t.Fatal(err)
		}
		return c
	}
	unlock := func(c *sql.Conn) {
		t.Helper()
		if _, err := c.ExecContext(ctx, `ROLLBACK`); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	see := func(serial string) error {
		return s.Update(ctx, func(tx *Tx) error { return tx.SeeBoard(ctx, Board{Serial: serial}) })
	}

	c := lock()
	time.AfterFunc(300*time.Millisecond, func() { unlock(c) })
	if err := see("00000000000000c1"); err != nil {
		t.Fatalf("update behind a lock held 300 ms: %v", err)
	}
	probe := probeTable(t, s)
	if err := s.Update(ctx, func(tx *Tx) error {
		_, err := tx.tx.ExecContext(ctx, `PRAGMA busy_timeout = 50`) // this connection's only
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c = lock()
	err = see("00000000000000c2")
	if code := sqliteCode(err) & 0xff; code != 5 { // SQLITE_BUSY
		t.Errorf("update behind a lock longer than the busy timeout: %v (code %d), want SQLITE_BUSY", err, code)
	}
	unlock(c)
	if probe() {
		t.Error("the writer kept the connection whose BEGIN failed")
	}
	if err := see("00000000000000c3"); err != nil {
		t.Errorf("next update: %v", err)
	}
	for serial, want := range map[string]error{"00000000000000c1": nil, "00000000000000c2": ErrNotFound, "00000000000000c3": nil} {
		if _, err := s.Board(ctx, serial); !errors.Is(err, want) {
			t.Errorf("board %s: %v, want %v", serial, err, want)
		}
	}
}

// TestWriterConnectionPragmas pins what the writer's SQLite connection is opened
// with: synchronous=NORMAL (its COMMIT does not sync; the syncer does before the
// answers, walsync.go, and TestUpdateAnsweredAfterWALSync holds that), its
// savepoint journal in memory and its page cache of writerCacheKiB (store.go).
func TestWriterConnectionPragmas(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var sync, temp, cache int
	err = s.Update(ctx, func(tx *Tx) error {
		for _, p := range []struct {
			q   string
			dst *int
		}{{`PRAGMA synchronous`, &sync}, {`PRAGMA temp_store`, &temp}, {`PRAGMA cache_size`, &cache}} {
			if err := tx.tx.QueryRowContext(ctx, p.q).Scan(p.dst); err != nil {
				return fmt.Errorf("%s: %w", p.q, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// synchronous 1 is NORMAL, temp_store 2 is MEMORY; a negative cache_size is KiB.
	if sync != 1 || temp != 2 || cache != -writerCacheKiB || s.wal == nil {
		t.Errorf("writer's connection: synchronous %d, temp_store %d, cache_size %d, syncer %v; want 1, 2, %d, one",
			sync, temp, cache, s.wal != nil, -writerCacheKiB)
	}
}
