package domain_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// TestBatchEventsOfABurst: hellos into one batch at once may fold their
// batch.changed events into fewer, but never lose the last state: an event shows
// the batch with every deployment of the burst, and none shows more.
func TestBatchEventsOfABurst(t *testing.T) {
	bothDialects(t, func(t *testing.T) {
		ctx, svc, _, b, sub := subscribedBatch(t)
		const n = 40
		helloBurst(t, ctx, svc, "20000000", n)
		most, batchEvents := -1, 0
		for len(sub.C) > 0 {
			ev := <-sub.C
			if ev.Type != events.BatchChanged {
				continue
			}
			batchEvents++
			got, ok := ev.Data.(mgmtapi.Batch)
			if !ok || got.ID != b.ID {
				t.Fatalf("batch.changed carries %#v", ev.Data)
			}
			most = max(most, got.InFlight)
		}
		if most != n {
			t.Errorf("batch.changed events show at most %d deployments in progress, want %d", most, n)
		}
		if batchEvents == 0 || batchEvents > n {
			t.Errorf("%d batch.changed events for %d hellos", batchEvents, n)
		}
		t.Logf("%d hellos, %d batch.changed events", n, batchEvents)
	})
}

// subscribedBatch is a service with an open-ended RXP2 batch (rxp2Batch) and a
// subscription to its bus from then on.
func subscribedBatch(t *testing.T) (context.Context, *domain.Service, *store.Store, mgmtapi.Batch, *events.Sub) {
	t.Helper()
	svc, st, bus, _ := newClockedService(t)
	ctx := domain.WithActor(context.Background(), "test")
	b := rxp2Batch(t, ctx, svc, st)
	sub, _ := bus.Subscribe(0)
	t.Cleanup(sub.Close)
	return ctx, svc, st, b, sub
}

// helloBurst sends n new boards' hellos at once (serials prefix and 8 hex digits)
// and returns the deployments they opened, each in its place; a hello that opens
// none fails the test.
func helloBurst(t *testing.T, ctx context.Context, svc *domain.Service, prefix string, n int) []*agentapi.Deployment {
	deps := make([]*agentapi.Deployment, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := svc.Hello(ctx, agentapi.Hello{Serial: fmt.Sprintf("%s%08x", prefix, i), MAC: "2c:cf:67:00:01:00"})
			if err != nil || r.Deployment == nil {
				t.Errorf("hello %d: %+v %v", i, r, err)
				return
			}
			deps[i] = r.Deployment
		})
	}
	wg.Wait()
	return deps
}

