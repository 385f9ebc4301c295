package domain_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// TestStreamSlotsInOneGroup: past MaxStreams open deployments the stream slots are
// counted once per writer group (store.Tx.SlotsFull), and the limit holds exactly as
// a count per hello held it. MaxStreams 10; 8 deployments whose claims have lapsed
// and 4 that hold a slot, so 12 are open and the slots are looked at. Then one group
// of 10 new boards' hellos, with a function after the 3rd that opens a deployment
// and fails (rolled back; on SQLite the group runs again without it) and one after
// the 8th that abandons a deployment holding a slot (a slot free again): hellos 1–6
// get deployments, 7 and 8 are told to retry (10 boards streaming), 9 gets the
// freed slot and 10 retries; the failing function left no board, and 10
// deployments hold a slot after the group.
func TestStreamSlotsInOneGroup(t *testing.T) {
	bothDialects(t, func(t *testing.T) {
		ctx := context.Background()
		const maxStreams = 10
		svc, st, _, clk := newClockedServiceWith(t, domain.Options{MaxStreams: maxStreams})
		must := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		imageAtCoro(t, ctx, svc, st, "RXP2")
		b, err := svc.AddBatch(ctx, domain.BatchSpec{Venue: "CORO", Product: "RXP2"})
		must("batch", err)
		hello := func(serial string) (agentapi.HelloResponse, error) {
			return svc.Hello(ctx, agentapi.Hello{Serial: serial, MAC: "2c:cf:67:00:01:" + serial[len(serial)-2:]})
		}
		var held []int64
		for i := range 12 {
			if i == 8 {
				clk.Advance(domain.DefaultClaimWindow + time.Minute) // the first 8 claims lapse
			}
			r, err := hello(fmt.Sprintf("20000000%08x", i+1))
			must("hello", err)
			if r.Deployment == nil {
				t.Fatalf("hello %d before the group: %+v", i, r)
			}
			if i >= 8 {
				held = append(held, r.Deployment.ID)
			}
		}

		const hellos, failAt, freeAt = 10, 3, 8
		boom := errors.New("boom")
		const failSerial = "30000000fa11fa11"
		answers := make([]agentapi.HelloResponse, hellos)
		errs := make([]error, hellos)
		var failErr, freeErr error
		var calls []func()
		queue := func(f func()) { calls = append(calls, f) }
		for i := range hellos {
			switch i {
			case failAt:
				queue(func() {
					failErr = st.Update(ctx, func(t *store.Tx) error {
						if err := t.SeeBoard(ctx, store.Board{Serial: failSerial}); err != nil {
							return err
						}
						if _, err := t.AddClaimedDeployment(ctx, store.Deployment{Serial: failSerial, BatchID: b.ID, Venue: "CORO",
							Product: "RXP2", Hostname: "RXP2-CORO-FA11FA11", Image: "img", Phase: agentapi.PhaseHello}, "", ""); err != nil {
							return err
						}
						return boom
					})
				})
			case freeAt:
				queue(func() { _, freeErr = svc.AbandonDeployment(ctx, held[0], "slot freed in the group") })
			}
			queue(func() { answers[i], errs[i] = hello(fmt.Sprintf("30000000%08x", i+1)) })
		}
		inOneGroup(t, st, calls...)
		if !errors.Is(failErr, boom) {
			t.Errorf("failing function: %v, want %v", failErr, boom)
		}
		must("abandon", freeErr)
		for i := range hellos {
			r := answers[i]
			admit := i < 6 || i == 8
			switch {
			case errs[i] != nil:
				t.Errorf("hello %d: %v", i+1, errs[i])
			case admit && r.Deployment == nil:
				t.Errorf("hello %d: %+v, want a deployment", i+1, r)
			case !admit && (r.Action != agentapi.ActionRetry || !strings.Contains(r.Reason, "10 boards streaming, the limit is 10")):
				t.Errorf("hello %d: %+v, want retry: 10 boards streaming", i+1, r)
			}
		}
		if _, err := st.Board(ctx, failSerial); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("failing function's board: %v, want not found", err)
		}
		now := clk.Now()
		var n int
		must("count", st.Update(ctx, func(tx *store.Tx) (err error) {
			n, err = tx.CountSlots(ctx, store.DefaultSite, store.FormatTime(now.Add(-domain.DefaultClaimWindow)),
				store.FormatTime(now.Add(-domain.DefaultStaleAfter)), 100)
			return err
		}))
		if n != maxStreams {
			t.Errorf("%d deployments hold a slot after the group, want %d", n, maxStreams)
		}
	})
}
