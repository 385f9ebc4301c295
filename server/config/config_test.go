package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLoadEnvDefaults(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rpi-deployd.json")
	os.WriteFile(path, []byte(`{"data":"/srv/rpi","site":"hall-2","listen":":9000","agent_listen":["10.0.0.1:8080"],"max_streams":10,"retry_after":"3s","after":"poweroff","http_idle_timeout":"30s","http_max_conns_per_source":8}`), 0o600)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c.FromEnv(func(k string) string {
		if k == "RPI_DEPLOY_TOKEN" {
			return "from-the-environment-0123"
		}
		return ""
	})
	got := c.WithDefaults()
	want := Config{Data: "/srv/rpi", Site: "hall-2", Listen: ":9000", AgentListen: []string{"10.0.0.1:8080"}, Token: "from-the-environment-0123",
		MaxStreams: 10, RetryAfter: Duration(3 * time.Second), StaleAfter: Duration(15 * time.Minute),
		AbandonAfter: Duration(2 * time.Hour), LogLevel: "info", After: "poweroff", DiskReserve: 64 << 20,
		HTTPReadHeaderTimeout: Duration(10 * time.Second), HTTPReadTimeout: Duration(time.Minute),
		HTTPWriteTimeout: Duration(time.Minute), HTTPIdleTimeout: Duration(30 * time.Second),
		HTTPMaxConns: 2048, HTTPMaxConnsPerSource: 8, MaxEventStreams: 64,
		ClaimWindow: Duration(2 * time.Minute), ClaimTimeout: Duration(10 * time.Minute), MaxOpenPerSource: 4,
		NewSerialsPerMinute: 120, AgentRequestsPerSource: 4, OverLimitDelay: Duration(time.Second), EventsPerBoard: 1000, ForgetBoardsAfter: Duration(168 * time.Hour)}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
	if err := got.Validate(); err != nil {
		t.Error(err)
	}
	if d := cmp.Diff(Config{Data: DefaultData, Site: "main", Listen: DefaultListen, MaxStreams: 64, RetryAfter: Duration(10 * time.Second),
		StaleAfter: Duration(15 * time.Minute), AbandonAfter: Duration(2 * time.Hour), LogLevel: "info", After: "reboot", DiskReserve: 64 << 20,
		HTTPReadHeaderTimeout: Duration(10 * time.Second), HTTPReadTimeout: Duration(time.Minute),
		HTTPWriteTimeout: Duration(time.Minute), HTTPIdleTimeout: Duration(time.Minute),
		HTTPMaxConns: 2048, HTTPMaxConnsPerSource: 64, MaxEventStreams: 64,
		ClaimWindow: Duration(2 * time.Minute), ClaimTimeout: Duration(10 * time.Minute), MaxOpenPerSource: 4,
		NewSerialsPerMinute: 120, AgentRequestsPerSource: 4, OverLimitDelay: Duration(time.Second), EventsPerBoard: 1000, ForgetBoardsAfter: Duration(168 * time.Hour)}, Config{}.WithDefaults()); d != "" {
		t.Errorf("defaults (-want +got)\n%s", d)
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown field": `{"lissten":":80"}`,
		"bad duration":  `{"retry_after":"soon"}`,
		"not JSON":      `listen = ":80"`,
	} {
		path := filepath.Join(dir, "c.json")
		os.WriteFile(path, []byte(body), 0o600)
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, c := range []Config{{LogLevel: "loud"}, {Token: "short"}, {After: "halt"}} {
		if c.Validate() == nil {
			t.Errorf("%+v validated", c)
		}
	}
}

// TestPprofListenLoopbackOnly pins that the profiler can only be put on a loopback
// address: it tells a caller everything the process holds.
func TestPprofListenLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"":               true,
		"127.0.0.1:6060": true,
		"[::1]:6060":     true,
		"localhost:0":    true,
		":6060":          false,
		"0.0.0.0:6060":   false,
		"10.0.0.1:6060":  false,
		"example.org:80": false,
		"127.0.0.1":      false,
		"[::]:6060":      false,
	} {
		err := Config{PprofListen: addr}.Validate()
		if (err == nil) != ok {
			t.Errorf("pprof_listen %q: Validate() = %v, want ok=%v", addr, err, ok)
		}
	}
}
