package domain

import (
	"context"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// TestPublishBatchOrder: publishBatch publishes a batch's states in the order of
// their changes (batchOrder), whatever the order of the calls: a state older than
// one already published about the same batch is left out, while other batches go on
// by their own; a state to be read (nil) is read after its change and published
// when it is the newest.
func TestPublishBatchOrder(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenDB(ctx, store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var id int64
	if err := st.Update(ctx, func(t *store.Tx) error {
		if _, err := t.PutVenue(ctx, "CORO", "Coronation"); err != nil {
			return err
		}
		if err := t.PutProduct(ctx, store.Product{Code: "RXP2", Name: "RXP2", Naming: store.NamingSerial, FirstBoot: "{}"}); err != nil {
			return err
		}
		id, err = t.AddBatch(ctx, store.Batch{Venue: "CORO", Product: "RXP2", State: store.BatchActive})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	bus := events.New(0, 0)
	sub, _ := bus.Subscribe(0)
	defer sub.Close()
	s := New(st, bus, Options{DataDir: t.TempDir()})
	row := func(batch int64, inFlight int) *mgmtapi.Batch { return &mgmtapi.Batch{ID: batch, InFlight: inFlight} }
	o1, o2, o3, o4 := s.batchOrder(), s.batchOrder(), s.batchOrder(), s.batchOrder()
	s.publishBatch(ctx, 7, row(7, 2), o2)
	s.publishBatch(ctx, 7, row(7, 1), o1) // older: left out
	s.publishBatch(ctx, 8, row(8, 1), o1) // another batch
	s.publishBatch(ctx, 7, row(7, 3), o3)
	s.publishBatch(ctx, 7, row(7, 3), o3) // the same change again: once
	s.publishBatch(ctx, 0, row(0, 9), o4) // no batch: nothing
	s.publishBatch(ctx, id, nil, o4)      // read now
	s.publishBatch(ctx, id, row(id, 5), o1)
	var got []mgmtapi.Batch
	for len(sub.C) > 0 {
		if ev := <-sub.C; ev.Type == events.BatchChanged {
			got = append(got, ev.Data.(mgmtapi.Batch))
		}
	}
	b, err := st.Batch(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := []mgmtapi.Batch{*row(7, 2), *row(8, 1), *row(7, 3), mgmtapi.Batch(b)}
	if len(got) != len(want) {
		t.Fatalf("published %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
