package api_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/servertest"
	"github.com/rpi-deploy/rpi-deploy/server/tlscert"
)

// TestEventStreamGzip: a client that asks for gzip (as browsers do) gets the event
// stream compressed, and each event as soon as it is published, not held back until
// the next write (the Go reader here fails no read, it only waits: a hello's event
// must arrive before the next hello is sent); curl --compressed, a decoder we did not
// write, reads the same stream; at shutdown the stream ends with a good gzip trailer
// (Go's reader and curl check its CRC and length), and both decoded the same events.
// A client that does not ask gets it plain.
func TestEventStreamGzip(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	srv.Setup(t, servertest.Fleet{Venue: "ARIA", Product: "RXP2", Count: 0, Image: testImage(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	plain := streamRequest(t, ctx, srv, "identity")
	if ce := plain.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("Accept-Encoding identity: Content-Encoding %q", ce)
	}
	plain.Body.Close()

	resp := streamRequest(t, ctx, srv, "gzip, deflate, br, zstd")
	defer resp.Body.Close()
	if ce, v := resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"); ce != "gzip" || v != "Accept-Encoding" {
		t.Fatalf("Content-Encoding %q, Vary %q; want gzip, Accept-Encoding", ce, v)
	}
	out := filepath.Join(t.TempDir(), "curl.out")
	curl := exec.CommandContext(ctx, "curl", "-sS", "-N", "--compressed", "-o", out, "-H", "Authorization: Bearer "+srv.Token, srv.URL+"/api/v1/events")
	var curlErr bytes.Buffer
	curl.Stderr = &curlErr
	if err := curl.Start(); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(zr)
	var got bytes.Buffer
	first, err := br.ReadString('\n')
	if !strings.HasPrefix(first, ": connected seq ") || err != nil {
		t.Fatalf("first line %q, %v", first, err)
	}
	br.ReadString('\n')
	// curl's stream follows the bus once curl has its first line: the server counts
	// a stream as open (rpideploy_event_subscribers) before it starts following, so
	// a hello sent in between would come before curl's first event.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(out); bytes.Contains(b, []byte(": connected seq ")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("curl's stream did not open: %s", curlErr.String())
		}
	}
	for i := range 3 {
		hello(t, srv, helloOf(i))
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("waiting for hello %d's event: %v (read %q)", i, err, got.String())
			}
			got.WriteString(line)
			if strings.Contains(line, `"type":"deployment.created"`) && strings.Contains(line, serialOf(i)) {
				break
			}
		}
	}
	time.Sleep(300 * time.Millisecond) // the batch.changed that follows the last hello
	srv.Stop()
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("stream at shutdown: %v (want a clean end of the gzip member)", err)
	}
	got.Write(rest)
	if err := curl.Wait(); err != nil {
		t.Fatalf("curl --compressed: %v: %s", err, curlErr.String())
	}
	cb, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// curl's stream opened after Go's had read its first line: the same events
	// from the first hello's on.
	_, curlEvents, _ := bytes.Cut(cb, []byte("\n\n"))
	if !bytes.Equal(curlEvents, got.Bytes()) {
		t.Errorf("curl decoded\n%s\nGo decoded\n%s", curlEvents, got.Bytes())
	}
	if n := bytes.Count(got.Bytes(), []byte("event: deployment.created\n")); n != 3 {
		t.Errorf("%d deployment.created events, want 3:\n%s", n, got.Bytes())
	}
}

// streamRequest opens GET /api/v1/events with Accept-Encoding acceptEncoding.
func streamRequest(t *testing.T, ctx context.Context, srv *servertest.Server, acceptEncoding string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	req.Header.Set("Accept-Encoding", acceptEncoding)
	resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/events: %s", resp.Status)
	}
	return resp
}

// TestEventStreamOverTLS: over the management listener's TLS the stream is taken
// from net/http as over plain HTTP (a *tls.Conn): a browser-like client gets it
// compressed, sees an operator's change, and reads a clean end at shutdown.
func TestEventStreamOverTLS(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--tls", "self-signed", "--agent-listen", "127.0.0.1:0"}})
	cfg, err := tlscert.ClientConfig(filepath.Join(srv.DataDir, "tls", tlscert.CertFile), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true, DisableCompression: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" || resp.TLS == nil {
		t.Fatalf("GET /api/v1/events: %s, Content-Encoding %q, TLS %v", resp.Status, resp.Header.Get("Content-Encoding"), resp.TLS != nil)
	}
	t.Logf("%s over TLS", resp.Proto)
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(zr)
	if err := srv.Client.Post(ctx, "/api/v1/venues", map[string]string{"code": "TLSE", "name": "over TLS"}, nil); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for the venue's event: %v", err)
		}
		if strings.Contains(line, `"type":"venue.changed"`) && strings.Contains(line, `"TLSE"`) {
			break
		}
	}
	srv.Stop()
	if _, err := io.ReadAll(br); err != nil {
		t.Errorf("stream at shutdown: %v (want a clean end of the gzip member)", err)
	}
}
