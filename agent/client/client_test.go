package client

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/agent/retry"
)

var fast = retry.Policy{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, Budget: 2 * time.Second}

func TestHelloFollowsRetryAndTransientErrors(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != agentapi.PathHello || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		var h agentapi.Hello
		if err := json.NewDecoder(r.Body).Decode(&h); err != nil || h.Serial != "00000000abcd1234" {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(agentapi.Error{Error: "bad serial", Field: "serial"})
			return
		}
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2, 3:
			json.NewEncoder(w).Encode(agentapi.HelloResponse{Action: agentapi.ActionRetry, Reason: "no batch", RetryAfterMS: 10})
		default:
			json.NewEncoder(w).Encode(agentapi.HelloResponse{Action: agentapi.ActionDeploy,
				Deployment: &agentapi.Deployment{ID: 7, Hostname: "KXP2-CORO-001"}})
		}
	}))
	defer srv.Close()
	c := &Client{Server: srv.URL, Retry: fast}
	resp, err := c.Hello(context.Background(), agentapi.Hello{Serial: "00000000abcd1234", MAC: "02:00:00:00:00:01"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Deployment.ID != 7 || calls.Load() != 4 {
		t.Fatalf("got %+v after %d calls", resp, calls.Load())
	}

	_, err = c.Hello(context.Background(), agentapi.Hello{Serial: "bad"})
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("bad hello: err = %v, want ErrRejected", err)
	}
	if want := "bad serial (field serial)"; !contains(err.Error(), want) {
		t.Errorf("error %q does not carry the server's words %q", err, want)
	}
}

func TestGoneServerExhaustsBudget(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connection refused
	c := &Client{Server: "http://" + addr, Retry: retry.Policy{Initial: 5 * time.Millisecond, Max: 10 * time.Millisecond, Budget: 200 * time.Millisecond}}
	start := time.Now()
	err = c.Result(context.Background(), 1, agentapi.Result{Success: true})
	if !errors.Is(err, retry.ErrBudget) {
		t.Fatalf("err = %v, want ErrBudget", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("gave up after %v, budget was 200ms", el)
	}
}

func TestResolve(t *testing.T) {
	c := &Client{Server: "http://10.0.0.1:8080/"}
	for ref, want := range map[string]string{
		"/images/a.img.zst":             "http://10.0.0.1:8080/images/a.img.zst",
		"http://x:1/images/a.img.zst":   "http://x:1/images/a.img.zst",
		"images/a.manifest.json":        "http://10.0.0.1:8080/images/a.manifest.json",
		"/images/a.img.zst?token=1&x=2": "http://10.0.0.1:8080/images/a.img.zst?token=1&x=2",
	} {
		if got, err := c.Resolve(ref); err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
