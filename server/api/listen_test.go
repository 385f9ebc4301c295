package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// TestAgentListenAndMetrics: with --agent-listen the agent API answers only there
// (404 on the main listener), images are served on both; /metrics reports the hellos,
// the deployments by state and the image bytes served.
func TestAgentListenAndMetrics(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--agent-listen", "127.0.0.1:0"}})
	if len(srv.AgentURLs) != 1 {
		t.Fatalf("agent URLs %v", srv.AgentURLs)
	}
	fleet := srv.Setup(t, servertest.Fleet{Venue: "ARIA", Product: "RXP2", Count: 3, Image: testImage(t)})
	if code, body, _ := postJSON(t, srv.URL+agentapi.PathHello, helloOf(1), nil); code != 404 {
		t.Errorf("hello on the main listener: %d %s, want 404", code, body)
	}
	var r agentapi.HelloResponse
	code, body, err := postJSON(t, srv.AgentURLs[0]+agentapi.PathHello, helloOf(1), &r)
	if err != nil || code != 200 || r.Action != agentapi.ActionDeploy {
		t.Fatalf("hello on the agent listener: %d %s %v", code, body, err)
	}
	if !strings.HasPrefix(r.Deployment.Image.URL, srv.AgentURLs[0]+"/images/") {
		t.Errorf("image URL %q should use the agent listener", r.Deployment.Image.URL)
	}
	for _, base := range []string{srv.URL, srv.AgentURLs[0]} {
		resp, err := http.Get(base + "/images/" + fleet.ImageName + ".img.zst")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != fleet.Manifest.CompressedSize {
			t.Errorf("image from %s: %d, %d bytes", base, resp.StatusCode, n)
		}
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without a credential: %d, want 401", resp.StatusCode)
	}
	// A download's handler counts it done after its last byte left, which the
	// client may have read before: read the metrics until both downloads are done.
	var m []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+srv.Token)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		m, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(m), "rpideploy_image_streams_in_flight 0\n") || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range []string{
		`rpideploy_deployments{state="open"} 1`,
		`rpideploy_hellos_total{action="deploy"} 1`,
		`rpideploy_image_streams_in_flight 0`,
		`rpideploy_allocation_seconds_count 1`,
		`rpideploy_image_downloads_total 2`,
	} {
		if !strings.Contains(string(m), want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
	if !strings.Contains(string(m), "rpideploy_image_bytes_served_total ") || strings.Contains(string(m), "rpideploy_image_bytes_served_total 0\n") {
		t.Errorf("bytes served not counted:\n%s", m)
	}
}
