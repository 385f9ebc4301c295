package domain_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/internal/pgtest"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// BenchmarkHelloBurst3Stores measures how the writes of three servers on one
// PostgreSQL are made serial (docs/architecture.md, "Several servers on one
// PostgreSQL"): three services, each on its own store (writer connection and
// group commit), answer a burst of 600 hellos of new boards sent at once, spread
// evenly over them, all for one batch of a 600-name pool. lock is the store's
// write lock (advisory lock per group); serializable is the alternative
// (SERIALIZABLE transactions, a group run again after a serialization failure).
// It reports the hellos' p50 and p99 latency in ms and how many hellos failed:
// with the lock every hello must get a name; a serializable group that loses to
// the others 20 times in a row fails its hellos (SQLSTATE 40001), counted.
// scripts/bench/13-hello-pg.sh prints them as bench lines.
func BenchmarkHelloBurst3Stores(b *testing.B) {
	for _, mode := range []string{"lock", "serializable"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			cfg := store.Config{Dir: b.TempDir(), URL: pgtest.DB(b), Serializable: mode == "serializable"}
			var svcs [3]*domain.Service
			var st *store.Store
			for i := range svcs {
				s, err := store.OpenDB(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { s.Close() })
				st = s
				svcs[i] = domain.New(s, events.New(0, 0), domain.Options{DataDir: cfg.Dir, MaxStreams: 1 << 20,
					MaxOpenPerSource: -1, NewSerialsPerMinute: -1})
			}
			const boards = 600
			var lat []time.Duration
			var failed atomic.Int64
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				venue := fmt.Sprintf("B%c%c%c", 'A'+i/676%26, 'A'+i/26%26, 'A'+i%26)
				err := st.Update(ctx, func(tx *store.Tx) error {
					if i == 0 {
						if err := tx.PutImage(ctx, store.Image{Name: "img", Size: 1, SHA256: "x", CompressedSize: 1, Manifest: "{}",
							State: store.ImageReady}); err != nil {
							return err
						}
						if err := tx.SetProductImage(ctx, "KXP2", "img"); err != nil {
							return err
						}
					}
					if _, err := tx.PutVenue(ctx, venue, ""); err != nil {
						return err
					}
					for seq := 1; seq <= boards; seq++ {
						if err := tx.AddPoolName(ctx, store.PoolName{Name: domain.PoolHostname("KXP2", venue, 3, seq), Venue: venue,
							Product: "KXP2", Seq: seq}); err != nil {
							return err
						}
					}
					// The batches before are full (600 open): this one is the only one a
					// new board can join.
					if _, err := tx.AddBatch(ctx, store.Batch{Venue: venue, Product: "KXP2", State: store.BatchActive,
						Count: boards}); err != nil {
						return err
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				took := make([]time.Duration, boards)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for j := range boards {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						t0 := time.Now()
						r, err := svcs[j%3].Hello(ctx, agentapi.Hello{Serial: fmt.Sprintf("3%03x%012x", i, j),
							MAC: fmt.Sprintf("2c:cf:67:%02x:%02x:%02x", i&0xff, j>>8, j&0xff)})
						took[j] = time.Since(t0)
						switch {
						case err != nil && mode == "serializable" && serializationFailure(err):
							failed.Add(1) // its group lost maxSerialAttempts times in a row
						case err != nil || r.Action != agentapi.ActionDeploy:
							b.Errorf("hello %d: %+v %v", j, r, err)
						}
					}()
				}
				close(start)
				wg.Wait()
				lat = append(lat, took...)
			}
			slices.Sort(lat)
			ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / 1e6 }
			b.ReportMetric(ms(0.50), "p50-ms")
			b.ReportMetric(ms(0.99), "p99-ms")
			b.ReportMetric(float64(failed.Load()), "failed-hellos")
		})
	}
}

// serializationFailure reports whether err is PostgreSQL's serialization failure
// (SQLSTATE 40001).
func serializationFailure(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "40001"
}
