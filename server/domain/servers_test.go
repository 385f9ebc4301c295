package domain_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// TestAllocationAcrossServers: two services, each on a store of its own opened on
// one database (two rpi-deployd on one PostgreSQL; on SQLite, two on one file),
// answer 80 concurrent hellos of new boards for a pool of 30 names: exactly 30 get
// a name, no name twice, every answered name bound to its board in the database,
// the other 50 told to retry; then each named board says hello at the other server
// and gets the same name. It pins that the writes of several stores are serial (the
// advisory lock on PostgreSQL): without it two servers would hand out one free name.
func TestAllocationAcrossServers(t *testing.T) {
	bothDialects(t, func(t *testing.T) {
		ctx := context.Background()
		cfg := storeConfig(t)
		var svcs [2]*domain.Service
		var st *store.Store
		for i := range svcs {
			s, err := store.OpenDB(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			st = s
			svcs[i] = domain.New(s, events.New(0, 0), domain.Options{DataDir: cfg.Dir, MaxStreams: 1 << 20,
				MaxOpenPerSource: -1, NewSerialsPerMinute: -1})
		}
		const names, boards = 30, 80
		err := st.Update(ctx, func(tx *store.Tx) error {
			if err := tx.PutImage(ctx, store.Image{Name: "img", Size: 1, SHA256: "x", CompressedSize: 1, Manifest: "{}",
				State: store.ImageReady}); err != nil {
				return err
			}
			if _, err := tx.PutVenue(ctx, "CORO", ""); err != nil {
				return err
			}
			if err := tx.SetProductImage(ctx, "KXP2", "img"); err != nil {
				return err
			}
			for seq := 1; seq <= names; seq++ {
				if err := tx.AddPoolName(ctx, store.PoolName{Name: domain.PoolHostname("KXP2", "CORO", 3, seq), Venue: "CORO",
					Product: "KXP2", Seq: seq}); err != nil {
					return err
				}
			}
			_, err := tx.AddBatch(ctx, store.Batch{Venue: "CORO", Product: "KXP2", State: store.BatchActive})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		serial := func(i int) string { return fmt.Sprintf("20000000%08x", i) }
		hello := func(svc *domain.Service, i int) (agentapi.HelloResponse, error) {
			return svc.Hello(ctx, agentapi.Hello{Serial: serial(i), MAC: fmt.Sprintf("2c:cf:67:00:%02x:%02x", i>>8, i&0xff)})
		}
		answers := make([]agentapi.HelloResponse, boards)
		var wg sync.WaitGroup
		for i := range boards {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := hello(svcs[i%2], i)
				if err != nil {
					t.Errorf("hello %d: %v", i, err)
				}
				answers[i] = r
			}()
		}
		wg.Wait()
		holder := map[string]int{}
		for i, r := range answers {
			switch r.Action {
			case agentapi.ActionDeploy:
				if j, dup := holder[r.Deployment.Hostname]; dup {
					t.Errorf("%s given to board %d and board %d", r.Deployment.Hostname, j, i)
				}
				holder[r.Deployment.Hostname] = i
			case agentapi.ActionRetry:
			default:
				t.Errorf("board %d: %+v", i, r)
			}
		}
		if len(holder) != names {
			t.Errorf("%d names handed out, want %d", len(holder), names)
		}
		for name, i := range holder {
			p, err := st.PoolName(ctx, name)
			if err != nil || p.Serial != serial(i) {
				t.Errorf("%s in the database: %+v %v, want bound to %s", name, p, err, serial(i))
			}
			r, err := hello(svcs[(i+1)%2], i) // the other server
			if err != nil || r.Deployment == nil || r.Deployment.Hostname != name {
				t.Errorf("re-hello of board %d at the other server: %+v %v, want %s", i, r, err, name)
			}
		}
	})
}