// rxp2Batch makes a ready image "img" active for RXP2, venue CORO and an open-ended
// RXP2 batch there, and returns the batch.
func rxp2Batch(t *testing.T, ctx context.Context, svc *domain.Service, st *store.Store) mgmtapi.Batch {
	t.Helper()
	imageAtCoro(t, ctx, svc, st, "RXP2")
	b, err := svc.AddBatch(ctx, domain.BatchSpec{Venue: "CORO", Product: "RXP2"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// imageAtCoro makes a ready image "img" (first boot: firstrun) active for product
// and puts venue CORO.
func imageAtCoro(t *testing.T, ctx context.Context, svc *domain.Service, st *store.Store, product string) {
	t.Helper()
	if err := st.Update(ctx, func(t *store.Tx) error {
		return t.PutImage(ctx, store.Image{Name: "img", Size: 1, SHA256: strings.Repeat("ab", 32), CompressedSize: 1,
			FirstBoot: "firstrun", Manifest: "{}", State: store.ImageReady})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutVenue(ctx, "CORO", "Coronation"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ActivateImage(ctx, "img", product, false); err != nil {
		t.Fatal(err)
	}
}

// TestBatchEventIsTheCommittedRow: the batch.changed a hello publishes is its
// transaction's own row of the batch (no read after the commit), and it is exactly
// what a read after the commit returns: after each hello — into an open-ended batch,
// into a batch of 2 until it is full, and told to retry once it is — and after
// results that count a verified card (the row read in the result's transaction) or a
// failed one (read after the commit), the latest batch.changed shows the batch as
// the store reads it then, every field.
func TestBatchEventIsTheCommittedRow(t *testing.T) {
	bothDialects(t, func(t *testing.T) {
		ctx, svc, st, open, sub := subscribedBatch(t)
		// latest is the last batch.changed published about id since the last call.
		latest := func(id int64) (mgmtapi.Batch, bool) {
			var got mgmtapi.Batch
			var ok bool
			for len(sub.C) > 0 {
				if ev := <-sub.C; ev.Type == events.BatchChanged && ev.Data.(mgmtapi.Batch).ID == id {
					got, ok = ev.Data.(mgmtapi.Batch), true
				}
			}
			return got, ok
		}
		asRead := func(what string, id int64) {
			t.Helper()
			got, ok := latest(id)
			b, err := st.Batch(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if want := mgmtapi.Batch(b); !ok || got != want {
				t.Errorf("%s: batch.changed %+v (published: %v), read after the commit %+v", what, got, ok, want)
			}
		}
		var deps []*agentapi.Deployment
		for i := range 3 {
			r, err := svc.Hello(ctx, agentapi.Hello{Serial: fmt.Sprintf("30000000%08x", i), MAC: "2c:cf:67:00:02:00"})
			if err != nil || r.Deployment == nil {
				t.Fatalf("hello %d: %+v %v", i, r, err)
			}
			deps = append(deps, r.Deployment)
			asRead(fmt.Sprintf("hello %d", i), open.ID)
		}
		if _, err := svc.ChangeBatch(ctx, open.ID, domain.BatchPause, 0); err != nil {
			t.Fatal(err)
		}
		asRead("pause", open.ID)
		small, err := svc.AddBatch(ctx, domain.BatchSpec{Venue: "CORO", Product: "RXP2", Count: 2, Priority: 5})
		if err != nil {
			t.Fatal(err)
		}
		asRead("new batch", small.ID)
		for i := range 3 {
			r, err := svc.Hello(ctx, agentapi.Hello{Serial: fmt.Sprintf("31000000%08x", i), MAC: "2c:cf:67:00:03:00"})
			if err != nil {
				t.Fatalf("hello %d into the batch of 2: %v", i, err)
			}
			if i < 2 {
				if r.Deployment == nil {
					t.Fatalf("hello %d into the batch of 2: %+v", i, r)
				}
				deps = append(deps, r.Deployment)
				asRead(fmt.Sprintf("hello %d into the batch of 2", i), small.ID)
			} else if r.Action != agentapi.ActionRetry {
				t.Fatalf("hello into the full batch: %+v", r)
			} else if b, ok := latest(small.ID); ok {
				t.Errorf("a retry published batch.changed %+v", b)
			}
		}
		for i, d := range []*agentapi.Deployment{deps[0], deps[3]} {
			batch := open.ID
			if i == 1 {
				batch = small.ID
			}
			if _, err := svc.Result(ctx, d.ID, d.Secret, agentapi.Result{Serial: serialOf(t, ctx, st, d.ID), Success: true,
				SHA256: strings.Repeat("ab", 32)}); err != nil {
				t.Fatal(err)
			}
			asRead(fmt.Sprintf("verified result %d", i), batch)
		}
		if _, err := svc.Result(ctx, deps[1].ID, deps[1].Secret, agentapi.Result{Serial: serialOf(t, ctx, st, deps[1].ID),
			Error: "write failed", Phase: agentapi.PhaseStreaming}); err != nil {
			t.Fatal(err)
		}
		asRead("failed result", open.ID)
	})
}

// serialOf is deployment id's board serial.
func serialOf(t *testing.T, ctx context.Context, st *store.Store, id int64) string {
	t.Helper()
	d, err := st.Deployment(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return d.Serial
}

// TestBatchEventsInCommitOrder: batch.changed events about one batch leave in the
// order of the changes they show, though each hello publishes its own
// transaction's row after its commit and the hellos' goroutines publish in any
// order: under a burst of hellos the deployments in progress only grow from event
// to event, and after a burst of hellos, results and an operator's changes at once,
// the last event shows the batch as the store reads it afterwards.
func TestBatchEventsInCommitOrder(t *testing.T) {
	bothDialects(t, func(t *testing.T) {
		ctx, svc, st, b, sub := subscribedBatch(t)
		first := helloBurst(t, ctx, svc, "40000000", 40)
		prev, n := -1, 0
		for len(sub.C) > 0 {
			ev := <-sub.C
			if ev.Type != events.BatchChanged {
				continue
			}
			got := ev.Data.(mgmtapi.Batch)
			if got.InFlight <= prev {
				t.Errorf("batch.changed with %d in progress after one with %d", got.InFlight, prev)
			}
			prev, n = got.InFlight, n+1
		}
		if prev != 40 {
			t.Errorf("the last batch.changed shows %d in progress, want 40", prev)
		}
		t.Logf("40 hellos, %d batch.changed events", n)

		var wg sync.WaitGroup
		wg.Go(func() { helloBurst(t, ctx, svc, "41000000", 20) })
		for i, d := range first[:20] {
			wg.Go(func() {
				r := agentapi.Result{Serial: serialOf(t, ctx, st, d.ID), Success: true, SHA256: strings.Repeat("ab", 32)}
				if i%2 == 1 {
					r = agentapi.Result{Serial: r.Serial, Error: "write failed", Phase: agentapi.PhaseStreaming}
				}
				if _, err := svc.Result(ctx, d.ID, d.Secret, r); err != nil {
					t.Errorf("result %d: %v", i, err)
				}
			})
		}
		wg.Go(func() {
			for p := range 5 {
				if _, err := svc.ChangeBatch(ctx, b.ID, domain.BatchPriority, p); err != nil {
					t.Errorf("priority %d: %v", p, err)
				}
			}
		})
		wg.Wait()
		var last mgmtapi.Batch
		for len(sub.C) > 0 {
			if ev := <-sub.C; ev.Type == events.BatchChanged {
				last = ev.Data.(mgmtapi.Batch)
			}
		}
		got, err := st.Batch(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := mgmtapi.Batch(got); last != want {
			t.Errorf("last batch.changed %+v, read afterwards %+v", last, want)
		}
	})
}
