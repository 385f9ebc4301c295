package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestRetention: CapBoardEvents keeps the newest events per serial and, for events
// without a serial (netboot before a hello), per MAC, leaving other boards alone;
// ForgetIdleBoards deletes only boards that never had a deployment nor a name.
func TestRetention(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		old := time.Now().Add(-30 * 24 * time.Hour)
		err := s.Update(ctx, func(tx *Tx) error {
			for i := range 12 {
				for _, e := range []BoardEvent{{Serial: "a", Kind: "x"}, {MAC: "m", Kind: "y"}} {
					if _, err := tx.AddBoardEvent(ctx, BoardEvent{Serial: e.Serial, MAC: e.MAC, Kind: fmt.Sprint(e.Kind, i)}); err != nil {
						return err
					}
				}
				if i < 3 {
					if _, err := tx.AddBoardEvent(ctx, BoardEvent{Serial: "b", MAC: "m", Kind: fmt.Sprint("z", i)}); err != nil {
						return err
					}
				}
			}
			tx.Now = old
			for _, serial := range []string{"1000000000000001", "1000000000000002", "1000000000000003"} {
				if err := tx.SeeBoard(ctx, Board{Serial: serial}); err != nil {
					return err
				}
				if _, err := tx.AddBoardEvent(ctx, BoardEvent{Serial: serial, Kind: "agent.hello"}); err != nil {
					return err
				}
			}
			tx.Now = time.Now()
			if _, err := tx.PutVenue(ctx, "CORO", ""); err != nil {
				return err
			}
			// Board 2 holds a name, board 3 had a deployment: both stay.
			if err := tx.AddPoolName(ctx, PoolName{Name: "KXP2-CORO-001", Venue: "CORO", Product: "KXP2", Seq: 1, Serial: "1000000000000002"}); err != nil {
				return err
			}
			_, err := tx.AddDeployment(ctx, Deployment{Serial: "1000000000000003", Venue: "CORO", Product: "KXP2", Hostname: "h", Image: "i", Phase: "hello"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var deleted, forgot int64
		err = s.Update(ctx, func(tx *Tx) error {
			var err error
			if deleted, err = tx.CapBoardEvents(ctx, 5); err != nil {
				return err
			}
			forgot, err = tx.ForgetIdleBoards(ctx, FormatTime(time.Now().Add(-7*24*time.Hour)))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		count := func(q string, args ...any) int {
			var n int
			if err := s.RDB.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if deleted != 14 {
			t.Errorf("deleted %d events, want 14 (7 of serial a, 7 of MAC m without serial)", deleted)
		}
		if n := count(`SELECT count(*) FROM board_events WHERE serial = 'a'`); n != 5 {
			t.Errorf("serial a keeps %d events, want 5", n)
		}
		if n := count(`SELECT count(*) FROM board_events WHERE serial = 'a' AND kind = 'x11'`); n != 1 {
			t.Errorf("the newest event of serial a is gone")
		}
		if n := count(`SELECT count(*) FROM board_events WHERE serial = '' AND mac = 'm'`); n != 5 {
			t.Errorf("MAC m keeps %d events without serial, want 5", n)
		}
		if n := count(`SELECT count(*) FROM board_events WHERE serial = 'b'`); n != 3 {
			t.Errorf("serial b (under the cap, same MAC) keeps %d events, want 3", n)
		}
		if forgot != 1 {
			t.Errorf("forgot %d boards, want 1", forgot)
		}
		if n := count(`SELECT count(*) FROM boards WHERE serial IN ('1000000000000002', '1000000000000003')`); n != 2 {
			t.Errorf("%d of the boards with a name or a deployment left, want 2", n)
		}
		if n := count(`SELECT count(*) FROM board_events WHERE serial = '1000000000000001'`); n != 0 {
			t.Errorf("the forgotten board left %d events", n)
		}
	})
}
