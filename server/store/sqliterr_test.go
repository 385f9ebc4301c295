package store

import (
	"context"
	"errors"
	"testing"
	"time"

	sqlite3 "modernc.org/sqlite/lib"
)

// TestConstraintCodes pins that the store tells a duplicate from other constraint
// failures by SQLite's result code, not by message text: a second pool name of the
// same name (PRIMARY KEY) and a second holder of one pool (UNIQUE index) are
// ErrConflict with the extended codes SQLite reports; a name in a venue that does
// not exist (FOREIGN KEY) is an error but no conflict. Nothing of a failed
// transaction stays.
func TestConstraintCodes(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
		conflict bool
	}{
		{"same name", PoolName{Name: "KXP2-CORO-001", Venue: "CORO", Product: "KXP2", Seq: 9}, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, true},
		{"same holder", PoolName{Name: "KXP2-CORO-002", Venue: "CORO", Product: "KXP2", Seq: 2, Serial: "00000000aaaaaaaa"},
			sqlite3.SQLITE_CONSTRAINT_UNIQUE, true},
		{"no such venue", PoolName{Name: "KXP2-NONE-001", Venue: "NONE", Product: "KXP2", Seq: 1}, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var raw error
			err := s.Update(ctx, func(tx *Tx) error {
				_, raw = tx.tx.ExecContext(ctx, `INSERT INTO pool_names (name, venue, product, seq, serial, created_at)
					VALUES (?, ?, ?, ?, ?, ?)`, tc.row.Name, tc.row.Venue, tc.row.Product, tc.row.Seq, nullStr(tc.row.Serial), FormatTime(tx.Now))
				return tx.AddPoolName(ctx, tc.row)
			})
			if got := sqliteCode(raw); got != tc.code {
				t.Errorf("SQLite code %d (%v), want %d", got, raw, tc.code)
			}
			if err == nil || errors.Is(err, ErrConflict) != tc.conflict {
				t.Errorf("AddPoolName: %v, want conflict %v", err, tc.conflict)
			}
		})
	}
	names, err := s.PoolNames(ctx, PoolFilter{})
	if err != nil || len(names) != 1 {
		t.Errorf("pool after the failed inserts: %+v %v", names, err)
	}
	if sqliteCode(errors.New("UNIQUE constraint failed: pool_names.name")) != 0 || isUnique(errors.New("UNIQUE constraint failed")) {
		t.Error("an error that only says UNIQUE is taken for SQLite's")
	}
}

// TestClock pins that write transactions are stamped by the store's clock
// (SetClock): a test moves time by advancing its clock, not by sleeping.
func TestClock(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2031, 5, 6, 7, 8, 9, 0, time.FixedZone("CEST", 2*3600))
	s.SetClock(func() time.Time { return now })
	if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.PutVenue(ctx, "CORO", "x"); return err }); err != nil {
		t.Fatal(err)
	}
	v, err := s.Venue(ctx, "CORO")
	if err != nil || v.CreatedAt != "2031-05-06T05:08:09.000000000Z" {
		t.Errorf("venue created at %q (%v), want the clock's time in UTC", v.CreatedAt, err)
	}
}
