package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// download fetches url through c, resuming with Range requests after a cut, the way
// the agent does; it returns the body and how many requests it took.
func download(t *testing.T, c *http.Client, url string, size int) ([]byte, int) {
	t.Helper()
	var got []byte
	for req := 1; req <= 10; req++ {
		r, _ := http.NewRequest("GET", url, nil)
		if len(got) > 0 {
			r.Header.Set("Range", fmt.Sprintf("bytes=%d-", len(got)))
		}
		resp, err := c.Do(r)
		if err != nil {
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got = append(got, b...)
		if err == nil && len(got) == size {
			return got, req
		}
	}
	t.Fatalf("download of %s: %d of %d bytes after 10 requests", url, len(got), size)
	return nil, 0
}

func TestCutProxyCutsAndPasses(t *testing.T) {
	data := make([]byte, 4<<20)
	rand.Read(data)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()

	p := &CutProxy{Upstream: strings.TrimPrefix(srv.URL, "http://"), MinCut: 64 << 10, MaxCut: 2 << 20, MaxCuts: 3}
	addr, err := p.Listen(42)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Serve(ctx) }()

	c := &http.Client{Transport: &http.Transport{}}
	got, reqs := download(t, c, "http://"+addr+"/img", len(data))
	if !bytes.Equal(got, data) {
		t.Fatal("data through the proxy differs from the source")
	}
	// Every cut point lies inside the 4 MiB body, so exactly MaxCuts requests were cut
	// and the one after them passed whole.
	if p.Cuts() != 3 || reqs != 4 {
		t.Errorf("cuts %d in %d requests, want 3 cuts in 4 requests", p.Cuts(), reqs)
	}
	if p.Bytes() < int64(len(data)) {
		t.Errorf("proxy counted %d bytes, less than the %d delivered", p.Bytes(), len(data))
	}

	// A cut is a reset, not a clean end: the client sees an error, not a short body.
	p2 := &CutProxy{Upstream: strings.TrimPrefix(srv.URL, "http://"), MinCut: 100 << 10, MaxCut: 100<<10 + 1, MaxCuts: 1}
	addr2, err := p2.Listen(1)
	if err != nil {
		t.Fatal(err)
	}
	go p2.Serve(ctx)
	resp, err := c.Get("http://" + addr2 + "/img")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || errors.Is(err, io.EOF) {
		t.Errorf("cut body read %d bytes with err %v, want a connection error", len(b), err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}
