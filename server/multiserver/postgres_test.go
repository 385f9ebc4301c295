package multiserver

import (
	"slices"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/rpi-deploy/rpi-deploy/internal/pgtest"
)

// only returns the boards (and their outcomes) for which keep is true.
func only(bs []board, out []outcome, keep func(outcome) bool) ([]board, []outcome) {
	var kb []board
	var ko []outcome
	for i, o := range out {
		if keep(o) {
			kb, ko = append(kb, bs[i]), append(ko, o)
		}
	}
	return kb, ko
}

func hasName(o outcome) bool { return o.hostname != "" }
func noName(o outcome) bool  { return o.hostname == "" }

// TestThreeServersOneKilledMidBatch: three rpi-deployd processes on one PostgreSQL
// 15, 1000 boards saying hello at once spread over them for a batch of 50 names,
// the server that acknowledged most names SIGKILLed once 20 are; a board whose
// connection fails asks the next server. Exactly 50 distinct names, none bound
// twice (in the answers and in the database), every acknowledged binding in the
// database, and, with the killed server started again, each named board's hello
// at every server answers its name and deployment; the others get none.
func TestThreeServersOneKilledMidBatch(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.CreateDB(t)
	srvs := startServers(t, 3, dsn)
	setupBatch(t, srvs)
	bs := boards(0x3a, fleetBoards)
	f := &fleetRun{urls: urls(srvs), names: batchNames}
	// The victim is the server that has acknowledged most names: it dies with names
	// acknowledged and, as a group commit binds many names at once, often with
	// names committed whose answers never left it.
	victim := -1
	var before []int64
	out := runWithFault(t, f, bs, acked(f, killAfter), func() {
		before = f.perServer()
		victim = slices.Index(before, slices.Max(before))
		srvs[victim].Kill()
	})
	checkAnswers(t, f)
	byName := named(t, bs, out, batchNames)
	checkStored(t, openDB(t, dsn), bs, out, byName)

	moved := 0
	for _, o := range out {
		if o.moved > 0 {
			moved++
		}
	}
	if moved == 0 {
		t.Errorf("no board lost its connection to the killed server: the kill came too late to show fail-over")
	}
	t.Logf("server %d killed; %d boards moved to another server; names acknowledged per server %v before the kill, %v in all; %d retry answers",
		victim, moved, before, f.perServer(), f.retries.Load())

	srvs[victim].Restart(t)
	nb, no := only(bs, out, hasName)
	for s := range srvs {
		rehello(t, f.urls, nb, no, func(int) int { return s })
	}
	ub, uo := only(bs, out, noName)
	rehello(t, f.urls, ub, uo, func(i int) int { return i % len(srvs) })
}

// TestPostgresRestartedMidBatch: three rpi-deployd processes on one PostgreSQL 15,
// 200 boards arriving 40 ms apart for a batch of 50 names; once 20 names are
// acknowledged PostgreSQL is stopped (clean shutdown, or SIGKILL of every server
// process, as a crash) for 2 s and started again, the rpi-deployd processes left
// running. Boards asking meanwhile are answered retry (never an error, never a
// name); after the restart the batch fills up to exactly 50 names, and nothing
// acknowledged is lost: every binding is in the database and re-hellos answer it.
func TestPostgresRestartedMidBatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		down func(*pgtest.Server) error
	}{
		{"stop", (*pgtest.Server).Stop},
		{"kill", (*pgtest.Server).Kill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pg := pgtest.Start(t)
			dsn := pg.CreateDB(t)
			srvs := startServers(t, 3, dsn)
			setupBatch(t, srvs)
			bs := boards(0x9b, 200)
			f := &fleetRun{urls: urls(srvs), names: batchNames, spread: 40 * time.Millisecond}
			var retriesDown, ackedDown, ackedUp int64
			out := runWithFault(t, f, bs, acked(f, killAfter), func() {
				if err := tc.down(pg); err != nil {
					t.Fatalf("PostgreSQL %s: %v", tc.name, err)
				}
				r0, a0 := f.retries.Load(), f.acked.Load()
				time.Sleep(2 * time.Second)
				retriesDown, ackedDown = f.retries.Load()-r0, f.acked.Load()-a0
				// Counted before the start: boards asking every 200 ms may take the
				// rest of the names while pg_ctl still waits to see it accept.
				ackedUp = f.acked.Load()
				if err := pg.Start(); err != nil {
					t.Fatalf("PostgreSQL start: %v\n%s", err, pg.Log())
				}
			})
			checkAnswers(t, f)
			byName := named(t, bs, out, batchNames)
			checkStored(t, openDB(t, dsn), bs, out, byName)
			if retriesDown == 0 {
				t.Errorf("no hello was answered retry while PostgreSQL was down")
			}
			if ackedUp >= batchNames {
				t.Errorf("all %d names were acknowledged before PostgreSQL was started again: the restart was not mid-batch", ackedUp)
			}
			t.Logf("while PostgreSQL was down: %d retry answers, %d names acknowledged (commits made just before it went); %d names after it came back",
				retriesDown, ackedDown, batchNames-ackedUp)
			for s := range srvs {
				rehello(t, f.urls, bs, out, func(int) int { return s })
			}
		})
	}
}
