package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/client"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

var (
	imgOnce sync.Once
	imgDir  string
	imgPath string
)

// testImage is one small packed image shared by the package's tests (3 MiB raw,
// 1 MiB chunks).
func testImage(t testing.TB) string {
	t.Helper()
	imgOnce.Do(func() {
		d, err := os.MkdirTemp("", "api-test-img-")
		if err != nil {
			t.Fatal(err)
		}
		imgDir = d
		imgPath = servertest.PackedImage(t, d, "kxp2-test", 3<<20+12345, 1<<20)
	})
	if imgPath == "" {
		t.Fatal("test image not built")
	}
	return imgPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if imgDir != "" {
		os.RemoveAll(imgDir)
	}
	os.Exit(code)
}

var httpc = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2000}}

// postJSON posts v and decodes the answer into out (when 2xx), returning the status.
func postJSON(t testing.TB, url string, v, out any) (int, []byte, error) {
	return postSecret(t, url, "", v, out)
}

// postSecret is postJSON with a deployment secret header (when not "").
func postSecret(t testing.TB, url, secret string, v, out any) (int, []byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set(agentapi.HeaderSecret, secret)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(body, out); err != nil {
			return resp.StatusCode, body, err
		}
	}
	return resp.StatusCode, body, nil
}

func serialOf(i int) string { return fmt.Sprintf("10000000%08x", 0xab000000+i) }
func macOf(i int) string {
	return fmt.Sprintf("2c:cf:67:%02x:%02x:%02x", (i>>16)&0xff, (i>>8)&0xff, i&0xff)
}

func helloOf(i int) agentapi.Hello {
	return agentapi.Hello{Serial: serialOf(i), MAC: macOf(i), Model: "Raspberry Pi 5 Model B Rev 1.0", Revision: "d04170",
		Disk: agentapi.Disk{Device: "/dev/mmcblk0", SizeBytes: 32 << 30}, AgentVersion: "test"}
}

// hello sends a hello and fails the test on anything but 200.
func hello(t testing.TB, srv *servertest.Server, h agentapi.Hello) agentapi.HelloResponse {
	t.Helper()
	var r agentapi.HelloResponse
	code, body, err := postJSON(t, srv.URL+agentapi.PathHello, h, &r)
	if err != nil || code != 200 {
		t.Fatalf("hello %s: %d %s %v", h.Serial, code, body, err)
	}
	return r
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func statusOf(err error) int { return client.StatusOf(err) }

// clientFrom is an HTTP client whose connections come from the local address src
// (any 127.0.0.0/8 address works on loopback): one "host" of a test.
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

// fetch downloads d's whole image with d's secret, as the agent does: the server
// counts the deployment as streaming and its board as holding the whole image.
func fetch(t testing.TB, d *agentapi.Deployment) { t.Helper(); fetchRange(t, d, "") }

// fetchSome downloads the first KiB of d's image with d's secret: streaming, but
// not the whole image.
func fetchSome(t testing.TB, d *agentapi.Deployment) { t.Helper(); fetchRange(t, d, "bytes=0-1023") }

func fetchRange(t testing.TB, d *agentapi.Deployment, rng string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, d.Image.URL, nil)
	req.Header.Set(agentapi.HeaderSecret, d.Secret)
	want := http.StatusOK
	if rng != "" {
		req.Header.Set("Range", rng)
		want = http.StatusPartialContent
	}
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || resp.StatusCode != want || (rng == "" && n != d.Image.CompressedSize) {
		t.Fatalf("fetch %s for deployment %d: %s, %d bytes, %v", d.Image.URL, d.ID, resp.Status, n, err)
	}
}
