package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestHelloBatchesSharedInGroup: within one group, HelloBatches is read by the
// first function that asks and kept for the ones after it (shared.go), and what it
// gives each function is what the database holds at that point of the
// transaction: after AddClaimedDeployment counted into a batch (which leaves the
// list when full), after a function that counted and then failed (its savepoint
// rolled back, the list read again), and after a batch was paused (read again).
// Each function compares the list it was given with a fresh read of the same
// query in its own savepoint. The group's first function fails at once: on SQLite
// that makes the group run again with savepoints (writer.go), where the function
// that counts and then fails is rolled back to its savepoint.
func TestHelloBatchesSharedInGroup(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		var a, b int64
		err := s.Update(ctx, func(tx *Tx) error {
			err := errors.Join(tx.PutImage(ctx, Image{Name: "img", Size: 1, SHA256: "x", CompressedSize: 1, Manifest: "{}", State: ImageReady}),
				tx.SetProductImage(ctx, "RXP2", "img"))
			if _, perr := tx.PutVenue(ctx, "CORO", ""); perr != nil {
				return perr
			}
			if err != nil {
				return err
			}
			if a, err = tx.AddBatch(ctx, Batch{Venue: "CORO", Product: "RXP2", Count: 3, Priority: 2, State: BatchActive}); err != nil {
				return err
			}
			b, err = tx.AddBatch(ctx, Batch{Venue: "CORO", Product: "RXP2", Priority: 1, State: BatchActive})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		type step struct {
			kind       string // "hello", "fail" (a hello that then fails), "pause" (pauses batch b), "refuse" (fails at once)
			wantKept   bool   // the list was kept from a function before it
			wantBatch  int64  // the batch it joins (0: none)
			gotKept    bool
			gotBatch   int64
			listErrors string
		}
		steps := []*step{
			{kind: "refuse"},
			{kind: "hello", wantKept: false, wantBatch: a}, // the group's first read
			{kind: "hello", wantKept: true, wantBatch: a},
			{kind: "fail", wantKept: true, wantBatch: a},   // a's third, rolled back: the list is read again
			{kind: "hello", wantKept: false, wantBatch: a}, // a's third again; a is full now
			{kind: "hello", wantKept: true, wantBatch: b},
			{kind: "pause"}, // b paused: the list is read again
			{kind: "hello", wantKept: false},
			{kind: "hello", wantKept: true},
		}
		run := func(k int) func(*Tx) error {
			st := steps[k]
			return func(tx *Tx) error {
				if st.kind == "refuse" {
					return boom
				}
				if st.kind == "pause" {
					bt, err := tx.Batch(ctx, b)
					if err != nil {
						return err
					}
					bt.State = BatchPaused
					return tx.UpdateBatch(ctx, bt)
				}
				st.gotKept = tx.g.batchesRead
				got, err := tx.HelloBatches(ctx)
				if err != nil {
					return err
				}
				fresh, err := tx.readHelloBatches(ctx)
				if err != nil {
					return err
				}
				st.listErrors = cmp.Diff(fresh, got)
				if len(got) > 0 {
					serial := fmt.Sprintf("%016x", k+1)
					if err := tx.SeeBoard(ctx, Board{Serial: serial}); err != nil {
						return err
					}
					st.gotBatch = got[0].ID
					if _, err := tx.AddClaimedDeployment(ctx, Deployment{Serial: serial, BatchID: got[0].ID, Venue: "CORO",
						Product: "RXP2", Hostname: serial, Image: "img", Phase: "hello"}, "", ""); err != nil {
						return err
					}
				}
				if st.kind == "fail" {
					return boom
				}
				return nil
			}
		}
		errs := updatesInOneGroup(t, s, len(steps), run)
		for k, st := range steps {
			if st.kind == "fail" || st.kind == "refuse" {
				if !errors.Is(errs[k], boom) {
					t.Errorf("step %d: %v, want %v", k, errs[k], boom)
				}
			} else if errs[k] != nil {
				t.Errorf("step %d: %v", k, errs[k])
			}
			if st.kind == "pause" || st.kind == "refuse" {
				continue
			}
			if st.listErrors != "" {
				t.Errorf("step %d (%s): list given differs from the database's (-read +given):\n%s", k, st.kind, st.listErrors)
			}
			if st.gotKept != st.wantKept || st.gotBatch != st.wantBatch {
				t.Errorf("step %d (%s): kept %v, joined batch %d; want kept %v, batch %d", k, st.kind, st.gotKept, st.gotBatch,
					st.wantKept, st.wantBatch)
			}
		}
		// What the group committed: the failed step's deployment is gone, the
		// others counted once.
		for _, tc := range []struct {
			id       int64
			inFlight int
			state    string
		}{{a, 3, BatchActive}, {b, 1, BatchPaused}} {
			bt, err := s.Batch(ctx, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if bt.InFlight != tc.inFlight || bt.State != tc.state {
				t.Errorf("batch %d: %d open, %s; want %d, %s", tc.id, bt.InFlight, bt.State, tc.inFlight, tc.state)
			}
		}
		if _, err := s.Board(ctx, fmt.Sprintf("%016x", 4)); !errors.Is(err, ErrNotFound) {
			t.Errorf("failed step's board: %v, want not found", err)
		}
	})
}
