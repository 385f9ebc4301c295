package api_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// TestConcurrentHellosWithKill fires 1000 concurrent hellos from distinct boards at
// a batch of 50 KXP2 names, stops the server in the middle, restarts it on the same
// address and lets every board retry until answered: exactly 50 get names, all
// distinct, the rest retry; every answer given before the stop still holds after it;
// re-sending any of the 50 returns the same deployment. Twice: in the test's process
// (the race detector watches the handlers and the domain under the load; the server
// shuts down), and as a child process that is SIGKILLed (no shutdown at all).
func TestConcurrentHellosWithKill(t *testing.T) {
	for _, tc := range []struct {
		name    string
		process bool
	}{{"in-process stop", false}, {"process SIGKILL", true}} {
		t.Run(tc.name, func(t *testing.T) { concurrentHellos(t, tc.process) })
	}
}

func concurrentHellos(t *testing.T, process bool) {
	// 1000 boards from one address, none of which streams: the per-address limits are off.
	srv := servertest.Start(t, servertest.Options{Process: process, NoSourceLimits: true, Args: []string{"--max-streams", "5000",
		"--claim-window", "1h", "--claim-timeout", "1h"}})
	fleet := srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 50, Image: testImage(t)})

	const boards = 1000
	type answer struct {
		resp agentapi.HelloResponse
		at   time.Time
	}
	answers := make([]answer, boards)
	var mu sync.Mutex // guards answers while the boards run
	var (
		answered  atomic.Int64
		deployed  atomic.Int64
		connFails atomic.Int64
		killOnce  sync.Once
		killed    = make(chan struct{})
		restarted = make(chan struct{})
		wg        sync.WaitGroup
		start     = make(chan struct{})
	)
	for i := range boards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for attempt := 0; ; attempt++ {
				var r agentapi.HelloResponse
				code, body, err := postJSON(t, srv.URL+agentapi.PathHello, helloOf(i), &r)
				if err == nil && code == 200 {
					mu.Lock()
					answers[i] = answer{r, time.Now()}
					mu.Unlock()
					answered.Add(1)
					if r.Action == agentapi.ActionDeploy && deployed.Add(1) == 20 {
						killOnce.Do(func() { close(killed) })
					}
					return
				}
				if err == nil && code != 200 {
					t.Errorf("board %d: HTTP %d %s", i, code, body)
					return
				}
				connFails.Add(1)
				if attempt > 200 {
					t.Errorf("board %d: no answer after %d attempts: %v", i, attempt, err)
					return
				}
				select {
				case <-restarted:
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
	close(start)
	<-killed
	if process {
		srv.Kill()
	} else {
		srv.Stop()
	}
	killedAt := time.Now()
	before := make(map[int]agentapi.HelloResponse)
	mu.Lock()
	for i, a := range answers {
		if !a.at.IsZero() && a.at.Before(killedAt) && a.resp.Action == agentapi.ActionDeploy {
			before[i] = a.resp
		}
	}
	mu.Unlock()
	srv.Restart(t)
	close(restarted)
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("answered %d, %d deploy answers before the kill, %d connection failures retried", answered.Load(), len(before), connFails.Load())

	names := map[string]int{}
	ids := map[int64]int{}
	var deploys, retries int
	for i, a := range answers {
		switch a.resp.Action {
		case agentapi.ActionDeploy:
			deploys++
			d := a.resp.Deployment
			if j, dup := names[d.Hostname]; dup {
				t.Errorf("hostname %s given to boards %d and %d", d.Hostname, j, i)
			}
			if j, dup := ids[d.ID]; dup {
				t.Errorf("deployment %d given to boards %d and %d", d.ID, j, i)
			}
			names[d.Hostname], ids[d.ID] = i, i
			if d.Image.Name != fleet.ImageName || d.Image.SHA256 != fleet.Manifest.SHA256 {
				t.Errorf("board %d: image %+v", i, d.Image)
			}
		case agentapi.ActionRetry:
			retries++
			if a.resp.RetryAfterMS <= 0 {
				t.Errorf("board %d: retry without delay", i)
			}
		default:
			t.Errorf("board %d: action %q", i, a.resp.Action)
		}
	}
	if deploys != 50 || retries != boards-50 {
		t.Fatalf("%d deploy, %d retry answers; want 50 and %d", deploys, retries, boards-50)
	}
	for n := 1; n <= 50; n++ {
		if _, ok := names[fmt.Sprintf("KXP2-CORO-%03d", n)]; !ok {
			t.Errorf("name KXP2-CORO-%03d not handed out", n)
		}
	}
	// Answers given before the kill survive it; re-sending returns the same deployment.
	for i, a := range answers {
		if a.resp.Action != agentapi.ActionDeploy {
			continue
		}
		r := hello(t, srv, helloOf(i))
		if r.Action != agentapi.ActionDeploy || r.Deployment.ID != a.resp.Deployment.ID || r.Deployment.Hostname != a.resp.Deployment.Hostname {
			t.Errorf("board %d again: %+v, first %+v", i, r.Deployment, a.resp.Deployment)
		}
		if b, ok := before[i]; ok && b.Deployment.ID != r.Deployment.ID {
			t.Errorf("board %d: binding before the kill %d lost (now %d)", i, b.Deployment.ID, r.Deployment.ID)
		}
	}
	var open []mgmtapi.Deployment
	if err := srv.Do(context.Background(), http.MethodGet, "/api/v1/deployments?state=open&limit=5000", nil, &open); err != nil {
		t.Fatal(err)
	}
	if len(open) != 50 {
		t.Errorf("%d open deployments in the store, want 50", len(open))
	}
	var free []mgmtapi.PoolName
	if err := srv.Do(context.Background(), http.MethodGet, "/api/v1/pools/names?venue=CORO&product=KXP2&free=1", nil, &free); err != nil {
		t.Fatal(err)
	}
	if len(free) != 0 {
		t.Errorf("%d pool names still free, want 0", len(free))
	}
}
