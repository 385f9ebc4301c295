package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

func event(t *testing.T, srv *servertest.Server, d *agentapi.Deployment, e agentapi.Event) int {
	t.Helper()
	code, body, err := postSecret(t, srv.URL+fmt.Sprintf(agentapi.PathEvents, d.ID), d.Secret, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code != 200 {
		t.Logf("event %d %s: %d %s", d.ID, e.Phase, code, body)
	}
	return code
}

// result posts r for d as the board serial, with d's secret.
func result(t *testing.T, srv *servertest.Server, d *agentapi.Deployment, serial string, r agentapi.Result) (mgmtapi.Deployment, int) {
	t.Helper()
	var out mgmtapi.Deployment
	r.Serial = serial
	code, body, err := postSecret(t, srv.URL+fmt.Sprintf(agentapi.PathResult, d.ID), d.Secret, r, &out)
	if err != nil {
		t.Fatal(err)
	}
	if code != 200 {
		t.Logf("result %d: %d %s", d.ID, code, body)
	}
	return out, code
}

// TestDeploymentLifecycle: a failed deployment keeps the board's name for the retry;
// a success with the wrong digest is a failure; only a verified result marks the
// board deployed and counts toward the batch; a deployed board gets boot_local
// until it is flagged for re-imaging, and then gets its name back.
func TestDeploymentLifecycle(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	fleet := srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 2, PoolSize: 5, Image: testImage(t)})
	ctx := context.Background()

	r := hello(t, srv, helloOf(1))
	if r.Action != agentapi.ActionDeploy || r.Deployment.Hostname != "KXP2-CORO-001" {
		t.Fatalf("first hello: %+v", r)
	}
	d1 := r.Deployment
	fetch(t, d1)
	if !strings.HasPrefix(d1.Image.URL, srv.URL+"/images/") || d1.FirstBoot.Hostname != d1.Hostname {
		t.Errorf("deployment: %+v", d1)
	}
	for _, e := range []agentapi.Event{{Phase: "streaming", Bytes: 1 << 20, Total: 3 << 20, RateBps: 1e8}, {Phase: "verifying"}} {
		if code := event(t, srv, d1, e); code != 200 {
			t.Fatalf("event: %d", code)
		}
	}
	if code := event(t, srv, d1, agentapi.Event{Phase: "verified"}); code != 400 {
		t.Errorf("terminal phase as event: %d, want 400", code)
	}
	if code := event(t, srv, &agentapi.Deployment{ID: 99999, Secret: d1.Secret}, agentapi.Event{Phase: "streaming"}); code != 404 {
		t.Errorf("event for unknown deployment: %d, want 404", code)
	}
	// Failure: the name stays with the board.
	if d, code := result(t, srv, d1, serialOf(1), agentapi.Result{Success: false, Phase: "streaming", Error: "write /dev/mmcblk0: I/O error"}); code != 200 || d.State != "failed" {
		t.Fatalf("failure result: %d %+v", code, d)
	}
	if code := event(t, srv, d1, agentapi.Event{Phase: "streaming"}); code != 409 {
		t.Errorf("event after result: %d, want 409", code)
	}
	// Another board takes the next name; the failed board gets its own back.
	if r := hello(t, srv, helloOf(2)); r.Deployment == nil || r.Deployment.Hostname != "KXP2-CORO-002" {
		t.Fatalf("board 2: %+v", r)
	}
	r = hello(t, srv, helloOf(1))
	if r.Deployment == nil || r.Deployment.Hostname != "KXP2-CORO-001" || r.Deployment.ID == d1.ID {
		t.Fatalf("retry of board 1: %+v", r.Deployment)
	}
	d2 := r.Deployment
	fetch(t, d2)
	// Success with the wrong digest is recorded as a failure.
	if d, _ := result(t, srv, d2, serialOf(1), agentapi.Result{Success: true, SHA256: strings.Repeat("0", 64)}); d.State != "failed" || !strings.Contains(d.Error, "does not match") {
		t.Fatalf("wrong digest: %+v", d)
	}
	var b mgmtapi.Batch
	srv.Do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/batches/%d", fleet.Batch.ID), nil, &b)
	if b.Done != 0 || b.Failed != 2 || b.InFlight != 1 {
		t.Errorf("batch after two failures: done %d failed %d in progress %d, want 0 2 1", b.Done, b.Failed, b.InFlight)
	}
	r = hello(t, srv, helloOf(1))
	d3 := r.Deployment
	fetch(t, d3)
	if d, code := result(t, srv, d3, serialOf(1), agentapi.Result{Success: true, SHA256: fleet.Manifest.SHA256, ChunksVerified: 4}); code != 200 || d.State != "verified" {
		t.Fatalf("verified: %d %+v", code, d)
	}
	// The same result again is harmless; a contradicting one is a conflict.
	if _, code := result(t, srv, d3, serialOf(1), agentapi.Result{Success: true, SHA256: fleet.Manifest.SHA256}); code != 200 {
		t.Errorf("repeated result: %d", code)
	}
	if _, code := result(t, srv, d3, serialOf(1), agentapi.Result{Success: false, Error: "x"}); code != 409 {
		t.Errorf("contradicting result: %d, want 409", code)
	}
	srv.Do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/batches/%d", fleet.Batch.ID), nil, &b)
	if b.Done != 1 || b.State != "active" {
		t.Errorf("batch after one verified: done %d state %s", b.Done, b.State)
	}
	if r := hello(t, srv, helloOf(1)); r.Action != agentapi.ActionBootLocal {
		t.Errorf("deployed board: %+v, want boot_local", r)
	}
	// Flag for re-imaging: a new deployment under the same name.
	if err := srv.Do(ctx, http.MethodPost, "/api/v1/boards/"+serialOf(1)+"/reimage", map[string]bool{"reimage": true}, nil); err != nil {
		t.Fatal(err)
	}
	r = hello(t, srv, helloOf(1))
	if r.Action != agentapi.ActionDeploy || r.Deployment.Hostname != "KXP2-CORO-001" {
		t.Fatalf("re-image: %+v", r)
	}
	var re mgmtapi.Deployment
	srv.Do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/deployments/%d", r.Deployment.ID), nil, &re)
	if re.BatchID != 0 || re.Venue != "CORO" || re.Product != "KXP2" {
		t.Errorf("re-image deployment %+v: want no batch, CORO KXP2", re)
	}
	// Board 2 completes the batch of 2.
	var open []mgmtapi.Deployment
	srv.Do(ctx, http.MethodGet, "/api/v1/deployments?state=open&serial="+serialOf(2), nil, &open)
	if len(open) != 1 {
		t.Fatalf("board 2 open deployments: %d", len(open))
	}
	// The management API never shows the secret; board 2 says hello again for a new one.
	r2 := hello(t, srv, helloOf(2))
	if r2.Deployment == nil || r2.Deployment.ID != open[0].ID {
		t.Fatalf("board 2 again: %+v, want deployment %d", r2, open[0].ID)
	}
	fetch(t, r2.Deployment)
	result(t, srv, r2.Deployment, serialOf(2), agentapi.Result{Success: true, SHA256: fleet.Manifest.SHA256})
	srv.Do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/batches/%d", fleet.Batch.ID), nil, &b)
	if b.Done != 2 || b.State != "complete" {
		t.Errorf("batch: done %d state %s, want 2 complete", b.Done, b.State)
	}
	if r := hello(t, srv, helloOf(3)); r.Action != agentapi.ActionRetry {
		t.Errorf("board after the batch completed: %+v, want retry", r)
	}
	// Time filters take RFC 3339 in any precision.
	for q, want := range map[string]int{
		"since=" + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339):      5,
		"since=" + time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano): 0,
		"until=" + time.Now().Add(-time.Hour).Format(time.RFC3339):            0,
	} {
		var ds []mgmtapi.Deployment
		if err := srv.Do(ctx, http.MethodGet, "/api/v1/deployments?"+q, nil, &ds); err != nil || len(ds) != want {
			t.Errorf("deployments?%s: %d, want %d (%v)", q, len(ds), want, err)
		}
	}
	if err := srv.Do(ctx, http.MethodGet, "/api/v1/deployments?since=yesterday", nil, nil); statusOf(err) != 400 {
		t.Errorf("since=yesterday: %v, want 400", err)
	}
	var ph struct {
		Phases []mgmtapi.Phase `json:"phases"`
	}
	srv.Do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/deployments/%d", d1.ID), nil, &ph)
	var got []string
	for _, p := range ph.Phases {
		got = append(got, p.Phase)
	}
	if strings.Join(got, ",") != "hello,streaming,verifying,failed" {
		t.Errorf("phases of deployment %d: %v", d1.ID, got)
	}
}

