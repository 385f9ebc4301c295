package domain_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// BenchmarkHello: one new board's hello after another, each its own commit.
func BenchmarkHello(b *testing.B) {
	svc := helloBenchService(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		r, err := svc.Hello(ctx, agentapi.Hello{Serial: fmt.Sprintf("%016x", i), MAC: "2c:cf:67:00:00:01"})
		if err != nil || r.Action != agentapi.ActionDeploy {
			b.Fatal(err, r)
		}
	}
}

// BenchmarkHelloBurst: new boards' hellos from 256 goroutines at once, so that
// the writer's groups fill as in a fleet's burst: ns/op is the wall time per hello
// with the machine's cores, most of it the writer's work (which runs on one);
// cpu-ms/hello the process's CPU time (user and system) per hello, steadier than
// the wall time on a shared machine.
func BenchmarkHelloBurst(b *testing.B) {
	svc := helloBenchService(b)
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	cpu := processCPU()
	defer func() {
		b.ReportMetric(float64(processCPU()-cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/hello")
	}()
	b.ResetTimer()
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				r, err := svc.Hello(ctx, agentapi.Hello{Serial: fmt.Sprintf("%016x", i), MAC: "2c:cf:67:00:00:01"})
				if err != nil || r.Action != agentapi.ActionDeploy {
					b.Error(err, r)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// helloBenchService is a service on a fresh SQLite store with one active batch
// of serial-named RXP2 boards at venue BNCH and a ready image.
func helloBenchService(b *testing.B) *domain.Service {
	ctx := context.Background()
	dir := b.TempDir()
	st, err := store.Open(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
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
	return svc
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
