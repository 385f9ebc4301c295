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

// TestKnownBoardsCostNoNewSerials: a hello takes a unit of its source's
// new-serial budget before its transaction and gives it back when the board was
// already stored, so a board that says hello again and again never uses the budget
// up: with 2 new serials a minute, board A's five hellos leave room for B, and C
// (the third new serial) is answered retry and leaves no board behind. Once over
// budget, a known board still gets its answer (its serial is read first).
func TestKnownBoardsCostNoNewSerials(t *testing.T) {
	bothDialects(t, func(t *testing.T) {
		ctx := domain.WithSource(context.Background(), "10.42.0.7")
		cfg := storeConfig(t)
		st, err := store.OpenDB(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		svc := domain.New(st, events.New(0, 0), domain.Options{DataDir: cfg.Dir, NewSerialsPerMinute: 2, MaxOpenPerSource: -1,
			OverLimitDelay: -1})
		rxp2Batch(t, ctx, svc, st)
		hello := func(serial string) agentapi.HelloResponse {
			t.Helper()
			r, err := svc.Hello(ctx, agentapi.Hello{Serial: serial, MAC: "2c:cf:67:00:00:01"})
			if err != nil {
				t.Fatalf("hello %s: %v", serial, err)
			}
			return r
		}
		for i := range 5 {
			if r := hello("10000000000000a1"); r.Action != agentapi.ActionDeploy {
				t.Fatalf("A's hello %d: %s %s, want deploy", i+1, r.Action, r.Reason)
			}
		}
		if r := hello("10000000000000b2"); r.Action != agentapi.ActionDeploy {
			t.Fatalf("B (the second new serial): %s %s, want deploy", r.Action, r.Reason)
		}
		if r := hello("10000000000000c3"); r.Action != agentapi.ActionRetry {
			t.Fatalf("C (the third new serial): %s, want retry", r.Action)
		}
		if _, err := st.Board(ctx, "10000000000000c3"); err == nil {
			t.Error("C's refused hello left a board")
		}
		for _, serial := range []string{"10000000000000a1", "10000000000000b2"} {
			if r := hello(serial); r.Action != agentapi.ActionDeploy {
				t.Errorf("%s over budget: %s %s, want its deployment again", serial, r.Action, r.Reason)
			}
		}
		if r := hello(fmt.Sprintf("%016x", 0xd4)); r.Action != agentapi.ActionRetry {
			t.Errorf("a fourth new serial: %s, want retry", r.Action)
		}
	})
}
