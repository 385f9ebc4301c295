package swarm

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
)

// TestWebSeedTransport pins the web seed's share of the server's link: a ranged
// request for a piece a peer has never reaches the server; at most cap(slots)
// requests are in flight; each carries the deployment secret; a request for a
// piece no peer has goes out.
func TestWebSeedTransport(t *testing.T) {
	var inFlight, most, hits atomic.Int64
	var mu sync.Mutex
	var secrets []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		mu.Lock()
		secrets = append(secrets, r.Header.Get(agentapi.HeaderSecret))
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		w.Write(make([]byte, 1024))
	}))
	defer srv.Close()
	const piece = 256 << 10
	var declined atomic.Int64
	tr := &secretTransport{secret: "s3cret", base: http.DefaultTransport, declined: &declined,
		peerHas: func(off int64) bool { return off/piece == 1 }, slots: make(chan struct{}, 2)}
	get := func(rng string) error {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/images/x.img.zst", nil)
		req.Header.Set("Range", rng)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}

	if err := get("bytes=262144-524287"); !errors.Is(err, errPeerHasPiece) {
		t.Fatalf("piece 1, which a peer has: %v, want errPeerHasPiece", err)
	}
	if hits.Load() != 0 || declined.Load() != 1 {
		t.Fatalf("declined request reached the server (%d requests) or was not counted (%d)", hits.Load(), declined.Load())
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if err := get("bytes=" + []string{"0-262143", "524288-786431"}[i%2]); err != nil {
				t.Errorf("request %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if hits.Load() != 8 || most.Load() > 2 {
		t.Errorf("server saw %d requests, at most %d at once; want 8, at most 2", hits.Load(), most.Load())
	}
	for _, s := range secrets {
		if s != "s3cret" {
			t.Errorf("web seed request with secret %q", s)
		}
	}
	if len(tr.slots) != 0 {
		t.Errorf("%d web seed slots still held after every body was closed", len(tr.slots))
	}
}