// TestSerialNamingAndBadInput: RXP2 names come from the serial's low 8 hex digits in
// upper case; malformed serials, MACs and venue codes get a 4xx with a JSON error and
// leave no rows behind.
func TestSerialNamingAndBadInput(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	bad := []struct {
		name  string
		body  any
		field string
	}{
		{"short serial", map[string]any{"serial": "abc", "mac": "2c:cf:67:00:00:01"}, "serial"},
		{"non-hex serial", map[string]any{"serial": "10000000zzzzzzzz", "mac": "2c:cf:67:00:00:01"}, "serial"},
		{"no serial", map[string]any{"mac": "2c:cf:67:00:00:01"}, "serial"},
		{"bad mac", map[string]any{"serial": "10000000abcdef12", "mac": "2c:cf:67:00:00"}, "mac"},
		{"mac with junk", map[string]any{"serial": "10000000abcdef12", "mac": "2c:cf:67:00:00:0g"}, "mac"},
		{"unknown field", map[string]any{"serial": "10000000abcdef12", "mac": "2c:cf:67:00:00:01", "evil": 1}, ""},
		{"not JSON", "{", ""},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			var e agentapi.Error
			code, body, err := postJSON(t, srv.URL+agentapi.PathHello, tc.body, nil)
			if err != nil {
				t.Fatal(err)
			}
			if code != 400 {
				t.Fatalf("HTTP %d %s, want 400", code, body)
			}
			if err := jsonUnmarshal(body, &e); err != nil || e.Error == "" || e.Field != tc.field {
				t.Errorf("error body %s (field want %q)", body, tc.field)
			}
		})
	}
	for _, code := range []string{"coro", "CO1", "CORONA", ""} {
		err := srv.Do(ctx, http.MethodPost, "/api/v1/venues", map[string]string{"code": code, "name": "x"}, nil)
		if status := statusOf(err); status != 400 {
			t.Errorf("venue %q: %v, want 400", code, err)
		}
		err = srv.Do(ctx, http.MethodPost, "/api/v1/batches", map[string]any{"venue": code, "product": "RXP2", "count": 1, "allow_no_first_boot": true}, nil)
		if status := statusOf(err); status != 400 {
			t.Errorf("batch for venue %q: %v, want 400", code, err)
		}
	}
	var boards []mgmtapi.Board
	var venues []mgmtapi.Venue
	var batches []mgmtapi.Batch
	srv.Do(ctx, http.MethodGet, "/api/v1/boards", nil, &boards)
	srv.Do(ctx, http.MethodGet, "/api/v1/venues", nil, &venues)
	srv.Do(ctx, http.MethodGet, "/api/v1/batches", nil, &batches)
	if len(boards)+len(venues)+len(batches) != 0 {
		t.Errorf("bad input left rows: %d boards, %d venues, %d batches", len(boards), len(venues), len(batches))
	}

	srv.Setup(t, servertest.Fleet{Venue: "ARIA", Product: "RXP2", Count: 0, Image: testImage(t)})
	h := helloOf(7)
	h.Serial = "10000000AbC12345"
	r := hello(t, srv, h)
	if r.Action != agentapi.ActionDeploy || r.Deployment.Hostname != "RXP2-ARIA-ABC12345" {
		t.Fatalf("RXP2 hello: %+v", r)
	}
}
