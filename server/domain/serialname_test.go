package domain_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// TestSerialNameCheckedForItsBatch: a hello checks, with its facts, whether another
// board holds the serial name it expects to give (in the first batch a new board
// may join), and does not ask again for that name; the answer is never taken for
// another name. Here the first batch (ARIA, the higher priority) cannot take the
// board (its image is not ready), so the board goes to the CORO batch, whose short
// serial name another board holds: it gets the 12-digit name, not the taken one.
func TestSerialNameCheckedForItsBatch(t *testing.T) {
	bothDialects(t, func(t *testing.T) {
		ctx := context.Background()
		svc, st, _ := newService(t)
		imageAtCoro(t, ctx, svc, st, "RXP2")
		err := st.Update(ctx, func(tx *store.Tx) error {
			if _, err := tx.PutVenue(ctx, "ARIA", "Aria"); err != nil {
				return err
			}
			if err := tx.PutImage(ctx, store.Image{Name: "next", Size: 1, SHA256: strings.Repeat("cd", 32), CompressedSize: 1,
				FirstBoot: "firstrun", Manifest: "{}", State: store.ImageUploading}); err != nil {
				return err
			}
			if _, err := tx.AddBatch(ctx, store.Batch{Venue: "ARIA", Product: "RXP2", Image: "next", Priority: 10,
				State: store.BatchActive}); err != nil {
				return err
			}
			if _, err := tx.AddBatch(ctx, store.Batch{Venue: "CORO", Product: "RXP2", State: store.BatchActive}); err != nil {
				return err
			}
			_, err := tx.SaveBoard(ctx, store.Board{Serial: "20000000abcdef12", Hostname: "RXP2-CORO-ABCDEF12"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		r, err := svc.Hello(ctx, agentapi.Hello{Serial: "10000000abcdef12", MAC: "2c:cf:67:00:00:01"})
		if err != nil || r.Deployment == nil || r.Deployment.Hostname != "RXP2-CORO-0000ABCDEF12" {
			t.Fatalf("hello: %+v, %v; want a deployment as RXP2-CORO-0000ABCDEF12", r, err)
		}
	})
}
