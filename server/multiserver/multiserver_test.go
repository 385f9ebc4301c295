package multiserver

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

const (
	fleetBoards = 1000 // boards saying hello at once
	batchNames  = 50   // the batch's size and its venue's pool of names
	killAfter   = 20   // names acknowledged before the fault
)

// startServers runs n rpi-deployd child processes on the database db ("" = each
// its own SQLite file), each with a data directory of its own. Boards answered
// retry come back after 200 ms (the default is 10 s) and, all connecting from
// 127.0.0.1, are not held to the per-address limits.
func startServers(t *testing.T, n int, db string) []*servertest.Server {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "serve.json")
	if err := os.WriteFile(cfg, []byte(`{"retry_after": "200ms"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	srvs := make([]*servertest.Server, n)
	warm := boards(0xee, n)
	for i := range srvs {
		srvs[i] = servertest.Start(t, servertest.Options{Process: true, DB: db, NoSourceLimits: true,
			Site: fmt.Sprintf("site-%d", i), Args: []string{"--config", cfg}})
		// A board of its own says hello (no batch yet: retry), so that each server
		// holds its database connections before the fleet comes.
		resp, status, body, err := hello(context.Background(), http.DefaultClient, srvs[i].URL, warm[i])
		if err != nil || status != http.StatusOK || resp.Action != agentapi.ActionRetry {
			t.Fatalf("server %d: first hello: %v HTTP %d %s %+v", i, err, status, body, resp)
		}
	}
	return srvs
}

// setupBatch makes, through srvs[0], an active batch of batchNames KXP2 boards at
// venue CORO with a pool of exactly batchNames names; the other servers (sites)
// pull its image before the boards come, so that every server can answer them.
func setupBatch(t *testing.T, srvs []*servertest.Server) {
	t.Helper()
	img := servertest.PackedImage(t, t.TempDir(), "multi", 1<<20, 0)
	info := srvs[0].Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: batchNames, Image: img})
	for _, s := range srvs[1:] {
		s.PullImage(t, info.ImageName)
	}
}

func urls(srvs []*servertest.Server) []string {
	u := make([]string, len(srvs))
	for i, s := range srvs {
		u[i] = s.URL
	}
	return u
}

// runWithFault runs f over bs and calls fault, on the test's goroutine, once
// ready holds after an acknowledged name; it returns the boards' outcomes.
func runWithFault(t *testing.T, f *fleetRun, bs []board, ready func() bool, fault func()) []outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mid := make(chan struct{})
	var once sync.Once
	f.onAck = func() {
		if ready() {
			once.Do(func() { close(mid) })
		}
	}
	done := make(chan []outcome, 1)
	go func() { done <- f.run(ctx, bs) }()
	select {
	case <-mid:
		fault()
	case out := <-done:
		t.Fatalf("the fleet ended (%d names acknowledged, per server %v) before the moment of the fault", f.acked.Load(), f.perServer())
		return out
	}
	out := <-done
	if ctx.Err() != nil {
		t.Fatalf("the fleet did not finish in 3 minutes: %d names acknowledged", f.acked.Load())
	}
	return out
}

// acked is a runWithFault condition: n names acknowledged.
func acked(f *fleetRun, n int) func() bool {
	return func() bool { return f.acked.Load() >= int64(n) }
}

// checkAnswers fails the test on answers that are neither a deploy nor a retry.
func checkAnswers(t *testing.T, f *fleetRun) {
	t.Helper()
	for i, s := range f.bad {
		if i == 10 {
			t.Errorf("… %d hellos in all answered with an error", len(f.bad))
			break
		}
		t.Errorf("hello answered with an error: %s", s)
	}
	for _, s := range f.odd {
		t.Errorf("hello answered neither deploy nor retry: %s", s)
	}
}

// TestOneServerKilledMidBatchSQLite is the single-server counterpart of the
// PostgreSQL tests, on the embedded SQLite store: rpi-deployd SIGKILLed while 1000
// boards ask for a batch of 50 names and started again; every board keeps at it.
// Exactly 50 names, each acknowledged to one board, all of them in the database
// file, and each board's hello answered the same afterwards.
func TestOneServerKilledMidBatchSQLite(t *testing.T) {
	srvs := startServers(t, 1, "")
	setupBatch(t, srvs)
	bs := boards(0x51, fleetBoards)
	f := &fleetRun{urls: urls(srvs), names: batchNames}
	out := runWithFault(t, f, bs, acked(f, killAfter), func() {
		srvs[0].Kill()
		srvs[0].Restart(t)
	})
	checkAnswers(t, f)
	byName := named(t, bs, out, batchNames)
	checkStored(t, openDB(t, filepath.Join(srvs[0].DataDir, store.FileName)), bs, out, byName)
	rehello(t, f.urls, bs, out, func(int) int { return 0 })
	t.Logf("%d boards, %d retry answers, %d failed connections while the server was down", len(bs), f.retries.Load(), f.connErr[0])
}
