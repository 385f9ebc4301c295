package domain_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// TestPoolHellosInOneGroup: 25 new boards' hellos for a KXP2 pool batch of 20,
// committed in one group (the writer is held until all are queued), with a
// function in the middle of the group that joins the batch and binds the pool's
// next name, then fails. The batch list is read once for the group and counted
// as it fills (store/shared.go); what the failing function did is undone and
// forgotten: the first 20 hellos in the group's order get the pool's names 001–020
// in that order, each once, the name the failing function had bound going to the
// hello after it; the last 5 are told to retry (the batch is full); the batch
// counts 20 open deployments, and the failing function left no board. (On SQLite the
// failing function ends the group's first run, without savepoints, and the group
// runs again without it; on PostgreSQL its savepoint is rolled back.)
func TestPoolHellosInOneGroup(t *testing.T) {
	bothDialects(t, func(t *testing.T) {
		ctx := context.Background()
		svc, st, _ := newService(t)
		imageAtCoro(t, ctx, svc, st, "KXP2")
		must := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		_, err := svc.GeneratePool(ctx, "CORO", "KXP2", 40, 0)
		must("pool", err)
		b, err := svc.AddBatch(ctx, domain.BatchSpec{Venue: "CORO", Product: "KXP2", Count: 20})
		must("batch", err)

		const hellos, failAt = 25, 10 // the failing function is queued after hello 9
		boom := errors.New("boom")
		const failSerial = "10000000fa11fa11"
		answers := make([]agentapi.HelloResponse, hellos)
		errs := make([]error, hellos)
		var failErr error
		var calls []func()
		queue := func(f func()) { calls = append(calls, f) }
		for i := range hellos {
			if i == failAt {
				queue(func() {
					failErr = st.Update(ctx, func(t *store.Tx) error {
						bs, err := t.HelloBatches(ctx)
						if err != nil || len(bs) == 0 {
							return fmt.Errorf("batches %v: %w", bs, err)
						}
						if err := t.SeeBoard(ctx, store.Board{Serial: failSerial}); err != nil {
							return err
						}
						n, err := t.BindNextName(ctx, "CORO", "KXP2", failSerial)
						if err != nil {
							return err
						}
						if _, err := t.AddClaimedDeployment(ctx, store.Deployment{Serial: failSerial, BatchID: bs[0].ID, Venue: "CORO",
							Product: "KXP2", Hostname: n.Name, Image: "img", Phase: agentapi.PhaseHello}, "", ""); err != nil {
							return err
						}
						return boom
					})
				})
			}
			queue(func() {
				answers[i], errs[i] = svc.Hello(ctx, agentapi.Hello{Serial: fmt.Sprintf("10000000%08x", i+1),
					MAC: fmt.Sprintf("2c:cf:67:00:01:%02x", i+1)})
			})
		}
		inOneGroup(t, st, calls...)
		if !errors.Is(failErr, boom) {
			t.Errorf("failing function: %v, want %v", failErr, boom)
		}
		for i := range hellos {
			r := answers[i]
			switch {
			case errs[i] != nil:
				t.Errorf("hello %d: %v", i, errs[i])
			case i < 20 && (r.Deployment == nil || r.Deployment.Hostname != fmt.Sprintf("KXP2-CORO-%03d", i+1)):
				t.Errorf("hello %d: %+v, want a deployment as KXP2-CORO-%03d", i, r, i+1)
			case i >= 20 && (r.Action != agentapi.ActionRetry || !strings.Contains(r.Reason, "no active batch has room")):
				t.Errorf("hello %d: %+v, want retry: the batch is full", i, r)
			}
		}
		bt, err := st.Batch(ctx, b.ID)
		must("batch", err)
		if bt.InFlight != 20 {
			t.Errorf("batch counts %d open deployments, want 20", bt.InFlight)
		}
		if _, err := st.Board(ctx, failSerial); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("failing function's board: %v, want not found", err)
		}
		names, err := st.PoolNames(ctx, store.PoolFilter{Venue: "CORO", Product: "KXP2"})
		must("pool names", err)
		bound := map[string]string{}
		for _, n := range names {
			if n.Serial == "" {
				continue
			}
			if other, ok := bound[n.Serial]; ok {
				t.Errorf("board %s holds %s and %s", n.Serial, other, n.Name)
			}
			bound[n.Serial] = n.Name
		}
		if len(bound) != 20 {
			t.Errorf("%d names bound, want 20: %v", len(bound), bound)
		}
	})
}

// inOneGroup runs calls, each of which makes one store.Update, so that their
// Updates are committed in one writer group in calls' order: a first Update holds
// the writer until every one is queued, each call started once the one before it
// is queued (once the last is queued the writer may take them at once). It returns
// when every call has.
func inOneGroup(t *testing.T, st *store.Store, calls ...func()) {
	t.Helper()
	held := make(chan struct{})
	holdDone := make(chan error, 1)
	go func() {
		first := true
		holdDone <- st.Update(context.Background(), func(*store.Tx) error {
			if !first {
				return nil // the group runs again after a failing function (SQLite): store.Update
			}
			first = false
			close(held)
			for st.Queued() < len(calls) {
				runtime.Gosched()
			}
			return nil
		})
	}()
	<-held
	var wg sync.WaitGroup
	for k, call := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call()
		}()
		for k < len(calls)-1 && st.Queued() < k+1 {
			runtime.Gosched()
		}
	}
	if err := <-holdDone; err != nil {
		t.Fatalf("holding update: %v", err)
	}
	wg.Wait()
}
