package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/agent/client"
	"github.com/rpi-deploy/rpi-deploy/agent/retry"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// TestResultAfterSecretReplaced, against the real rpi-deployd: the client sends the
// deployment secret from its hello answer with events and the result. When another
// host says hello as this board's serial (which replaces the secret), the event is
// refused (ErrSecret), and the result still gets through: the client says hello
// again, gets the same deployment with a new secret, and posts with that.
func TestResultAfterSecretReplaced(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	img := servertest.PackedImage(t, t.TempDir(), "secret-test", 1<<20, 0)
	fleet := srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 1, Image: img})
	ctx := context.Background()
	h := agentapi.Hello{Serial: "10000000c0ffee01", MAC: "2c:cf:67:00:00:01"}
	c := &client.Client{Server: srv.URL, Retry: retry.Policy{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, Budget: 2 * time.Second}}
	resp, err := c.Hello(ctx, h)
	if err != nil || resp.Deployment == nil || resp.Deployment.Secret == "" {
		t.Fatalf("hello: %+v %v", resp, err)
	}
	id := resp.Deployment.ID
	// The image, downloaded with the secret (a success needs it sent whole).
	req, _ := http.NewRequest(http.MethodGet, resp.Deployment.Image.URL, nil)
	req.Header.Set(agentapi.HeaderSecret, resp.Deployment.Secret)
	ir, err := http.DefaultClient.Do(req)
	if err != nil || ir.StatusCode != 200 {
		t.Fatalf("image: %v %v", ir, err)
	}
	if n, err := io.Copy(io.Discard, ir.Body); err != nil || n != resp.Deployment.Image.CompressedSize {
		t.Fatalf("image: %d bytes, %v", n, err)
	}
	ir.Body.Close()
	if err := c.Event(ctx, id, agentapi.Event{Phase: agentapi.PhaseStreaming}); err != nil {
		t.Fatalf("event with the secret: %v", err)
	}

	// Someone else says hello as this serial.
	b, _ := json.Marshal(h)
	r, err := http.Post(srv.URL+agentapi.PathHello, "application/json", bytes.NewReader(b))
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("other hello: %v %v", r, err)
	}
	r.Body.Close()

	if err := c.Event(ctx, id, agentapi.Event{Phase: agentapi.PhaseVerifying}); !errors.Is(err, client.ErrSecret) {
		t.Errorf("event after the secret was replaced: %v, want ErrSecret", err)
	}
	if err := c.Result(ctx, id, agentapi.Result{Serial: h.Serial, Success: true, SHA256: fleet.Manifest.SHA256}); err != nil {
		t.Fatalf("result: %v", err)
	}
	var d mgmtapi.Deployment
	if err := srv.Do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/deployments/%d", id), nil, &d); err != nil || d.State != mgmtapi.DeployVerified {
		t.Fatalf("deployment %d: %+v %v, want verified", id, d, err)
	}
}
