package store

import (
	"context"
	"errors"
	"testing"
	"time"

	sqlite3 "modernc.org/sqlite/lib"
)

// TestConstraintCodes pins that the store tells a duplicate from other constraint
// failures by the database's code, not by message text: a second pool name of the
// same name (PRIMARY KEY) and a second holder of one pool (UNIQUE index) are
// ErrConflict, with the extended codes SQLite reports and PostgreSQL's SQLSTATE
// 23505; a name in a venue that does not exist (FOREIGN KEY: SQLite's code,
// SQLSTATE 23503) and a bad naming (CHECK: 23514) are errors but no conflict.
// Nothing of a failed transaction stays.
func TestConstraintCodes(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		if err := s.Update(ctx, func(tx *Tx) error {
			if _, err := tx.PutVenue(ctx, "CORO", "Coronation"); err != nil {
				return err
			}
			return tx.AddPoolName(ctx, PoolName{Name: "KXP2-CORO-001", Venue: "CORO", Product: "KXP2", Seq: 1, Serial: "00000000aaaaaaaa"})
		}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name     string
			row      PoolName
			code     int
			sqlstate string
			conflict bool
		}{
			{"same name", PoolName{Name: "KXP2-CORO-001", Venue: "CORO", Product: "KXP2", Seq: 9},
				sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, "23505", true},
			{"same holder", PoolName{Name: "KXP2-CORO-002", Venue: "CORO", Product: "KXP2", Seq: 2, Serial: "00000000aaaaaaaa"},
				sqlite3.SQLITE_CONSTRAINT_UNIQUE, "23505", true},
			{"no such venue", PoolName{Name: "KXP2-NONE-001", Venue: "NONE", Product: "KXP2", Seq: 1},
				sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY, "23503", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				// The raw insert in a transaction of its own: on PostgreSQL a failed
				// statement ends what its transaction (savepoint) may do.
				var raw error
				s.Update(ctx, func(tx *Tx) error {
					_, raw = tx.tx.ExecContext(ctx, `INSERT INTO pool_names (name, venue, product, seq, serial, created_at)
						VALUES (?, ?, ?, ?, ?, ?)`, tc.row.Name, tc.row.Venue, tc.row.Product, tc.row.Seq, nullStr(tc.row.Serial), FormatTime(tx.Now))
					return raw
				})
				if s.Postgres() {
					if got := pgCode(raw); got != tc.sqlstate {
						t.Errorf("SQLSTATE %q (%v), want %q", got, raw, tc.sqlstate)
					}
				} else if got := sqliteCode(raw); got != tc.code {
					t.Errorf("SQLite code %d (%v), want %d", got, raw, tc.code)
				}
				err := s.Update(ctx, func(tx *Tx) error { return tx.AddPoolName(ctx, tc.row) })
				if err == nil || errors.Is(err, ErrConflict) != tc.conflict {
					t.Errorf("AddPoolName: %v, want conflict %v", err, tc.conflict)
				}
				if errors.Is(err, ErrUnavailable) {
					t.Errorf("AddPoolName: %v: a constraint failure taken for an unreachable database", err)
				}
			})
		}
		err := s.Update(ctx, func(tx *Tx) error {
			return tx.PutProduct(ctx, Product{Code: "BADX", Naming: "neither", Digits: 3})
		})
		if err == nil || errors.Is(err, ErrConflict) {
			t.Errorf("product with a bad naming: %v, want a non-conflict error", err)
		}
		if s.Postgres() && pgCode(err) != "23514" {
			t.Errorf("product with a bad naming: SQLSTATE %q, want 23514", pgCode(err))
		}
		names, err := s.PoolNames(ctx, PoolFilter{})
		if err != nil || len(names) != 1 {
			t.Errorf("pool after the failed inserts: %+v %v", names, err)
		}
	})
	if sqliteCode(errors.New("UNIQUE constraint failed: pool_names.name")) != 0 || isUnique(errors.New("UNIQUE constraint failed")) ||
		isUnique(errors.New("duplicate key value violates unique constraint (SQLSTATE 23505)")) {
		t.Error("an error that only says UNIQUE is taken for the database's")
	}
}

// TestClock pins that write transactions are stamped by the store's clock
// (SetClock): a test moves time by advancing its clock, not by sleeping.
func TestClock(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		now := time.Date(2031, 5, 6, 7, 8, 9, 0, time.FixedZone("CEST", 2*3600))
		s.SetClock(func() time.Time { return now })
		if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.PutVenue(ctx, "CORO", "x"); return err }); err != nil {
			t.Fatal(err)
		}
		v, err := s.Venue(ctx, "CORO")
		if err != nil || v.CreatedAt != "2031-05-06T05:08:09.000000000Z" {
			t.Errorf("venue created at %q (%v), want the clock's time in UTC", v.CreatedAt, err)
		}
	})
}
