package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rpi-deploy/rpi-deploy/internal/logbuf"
	"github.com/rpi-deploy/rpi-deploy/server/config"
	"github.com/rpi-deploy/rpi-deploy/server/daemon"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

// TestParse: defaults < config file < environment < flags, and bad input is a clear
// error.
func TestParse(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "rpi-deployd.json")
	if err := os.WriteFile(cfgPath, []byte(`{"data": "/from/file", "listen": "127.0.0.1:1", "max_streams": 7, "token": "file-token-0123456789", "site": "hall-1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	type got struct {
		Data, Listen, Token, Site string
		MaxStreams                int
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want got
	}{
		{"defaults", nil, nil, got{config.DefaultData, config.DefaultListen, "", "main", 64}},
		{"file", []string{"--config", cfgPath}, nil, got{"/from/file", "127.0.0.1:1", "file-token-0123456789", "hall-1", 7}},
		{"environment over file", []string{"--config", cfgPath}, map[string]string{"RPI_DEPLOY_TOKEN": "env-token-0123456789", "RPI_DEPLOY_DATA": "/from/env"},
			got{"/from/env", "127.0.0.1:1", "env-token-0123456789", "hall-1", 7}},
		{"flags over environment", []string{"--config", cfgPath, "--token", "flag-token-0123456789", "--max-streams", "9", "--listen", "127.0.0.1:2", "--site", "hall-2"},
			map[string]string{"RPI_DEPLOY_TOKEN": "env-token-0123456789"}, got{"/from/file", "127.0.0.1:2", "flag-token-0123456789", "hall-2", 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt, err := daemon.Parse(tc.args, env(tc.env), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			c := opt.Config
			if diff := cmp.Diff(tc.want, got{c.Data, c.Listen, c.Token, c.Site, c.MaxStreams}); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"argument", `unexpected argument "extra"`, []string{"extra"}},
		{"unknown flag", "flag provided but not defined: -no-such-flag", []string{"--no-such-flag"}},
		{"missing config file", "no-such.json", []string{"--config", filepath.Join(dir, "no-such.json")}},
		{"bad TLS mode", "tls", []string{"--tls", "sometimes"}},
		{"bad site", `site "Hall 2": want 1-32 lower-case letters, digits or '-'`, []string{"--site", "Hall 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := daemon.Parse(tc.args, env(nil), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one that says %q", err, tc.want)
			}
		})
	}
}

// start runs a daemon on 127.0.0.1:0 over data and returns it with its cancel.
func start(t *testing.T, data, listen string, log *logbuf.Buffer) (*daemon.Daemon, context.CancelFunc, error) {
	t.Helper()
	opt, err := daemon.Parse([]string{"--data", data, "--listen", listen, "--token", "t0k3n-0123456789abcdef"}, env(nil), log)
	if err != nil {
		t.Fatal(err)
	}
	opt.Stderr, opt.Version = log, "test"
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.Start(ctx, opt)
	if err != nil {
		cancel()
	}
	return d, cancel, err
}

func healthz(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d %v", resp.StatusCode, err)
	}
	return h
}

// TestTwoServersInOneProcess: Start returns listening, with the bound address; two
// servers run side by side in one process (no process-wide state), each stops on its
// own context, and Wait returns nil after a clean shutdown.
func TestTwoServersInOneProcess(t *testing.T) {
	var logA, logB logbuf.Buffer
	a, cancelA, err := start(t, t.TempDir(), "127.0.0.1:0", &logA)
	if err != nil {
		t.Fatal(err)
	}
	defer cancelA()
	b, cancelB, err := start(t, t.TempDir(), "127.0.0.1:0", &logB)
	if err != nil {
		t.Fatal(err)
	}
	defer cancelB()
	if a.URL == b.URL || !strings.HasPrefix(a.URL, "http://127.0.0.1:") {
		t.Fatalf("URLs %q and %q", a.URL, b.URL)
	}
	for _, d := range []*daemon.Daemon{a, b} {
		if h := healthz(t, d.URL); h["version"] != "test" {
			t.Errorf("%s/healthz: %v", d.URL, h)
		}
	}
	if !strings.Contains(logA.String(), daemon.LineListening+a.URL+"\n") {
		t.Errorf("no listening line for %s in the log:\n%s", a.URL, logA.String())
	}
	cancelA()
	if err := a.Wait(); err != nil {
		t.Errorf("Wait after a clean stop: %v", err)
	}
	if _, err := http.Get(a.URL + "/healthz"); err == nil {
		t.Errorf("%s still answers after Wait", a.URL)
	}
	healthz(t, b.URL) // the other one is untouched
	cancelB()
	if err := b.Wait(); err != nil {
		t.Errorf("Wait after a clean stop: %v", err)
	}
}

// TestStartFailsCleanly: an address that is taken is a clear error, and Start leaves
// nothing open behind it: the same data directory starts at once on a free address
// and keeps what it held.
func TestStartFailsCleanly(t *testing.T) {
	data := t.TempDir()
	var log logbuf.Buffer
	d, cancel, err := start(t, data, "127.0.0.1:0", &log)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, d.URL+"/api/v1/venues", strings.NewReader(`{"code": "CORO", "name": "Coro"}`))
	req.Header.Set("Authorization", "Bearer t0k3n-0123456789abcdef")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("create venue: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if err := d.Wait(); err != nil {
		t.Fatal(err)
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if _, _, err := start(t, data, taken.Addr().String(), &log); err == nil || !strings.Contains(err.Error(), `listen "`+taken.Addr().String()+`"`) {
		t.Fatalf("start on a taken address: %v", err)
	}

	d, cancel, err = start(t, data, "127.0.0.1:0", &log)
	if err != nil {
		t.Fatalf("start again after the failed start: %v", err)
	}
	defer func() { cancel(); d.Wait() }()
	req, _ = http.NewRequest(http.MethodGet, d.URL+"/api/v1/venues", nil)
	req.Header.Set("Authorization", "Bearer t0k3n-0123456789abcdef")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var venues []struct{ Code string }
	if err := json.NewDecoder(resp.Body).Decode(&venues); err != nil || len(venues) != 1 || venues[0].Code != "CORO" {
		t.Errorf("venues after the failed start: %+v %v", venues, err)
	}
}
