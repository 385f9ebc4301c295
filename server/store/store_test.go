package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestMigrateReopen: migrations run once; opening the same file again applies nothing
// twice and keeps the data.
func TestMigrateReopen(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s, err := OpenDB(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		v1, err := s.Version(ctx)
		if err != nil || v1 < 2 {
			t.Fatalf("version %d %v", v1, err)
		}
		if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.PutVenue(ctx, "CORO", "x"); return err }); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s, err = OpenDB(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if v2, _ := s.Version(ctx); v2 != v1 {
			t.Errorf("version %d after reopen, was %d", v2, v1)
		}
		if v, err := s.Venue(ctx, "CORO"); err != nil || v.Name != "x" {
			t.Errorf("venue after reopen: %+v %v", v, err)
		}
		ps, _ := s.Products(ctx)
		if len(ps) != 2 || ps[0].Code != "KXP2" || ps[0].Naming != NamingPool || ps[1].Naming != NamingSerial {
			t.Errorf("built-in products %+v", ps)
		}
	})
}

// TestConcurrentWritesNeverLocked: many goroutines writing at once through Update
// all succeed (no "database is locked"), and a failed transaction leaves nothing.
func TestConcurrentWritesNeverLocked(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.Update(ctx, func(tx *Tx) error {
					return tx.SeeBoard(ctx, Board{Serial: fmt.Sprintf("%016x", i)})
				})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		boom := errors.New("boom")
		err := s.Update(ctx, func(tx *Tx) error {
			if _, err := tx.PutVenue(ctx, "ARIA", ""); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if _, err := s.Venue(ctx, "ARIA"); !errors.Is(err, ErrNotFound) {
			t.Errorf("rolled-back venue: %v", err)
		}
	})
}

// TestNowTextFollowsNow: a transaction's rows carry its Now formatted once
// (nowText: no allocation for the rows after the first), and the time as Now
// stands when each row is written, also when Now is changed in the middle.
func TestNowTextFollowsNow(t *testing.T) {
	t1 := time.Date(2026, 12, 6, 2, 30, 0, 123456789, time.UTC)
	tx := &Tx{Now: t1}
	if got := tx.nowText(); got != FormatTime(t1) {
		t.Fatalf("nowText %q, want %q", got, FormatTime(t1))
	}
	if n := testing.AllocsPerRun(100, func() { tx.nowText() }); n != 0 {
		t.Errorf("nowText again: %v allocations, want 0", n)
	}
	t2 := t1.Add(-30 * 24 * time.Hour)
	tx.Now = t2
	if got := tx.nowText(); got != FormatTime(t2) {
		t.Errorf("after Now changed: nowText %q, want %q", got, FormatTime(t2))
	}
}
