package api_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/image-tools/push"
	"github.com/rpi-deploy/rpi-deploy/server/cli"
	"github.com/rpi-deploy/rpi-deploy/server/client"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
	"github.com/rpi-deploy/rpi-deploy/server/tlscert"
)

var fingerprintRE = regexp.MustCompile(`TLS certificate sha256 fingerprint ([0-9a-f]{64})`)

func fingerprintOf(t *testing.T, srv *servertest.Server) string {
	t.Helper()
	all := fingerprintRE.FindAllStringSubmatch(srv.Log(), -1)
	if len(all) == 0 {
		t.Fatalf("no fingerprint line in the log:\n%s", srv.Log())
	}
	return all[len(all)-1][1]
}

// TestManagementTLS pins the finding of issue 13 that there was no TLS at all:
// against the real binary with --tls self-signed, the management listener speaks
// HTTPS with a certificate generated on first start (kept 0600 in DATA/tls, the same
// after a restart); the Go client and the CLI reach it with the printed fingerprint
// or with the certificate as CA file, and refuse it without either (verification is
// never skipped); the agent listener stays plain HTTP for the boards.
func TestManagementTLS(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--tls", "self-signed", "--agent-listen", "127.0.0.1:0"}})
	ctx := context.Background()
	if !strings.HasPrefix(srv.URL, "https://") || len(srv.AgentURLs) != 1 || !strings.HasPrefix(srv.AgentURLs[0], "http://") {
		t.Fatalf("URL %s, agent URLs %v: want https management and one plain HTTP agent listener", srv.URL, srv.AgentURLs)
	}
	fp := fingerprintOf(t, srv)
	if srv.Fingerprint != fp {
		t.Errorf("servertest fingerprint %q, log %q", srv.Fingerprint, fp)
	}
	if err := srv.Healthy(10 * time.Second); err != nil {
		t.Errorf("healthz over TLS with servertest's pinned client: %v", err)
	}
	certFile := filepath.Join(srv.DataDir, "tls", tlscert.CertFile)
	for _, p := range []string{certFile, filepath.Join(srv.DataDir, "tls", tlscert.KeyFile)} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", p, fi.Mode(), err)
		}
	}

	// No trust configured: the certificate is refused, not skipped.
	plain := client.New(srv.URL, srv.Token)
	if err := plain.Get(ctx, "/api/v1/venues", nil, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("client without CA or pin: %v, want a certificate error", err)
	}
	// Plain HTTP to the TLS listener gets nothing done.
	if resp, err := http.Get(strings.Replace(srv.URL, "https://", "http://", 1) + "/api/v1/venues"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS listener: %d", resp.StatusCode)
		}
	}
	wrong := client.New(srv.URL, srv.Token)
	if err := wrong.SetTLS("", strings.Repeat("ab", 32)); err != nil {
		t.Fatal(err)
	}
	if err := wrong.Get(ctx, "/api/v1/venues", nil, nil); !errors.Is(err, tlscert.ErrPin) {
		t.Errorf("wrong pin: %v, want ErrPin", err)
	}
	for name, set := range map[string][2]string{"pin": {"", fp}, "CA file": {certFile, ""}, "both": {certFile, fp}} {
		c := client.New(srv.URL, srv.Token)
		if err := c.SetTLS(set[0], set[1]); err != nil {
			t.Fatal(err)
		}
		if err := c.Post(ctx, "/api/v1/venues", map[string]string{"code": "TLSV", "name": name}, nil); err != nil {
			t.Errorf("client with %s: %v", name, err)
		}
	}
	// The CLI: the fingerprint flag, the CA from the environment, and a push.
	var out, errOut bytes.Buffer
	env := cli.Env{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string {
		return map[string]string{"RPI_DEPLOY_TOKEN": srv.Token}[k]
	}}
	if code := cli.Run(ctx, []string{"venue", "list", "--server", srv.URL, "--tls-fingerprint", fp}, env); code != 0 || !strings.Contains(out.String(), "TLSV") {
		t.Errorf("CLI with --tls-fingerprint: exit %d, %s %s", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	env.Getenv = func(k string) string {
		return map[string]string{"RPI_DEPLOY_TOKEN": srv.Token, "RPI_DEPLOY_CA": certFile, "RPI_DEPLOY_SERVER": srv.URL}[k]
	}
	if code := cli.Run(ctx, []string{"image", "add", "--allow-no-first-boot", testImage(t)}, env); code != 0 {
		t.Errorf("CLI image add with $RPI_DEPLOY_CA: exit %d: %s", code, errOut.String())
	}
	errOut.Reset()
	env.Getenv = func(k string) string { return map[string]string{"RPI_DEPLOY_TOKEN": srv.Token}[k] }
	if code := cli.Run(ctx, []string{"venue", "list", "--server", srv.URL}, env); code == 0 || !strings.Contains(errOut.String(), "certificate") {
		t.Errorf("CLI without CA or pin: exit %d, %s", code, errOut.String())
	}
	// Pushing with a client that trusts nothing fails; the image above is ready.
	if err := push.Push(ctx, push.Options{Server: srv.URL, Token: srv.Token, Image: testImage(t), AllowNoFirstBoot: true}); err == nil {
		t.Error("push to the TLS listener without trust succeeded")
	}

	// The boards' listener is plain HTTP, and serves them only: no credential is
	// ever sent in the clear there.
	var hr agentapi.HelloResponse
	if code, body, err := postJSON(t, srv.AgentURLs[0]+agentapi.PathHello, helloOf(1), &hr); err != nil || code != 200 {
		t.Errorf("hello on the plain agent listener: %d %s %v", code, body, err)
	}
	agentURL := srv.AgentURLs[0]
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/healthz", 200},
		{http.MethodHead, "/images/kxp2-test.img.zst", 200},
		{http.MethodGet, "/api/v1/venues", 404},
		{http.MethodPost, "/api/v1/login", 404},
		{http.MethodGet, "/", 404},
		{http.MethodGet, "/login", 404},
	} {
		req, _ := http.NewRequest(tc.method, agentURL+tc.path, strings.NewReader(`{"user":"ops","password":"x"}`))
		req.Header.Set("Authorization", "Bearer "+srv.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s on the agent listener: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}

	// A restart keeps the certificate.
	srv.Restart(t)
	if got := fingerprintOf(t, srv); got != fp {
		t.Errorf("fingerprint after a restart %s, want the kept %s", got, fp)
	}
}

// TestTLSConfigErrors: TLS settings that cannot work stop the real binary at start
// with a message that says why.
func TestTLSConfigErrors(t *testing.T) {
	bin := servertest.Binary(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls", "self-signed"}, "needs agent_listen"},
		{[]string{"--tls", "on", "--agent-listen", "127.0.0.1:0"}, "want off, self-signed or files"},
		{[]string{"--tls", "off", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, "drop them or set tls"},
		{[]string{"--tls-cert", "/nonexistent.pem", "--agent-listen", "127.0.0.1:0"}, "give both or neither"},
		{[]string{"--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key", "--agent-listen", "127.0.0.1:0"}, "load TLS certificate"},
	} {
		cmd := exec.Command(bin, append([]string{"serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0"}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("serve %v: %v, %s; want a failure mentioning %q", tc.args, err, out, tc.want)
		}
	}
}
