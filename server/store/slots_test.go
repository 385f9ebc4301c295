package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestCountSlots: CountSlots counts a deployment that has not fetched its image
// from its hello until claimSince passes it, one that has while it was active at
// or after activeSince, never a closed one, and never more than limit;
// CountOpenAll is every open deployment, of batches and outside them, and follows
// Finish. It pins that the partial indexes of migration 0030 count what the plain
// scan they replaced counted (CountSlots names them with INDEXED BY, so a query
// that could not use them would fail here, not fall back to a scan).
func TestCountSlots(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
		clock := t0
		s.SetClock(func() time.Time { return clock })
		// At t0+i minutes: deployment i. Even ones fetch their image at once; 6 and 7
		// are closed; 8 and 9 are re-images outside any batch.
		ids := map[int]int64{}
		var batch int64
		for i := range 10 {
			clock = t0.Add(time.Duration(i) * time.Minute)
			err := s.Update(ctx, func(tx *Tx) error {
				if i == 0 {
					if _, err := tx.PutVenue(ctx, "CORO", ""); err != nil {
						return err
					}
					var err error
					if batch, err = tx.AddBatch(ctx, Batch{Venue: "CORO", Product: "RXP2", State: BatchActive}); err != nil {
						return err
					}
				}
				serial := fmt.Sprintf("%016x", i+1)
				if err := tx.SeeBoard(ctx, Board{Serial: serial}); err != nil {
					return err
				}
				d := Deployment{Serial: serial, BatchID: batch, Venue: "CORO", Product: "RXP2", Hostname: serial, Image: "i", Phase: "hello"}
				if i >= 8 {
					d.BatchID = 0
				}
				id, err := tx.AddDeployment(ctx, d)
				ids[i] = id
				if err == nil && i%2 == 0 {
					_, err = tx.MarkStreamed(ctx, id)
				}
				if err == nil && (i == 6 || i == 7) {
					d.ID, d.State, d.Phase = id, DeployFailed, "streaming"
					err = tx.Finish(ctx, d)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		at := func(m int) string { return FormatTime(t0.Add(time.Duration(m) * time.Minute)) }
		for _, tc := range []struct {
			name               string
			claimSince, active string
			limit, want        int
		}{
			{"all open", at(0), at(0), 100, 8},        // 0–5, 8, 9
			{"limit", at(0), at(0), 3, 3},             // never more than limit
			{"claims lapse", at(4), at(0), 100, 6},    // unstreamed 1, 3 lapsed; 5, 9 hold
			{"activity lapses", at(0), at(3), 100, 6}, // streamed 0, 2 lapsed; 4, 8 hold
			{"both lapse", at(9), at(9), 100, 1},      // only 9 (unstreamed, said hello at 9)
			{"none", at(10), at(10), 100, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := s.Update(ctx, func(tx *Tx) error {
					n, err := tx.CountSlots(ctx, DefaultSite, tc.claimSince, tc.active, tc.limit)
					if err == nil && n != tc.want {
						t.Errorf("CountSlots(%s, %s, %d) = %d, want %d", tc.claimSince, tc.active, tc.limit, n, tc.want)
					}
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			})
		}
		count := func() int {
			var n int
			if err := s.Update(ctx, func(tx *Tx) (err error) { n, err = tx.CountOpenAll(ctx); return err }); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := count(); n != 8 {
			t.Errorf("CountOpenAll = %d, want 8", n)
		}
		clock = t0.Add(time.Hour)
		for _, i := range []int{0, 9} { // one of the batch, one outside
			err := s.Update(ctx, func(tx *Tx) error {
				d, err := tx.Deployment(ctx, ids[i])
				if err != nil {
					return err
				}
				d.State = DeployVerified
				return tx.Finish(ctx, d)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := count(); n != 6 {
			t.Errorf("CountOpenAll after two results = %d, want 6", n)
		}
	})
}
