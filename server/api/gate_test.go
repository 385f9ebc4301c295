package api

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// TestSourceGate: at most n requests of one address run at once; the next one waits
// for a free slot (and gives up with its client), while another address is served
// at once.
func TestSourceGate(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	release := make(chan struct{})
	var mu sync.Mutex
	running := map[string]int{}
	started := make(chan string, 8) // each request the gate lets through, as it starts
	r := gin.New()
	g := &sourceGate{n: 2}
	r.GET("/", g.handle, func(c *gin.Context) {
		ip := remoteIP(c.Request)
		mu.Lock()
		running[ip]++
		mu.Unlock()
		started <- ip
		if c.Query("block") != "" {
			<-release
		}
		c.String(200, "ok")
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	from := func(n byte) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, n)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	a, b := from(2), from(3)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := a.Get(srv.URL + "/?block=1"); err == nil {
				resp.Body.Close()
			}
		}()
	}
	for range 2 { // both slots of 127.0.0.2 taken
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("the two blocking requests of 127.0.0.2 did not start in 10 s")
		}
	}
	// A third request of 127.0.0.2 waits; it gives up when its client does.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/", nil)
	if resp, err := a.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("third request of one address ran at once (%s)", resp.Status)
	}
	time.Sleep(50 * time.Millisecond) // the server noticing the client gone
	mu.Lock()
	if n := running["127.0.0.2"]; n != 2 {
		t.Errorf("%d requests of 127.0.0.2 ran, want 2 (the third gave up waiting)", n)
	}
	mu.Unlock()
	// Another address is not held up.
	resp, err := b.Get(srv.URL + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("other address: %v %v", resp, err)
	}
	resp.Body.Close()
	close(release)
	wg.Wait()
	// Slots are given back: a new request of 127.0.0.2 runs, and no state is left.
	resp, err = a.Get(srv.URL + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the others finished: %v %v", resp, err)
	}
	resp.Body.Close()
	g.mu.Lock()
	left := len(g.m)
	g.mu.Unlock()
	if left != 0 {
		t.Errorf("%d addresses left in the gate", left)
	}
}
