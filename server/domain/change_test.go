package domain_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// storeTypeIn names the first type of package server/store found in v (through
// maps, slices and pointers), "" when none.
func storeTypeIn(v reflect.Value) string {
	if !v.IsValid() {
		return ""
	}
	if strings.HasSuffix(v.Type().PkgPath(), "/server/store") {
		return v.Type().String()
	}
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if !v.IsNil() {
			return storeTypeIn(v.Elem())
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			if s := storeTypeIn(v.MapIndex(k)); s != "" {
				return s
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			if s := storeTypeIn(v.Index(i)); s != "" {
				return s
			}
		}
	}
	return ""
}

// TestEventsCarryWireTypes drives a board from hello to a verified result through
// the operator's changes and pins that every event published carries the
// management API's wire types (server/mgmtapi), never a store row: the dashboard
// reads the event stream's JSON as the API's.
func TestEventsCarryWireTypes(t *testing.T) {
	bothDialects(t, func(t *testing.T) {
		svc, st, bus, _ := newClockedService(t)
		ctx := domain.WithActor(context.Background(), "test")
		sub, _ := bus.Subscribe(0)
		defer sub.Close()
		imageAtCoro(t, ctx, svc, st, "KXP2")
		must := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		_, err := svc.GeneratePool(ctx, "CORO", "KXP2", 3, 0)
		must("pool", err)
		_, err = svc.RetirePoolName(ctx, "KXP2-CORO-003", true)
		must("retire", err)
		b, err := svc.AddBatch(ctx, domain.BatchSpec{Venue: "CORO", Product: "KXP2", Count: 1})
		must("batch", err)
		r, err := svc.Hello(ctx, agentapi.Hello{Serial: "10000000aaaaaaaa", MAC: "2c:cf:67:00:00:0a"})
		must("hello", err)
		if r.Deployment == nil {
			t.Fatalf("hello: %+v", r)
		}
		_, err = svc.Hello(ctx, agentapi.Hello{Serial: "10000000bbbbbbbb", MAC: "2c:cf:67:00:00:0b"}) // retry: batch full
		must("second hello", err)
		_, err = svc.Event(ctx, r.Deployment.ID, r.Deployment.Secret, agentapi.Event{Phase: agentapi.PhaseStreaming, Bytes: 1, Total: 1})
		must("event", err)
		_, err = svc.Result(ctx, r.Deployment.ID, r.Deployment.Secret, agentapi.Result{Serial: "10000000aaaaaaaa", Success: true,
			SHA256: strings.Repeat("ab", 32)})
		must("result", err)
		_, err = svc.SetReimage(ctx, "10000000aaaaaaaa", true)
		must("reimage", err)
		_, err = svc.ChangeBatch(ctx, b.ID, domain.BatchPriority, 7)
		must("priority", err)
		must("netboot", svc.RecordNetboot(ctx, domain.NetbootEvent{Serial: "10000000aaaaaaaa", Kind: domain.NetbootDHCPOffer, IP: "10.0.0.9"}))

		seen := map[string]bool{}
		for len(sub.C) > 0 {
			ev := <-sub.C
			seen[ev.Type] = true
			if s := storeTypeIn(reflect.ValueOf(ev.Data)); s != "" {
				t.Errorf("event %s carries %s", ev.Type, s)
			}
			if ev.SSE == nil {
				t.Errorf("event %s did not encode", ev.Type)
			}
		}
		for _, typ := range []string{events.VenueChanged, events.ProductChanged, events.PoolChanged, events.BatchChanged,
			events.BoardChanged, events.DeploymentCreated, events.HelloRetry, events.DeploymentProgress,
			events.DeploymentFinished, events.BoardNetboot} {
			if !seen[typ] {
				t.Errorf("no %s event", typ)
			}
		}
	})
}

// TestFailedChangeLeavesNothing pins the one shape of an operator's change: when
// the write fails, nothing is written, audited or published.
func TestFailedChangeLeavesNothing(t *testing.T) {
	bothDialects(t, func(t *testing.T) {
		svc, st, bus, _ := newClockedService(t)
		ctx := domain.WithActor(context.Background(), "test")
		sub, _ := bus.Subscribe(0)
		defer sub.Close()
		if _, err := svc.ChangeBatch(ctx, 42, domain.BatchPause, 0); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("pause of a batch that does not exist: %v", err)
		}
		if _, err := svc.ReleasePoolName(ctx, "KXP2-NONE-001"); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("release of a name that does not exist: %v", err)
		}
		if _, err := svc.AddBatch(ctx, domain.BatchSpec{Venue: "NONE", Product: "KXP2"}); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("batch for a venue that does not exist: %v", err)
		}
		if len(sub.C) != 0 {
			t.Errorf("%d events published by failed changes", len(sub.C))
		}
		if l, err := st.AuditLog(ctx, store.AuditFilter{}); err != nil || len(l) != 0 {
			t.Errorf("audit after failed changes: %+v %v", l, err)
		}
		if bs, err := svc.Batches(ctx, ""); err != nil || len(bs) != 0 {
			t.Errorf("batches after failed changes: %+v %v", bs, err)
		}
	})
}
