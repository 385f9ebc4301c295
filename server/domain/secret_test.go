package domain_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// TestSecretNamesItsDeployment: a deployment secret is "ID.KEY", and the image
// download (which names no deployment) is checked against the row that ID finds,
// with no index of secrets. Another deployment's ID in front of a KEY, a KEY
// without its ID, a malformed ID, or the secret of a closed deployment is
// ErrSecret and marks nothing streamed. A deployment opened before this format
// (its hash is of the KEY alone) still takes its events with that KEY; its image
// download is refused until a new hello gives it an "ID.KEY" secret.
func TestSecretNamesItsDeployment(t *testing.T) {
	bothDialects(t, func(t *testing.T) {
		ctx := context.Background()
		svc, st, _ := newService(t)
		rxp2Batch(t, ctx, svc, st)
		hello := func(serial string) *agentapi.Deployment {
			t.Helper()
			r, err := svc.Hello(ctx, agentapi.Hello{Serial: serial, MAC: "2c:cf:67:00:00:01"})
			if err != nil || r.Deployment == nil {
				t.Fatalf("hello %s: %+v %v", serial, r, err)
			}
			return r.Deployment
		}
		a, b := hello("10000000000000a1"), hello("10000000000000b2")
		for _, d := range []*agentapi.Deployment{a, b} {
			id, key, ok := strings.Cut(d.Secret, ".")
			if !ok || id != strconv.FormatInt(d.ID, 10) || len(key) != 43 {
				t.Fatalf("secret of deployment %d: %d characters, want \"%d.\" and a 43-character key", d.ID, len(d.Secret), d.ID)
			}
		}
		_, bKey, _ := strings.Cut(b.Secret, ".")
		_, aKey, _ := strings.Cut(a.Secret, ".")
		for _, tc := range []struct{ name, secret string }{
			{"B's key under A's ID", strconv.FormatInt(a.ID, 10) + "." + bKey},
			{"A's key without its ID", aKey},
			{"A's key under an ID with a leading zero", "0" + a.Secret},
			{"A's key under a negative ID", "-" + a.Secret},
			{"A's ID and nothing after the dot", strconv.FormatInt(a.ID, 10) + "."},
			{"an ID of no deployment", "999999." + aKey},
		} {
			if _, err := svc.StreamStarted(ctx, tc.secret); !errors.Is(err, domain.ErrSecret) {
				t.Errorf("image download with %s: %v, want ErrSecret", tc.name, err)
			}
		}
		if _, err := svc.Event(ctx, a.ID, strconv.FormatInt(b.ID, 10)+"."+aKey, agentapi.Event{Phase: agentapi.PhaseStreaming}); !errors.Is(err, domain.ErrSecret) {
			t.Errorf("event with A's key under B's ID: %v, want ErrSecret", err)
		}
		if d, err := st.Deployment(ctx, a.ID); err != nil || d.Phase != agentapi.PhaseHello {
			t.Fatalf("A after the refused requests: %+v %v, want phase hello", d, err)
		}
		if id, err := svc.StreamStarted(ctx, a.Secret); err != nil || id != a.ID {
			t.Fatalf("image download with A's secret: %d %v, want %d", id, err, a.ID)
		}

		// A deployment of the older format: its hash is of the key alone.
		const oldKey = "Yk3Lh0fNvQ2p9xWm4sTq8uRz1cJd6eAb5gHi7kOo0lP"
		sum := sha256.Sum256([]byte(oldKey))
		var old int64
		err := st.Update(ctx, func(t *store.Tx) error {
			if _, err := t.SaveBoard(ctx, store.Board{Serial: "10000000000000c3", MAC: "2c:cf:67:00:00:03"}); err != nil {
				return err
			}
			d, err := t.AddClaimedDeployment(ctx, store.Deployment{Serial: "10000000000000c3", Venue: "CORO", Product: "RXP2",
				Hostname: "RXP2-CORO-000000C3", Image: "img", Phase: agentapi.PhaseHello, Total: 1}, hex.EncodeToString(sum[:]), "")
			old = d.ID
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Event(ctx, old, oldKey, agentapi.Event{Phase: agentapi.PhaseStreaming}); err != nil {
			t.Errorf("event of an older deployment with its key: %v", err)
		}
		if _, err := svc.StreamStarted(ctx, oldKey); !errors.Is(err, domain.ErrSecret) {
			t.Errorf("image download with a key of the older format: %v, want ErrSecret", err)
		}
		r, err := svc.Hello(ctx, agentapi.Hello{Serial: "10000000000000c3", MAC: "2c:cf:67:00:00:03"})
		if err != nil || r.Deployment == nil || r.Deployment.ID != old {
			t.Fatalf("hello of the older deployment's board: %+v %v", r, err)
		}
		if id, err := svc.StreamStarted(ctx, r.Deployment.Secret); err != nil || id != old {
			t.Errorf("image download with the new secret: %d %v, want %d", id, err, old)
		}
	})
}
