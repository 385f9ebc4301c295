package domain_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

func BenchmarkHello(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	st, err := store.Open(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	svc := domain.New(st, events.New(0, 0), domain.Options{DataDir: dir, MaxStreams: 1 << 30})
	err = st.Update(ctx, func(t *store.Tx) error {
		t.PutImage(ctx, store.Image{Name: "img", Size: 1, SHA256: "x", CompressedSize: 1, Manifest: "{}", State: store.ImageReady})
		t.PutVenue(ctx, "BNCH", "")
		t.SetProductImage(ctx, "RXP2", "img")
		_, err := t.AddBatch(ctx, store.Batch{Venue: "BNCH", Product: "RXP2", State: store.BatchActive})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		r, err := svc.Hello(ctx, agentapi.Hello{Serial: fmt.Sprintf("%016x", i), MAC: "2c:cf:67:00:00:01"})
		if err != nil || r.Action != agentapi.ActionDeploy {
			b.Fatal(err, r)
		}
	}
}
