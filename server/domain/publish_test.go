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
		svc, st, bus, _ := newClockedService(t)
		ctx := domain.WithActor(context.Background(), "test")
		b := rxp2Batch(t, ctx, svc, st)
		sub, _ := bus.Subscribe(0)
		defer sub.Close()
		const n = 40
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := svc.Hello(ctx, agentapi.Hello{Serial: fmt.Sprintf("20000000%08x", i), MAC: "2c:cf:67:00:01:00"})
				if err != nil || r.Deployment == nil {
					t.Errorf("hello %d: %+v %v", i, r, err)
				}
			}()
		}
		wg.Wait()
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
