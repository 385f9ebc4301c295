package domain_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
)

// TestHelloP2PModes: the peer-to-peer modes HelloP2P returns with a new deployment
// (read with its allocation) decide as P2PFor decides from the stored deployment,
// for every batch mode, image mode and server default; a re-hello of the open
// deployment and a retry return them not Known.
func TestHelloP2PModes(t *testing.T) {
	bothDialects(t, func(t *testing.T) {
		svc, st, _, _ := newClockedService(t)
		ctx := domain.WithActor(context.Background(), "test")
		b := rxp2Batch(t, ctx, svc, st)
		modes := []string{"on", "off", "inherit"}
		n := 0
		for _, bm := range modes {
			for _, im := range modes {
				if _, err := svc.SetBatchP2P(ctx, b.ID, bm); err != nil {
					t.Fatal(err)
				}
				if _, err := svc.SetImageP2P(ctx, "img", im); err != nil {
					t.Fatal(err)
				}
				n++
				hl := agentapi.Hello{Serial: fmt.Sprintf("30000000%08x", n), MAC: "2c:cf:67:00:02:00"}
				r, m, err := svc.HelloP2P(ctx, hl)
				if err != nil || r.Deployment == nil || !m.Known {
					t.Fatalf("batch %s image %s: %+v %+v %v", bm, im, r, m, err)
				}
				for _, def := range []bool{true, false} {
					want, err := svc.P2PFor(ctx, r.Deployment.ID, def)
					if err != nil {
						t.Fatal(err)
					}
					if got := m.On(def); got != want {
						t.Errorf("batch %s image %s default %v: HelloP2P says %v (%+v), P2PFor %v", bm, im, def, got, m, want)
					}
				}
				again, m, err := svc.HelloP2P(ctx, hl)
				if err != nil || again.Deployment == nil || again.Deployment.ID != r.Deployment.ID || m.Known {
					t.Errorf("re-hello: %+v %+v %v; want the same deployment, modes not known", again, m, err)
				}
			}
		}
		if _, err := svc.SetBatchP2P(ctx, b.ID, "on"); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.ChangeBatch(ctx, b.ID, domain.BatchPause, 0); err != nil {
			t.Fatal(err)
		}
		r, m, err := svc.HelloP2P(ctx, agentapi.Hello{Serial: "3000000100000000", MAC: "2c:cf:67:00:02:01"})
		if err != nil || r.Action != agentapi.ActionRetry || m.Known {
			t.Errorf("no active batch: %+v %+v %v; want retry, modes not known", r, m, err)
		}
	})
}
