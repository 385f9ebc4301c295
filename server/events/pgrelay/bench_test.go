package pgrelay

import (
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/internal/pgtest"
	"github.com/rpi-deploy/rpi-deploy/server/events"
)

// deliver publishes n events at pub, in bursts of burst, and waits after each burst
// until sub's cursor has read them all; it returns the time taken.
func deliver(tb testing.TB, pub, sub *events.Bus, n, burst int) time.Duration {
	cur, _ := sub.Follow(0)
	want := sub.Seq() + int64(n)
	start := time.Now()
	for sent := 0; sent < n; {
		for i := 0; i < burst && sent < n; i++ {
			pub.Publish(events.DeploymentProgress, map[string]any{"id": sent, "phase": "write", "bytes": sent << 20})
			sent++
		}
		for sub.Seq() < want-int64(n-sent) {
			select {
			case <-cur.Ready():
				cur.Read(nil, 0)
			case <-time.After(time.Minute):
				tb.Fatalf("events never arrived: at %d of %d", sub.Seq(), want)
			}
		}
	}
	return time.Since(start)
}

// BenchmarkDelivery: the time from Publish at one server to the event being read
// from another server's bus, through PostgreSQL (two relays on one database), against
// the in-process bus of one server (the SQLite mode) in the same run: one event at a
// time (latency) and bursts of 1000 (the relay writes a burst in few transactions).
// Reports ns per event of each and their ratio.
//
//	go test -run '^$' -bench Delivery -benchtime 2000x ./server/events/pgrelay/
func BenchmarkDelivery(b *testing.B) {
	dsn := pgtest.DB(b)
	migrate(b, dsn)
	for _, burst := range []int{1, 1000} {
		b.Run(map[int]string{1: "one-at-a-time", 1000: "bursts-of-1000"}[burst], func(b *testing.B) {
			local := events.New(0, 0)
			a, c := start(b, dsn, "north", Options{}), start(b, dsn, "south", Options{})
			deliver(b, a.bus, c.bus, 10, 1) // connections warm
			b.ResetTimer()
			pg := deliver(b, a.bus, c.bus, b.N, burst)
			base := deliver(b, local, local, b.N, burst)
			b.StopTimer()
			b.ReportMetric(float64(pg.Nanoseconds())/float64(b.N), "ns/event-pg")
			b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "ns/event-inprocess")
			b.ReportMetric(float64(pg)/float64(base), "ratio")
		})
	}
}
