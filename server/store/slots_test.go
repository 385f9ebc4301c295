package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
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

// TestSlotsSharedInGroup: within one group, SlotsFull counts a site's stream slots
// in the first function that asks and answers the ones after it from that count
// and the group's writes since (shared.go), and every answer is what a fresh count
// in the same function says: after a function that opened a deployment and failed
// (rolled back, counted again), a new claim (full at the limit), a Finish, a clock behind the
// count's, slots lapsing with time (claims after the claim window, activity after
// stale-after), Progress making a lapsed deployment active again, MarkStreamed
// turning a claim into activity (a lapsed one: active again), Touch moving a deployment to another site, and
// another site asked. Limit 5, claim window 2 minutes, stale-after 15; the group's
// first function fails at once (on SQLite the group then runs again with
// savepoints, writer.go).
func TestSlotsSharedInGroup(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
		var clock atomic.Int64 // since t0
		s.SetClock(func() time.Time { return t0.Add(time.Duration(clock.Load())) })
		const limit, other = 5, "other"
		ids := map[string]int64{}
		deps := map[string]Deployment{}
		// open adds deployment name at site in tx, its hello at tx's time, and its
		// image fetched then when streamed.
		open := func(tx *Tx, name, site string, streamed bool) error {
			serial := fmt.Sprintf("%016x", len(ids)+1)
			if err := tx.SeeBoard(ctx, Board{Serial: serial}); err != nil {
				return err
			}
			d := Deployment{Serial: serial, Venue: "CORO", Product: "RXP2", Hostname: serial, Image: "i", Phase: "hello", Site: site}
			d, err := tx.AddClaimedDeployment(ctx, d, "", "")
			if err != nil {
				return err
			}
			ids[name], deps[name] = d.ID, d
			if streamed {
				_, err = tx.MarkStreamed(ctx, d.ID)
			}
			return err
		}
		for _, d := range []struct {
			name, site string
			at         time.Duration
			streamed   bool
		}{
			{"c1", DefaultSite, -time.Minute, false}, {"c2", DefaultSite, 0, false}, {"a1", DefaultSite, 0, true},
			{"a2", DefaultSite, -14 * time.Minute, true}, {"a3", DefaultSite, -20 * time.Minute, true}, {"o1", other, 0, false},
		} {
			clock.Store(int64(d.at))
			if err := s.Update(ctx, func(tx *Tx) error {
				if _, err := tx.PutVenue(ctx, "CORO", ""); err != nil && !errors.Is(err, ErrConflict) {
					return err
				}
				return open(tx, d.name, d.site, d.streamed)
			}); err != nil {
				t.Fatal(err)
			}
		}
		boom := errors.New("boom")
		finish := func(tx *Tx, name string) error {
			d := deps[name]
			d.State, d.Phase = DeployAbandoned, "hello"
			return tx.Finish(ctx, d)
		}
		sec := func(m, s int) time.Duration { return time.Duration(m)*time.Minute + time.Duration(s)*time.Second }
		type step struct {
			at       time.Duration // the function's clock, from t0
			site     string        // asked for ("": DefaultSite)
			write    func(tx *Tx) error
			fail     bool // fails after its write
			wantKept bool // answered without a count
			wantFull bool
			gotKept  bool
			gotFull  bool
			fresh    int // a count in the same function
		}
		steps := []*step{
			{at: sec(0, 30), fail: true}, // the group's first: fails at once
			// c1, c2, a1, a2 hold slots (a3 lapsed, o1 another site's): 4 < 5.
			{at: sec(0, 30), wantKept: false, wantFull: false},
			// Opens n0 and fails: n0 is rolled back, and so is the count.
			{at: sec(0, 31), wantKept: true, wantFull: false, fail: true, write: func(tx *Tx) error { return open(tx, "n0", DefaultSite, false) }},
			{at: sec(0, 32), wantKept: false, wantFull: false, write: func(tx *Tx) error { return open(tx, "n1", DefaultSite, false) }},
			{at: sec(0, 33), wantKept: true, wantFull: true},
			{at: sec(0, 34), wantKept: true, wantFull: true, write: func(tx *Tx) error { return finish(tx, "a1") }},
			{at: sec(0, 35), wantKept: false, wantFull: false, write: func(tx *Tx) error { return open(tx, "n2", DefaultSite, false) }},
			{at: sec(0, 20), wantKept: false, wantFull: true}, // the clock behind the count's: counted again
			// c1's claim and a2's activity lapse: c2, n1, n2; n3 makes 4, and a3 active again 5.
			{at: sec(1, 5), wantKept: false, wantFull: false, write: func(tx *Tx) error {
				if err := open(tx, "n3", DefaultSite, false); err != nil {
					return err
				}
				return tx.Progress(ctx, ids["a3"], "streaming", 1, 2, 0, "")
			}},
			{at: sec(1, 6), wantKept: false, wantFull: true, write: func(tx *Tx) error {
				_, err := tx.MarkStreamed(ctx, ids["c2"])
				return err
			}},
			{at: sec(1, 7), wantKept: true, wantFull: true, write: func(tx *Tx) error { return tx.Touch(ctx, ids["n3"], other) }},
			// c2, n1, n2, a3; c1's lapsed claim fetches its image: active again.
			{at: sec(1, 8), wantKept: false, wantFull: false, write: func(tx *Tx) error {
				_, err := tx.MarkStreamed(ctx, ids["c1"])
				return err
			}},
			{at: sec(1, 9), wantKept: false, wantFull: true},
			{at: sec(2, 40), wantKept: false, wantFull: false}, // n1's and n2's claims lapse: a3, c2, c1
			{at: sec(2, 41), site: other, wantKept: false, wantFull: false},
			{at: sec(2, 42), wantKept: false, wantFull: false},
		}
		clock.Store(int64(steps[0].at))
		run := func(k int) func(*Tx) error {
			st := steps[k]
			return func(tx *Tx) error {
				if k+1 < len(steps) {
					defer clock.Store(int64(steps[k+1].at)) // the next function's clock
				}
				if k == 0 {
					return boom
				}
				if got := tx.Now.Sub(t0); got != st.at {
					return fmt.Errorf("clock %s, want %s", got, st.at)
				}
				site := cmp.Or(st.site, DefaultSite)
				claimSince, activeSince := FormatTime(tx.Now.Add(-2*time.Minute)), FormatTime(tx.Now.Add(-15*time.Minute))
				_, st.gotKept = tx.g.slotsFull(site, claimSince, activeSince, limit)
				var err error
				if st.gotFull, err = tx.SlotsFull(ctx, site, claimSince, activeSince, limit); err != nil {
					return err
				}
				if st.fresh, err = tx.CountSlots(ctx, site, claimSince, activeSince, limit); err != nil {
					return err
				}
				if st.write != nil {
					if err := st.write(tx); err != nil {
						return err
					}
				}
				if st.fail {
					return boom
				}
				return nil
			}
		}
		errs := updatesInOneGroup(t, s, len(steps), run)
		for k, st := range steps {
			if st.fail {
				if !errors.Is(errs[k], boom) {
					t.Errorf("step %d: %v, want %v", k, errs[k], boom)
				}
			} else if errs[k] != nil {
				t.Errorf("step %d: %v", k, errs[k])
			}
			if k == 0 {
				continue
			}
			if st.gotFull != (st.fresh >= limit) {
				t.Errorf("step %d (at %s): SlotsFull %v, but a fresh count in the same function is %d", k, st.at, st.gotFull, st.fresh)
			}
			if st.gotKept != st.wantKept || st.gotFull != st.wantFull {
				t.Errorf("step %d (at %s): kept %v, full %v; want kept %v, full %v", k, st.at, st.gotKept, st.gotFull, st.wantKept, st.wantFull)
			}
		}
	})
}
