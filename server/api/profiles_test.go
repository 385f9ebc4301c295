package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/client"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// Secrets of the profile tests; each must appear nowhere but in the hello answer
// (and there only as its hash or PSK).
const (
	testPassword   = "Secret-Pw-7c1e"
	testPassphrase = "wifi-passphrase-9d2f"
)

// sshKey makes a real public key with ssh-keygen.
func sshKey(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "op@test", "-f", dir+"/k").CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	out, err := exec.Command("cat", dir+"/k.pub").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func kioskProfile(key string) map[string]any {
	return map[string]any{
		"user": "kiosk", "password": testPassword, "ssh_authorized_keys": []string{key}, "ssh_password_auth": false,
		"wifi":   map[string]any{"ssid": "Venue Wi-Fi", "passphrase": testPassphrase, "country": "GB"},
		"locale": "en_GB.UTF-8", "timezone": "Europe/London", "keyboard": "gb",
		"files":    []map[string]any{{"path": "/etc/kiosk/board.conf", "mode": "0640", "content": "host={{.Hostname}} serial={{.Serial}} mac={{.MAC}} venue={{.Venue}} batch={{.Batch}} deployment={{.DeploymentID}} image={{.ImageName}}\n"}},
		"run_once": []string{"echo once >>/var/lib/kiosk-once"},
	}
}

// TestProfileValidation: each kind of bad input is a 400 whose field names it, and
// a refused save changes nothing.
func TestProfileValidation(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	key := sshKey(t)
	if err := srv.Do(ctx, http.MethodPut, "/api/v1/profiles/kiosk", kioskProfile(key), nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		set   func(map[string]any)
		field string
	}{
		{"timezone", func(p map[string]any) { p["timezone"] = "Mars/Olympus" }, "timezone"},
		{"locale", func(p map[string]any) { p["locale"] = "xx_YY.UTF-8" }, "locale"},
		{"keyboard", func(p map[string]any) { p["keyboard"] = "dvorak-ish" }, "keyboard"},
		{"malformed key", func(p map[string]any) { p["ssh_authorized_keys"] = []string{"ssh-rsa AAAAB3Nza== truncated"} }, "ssh_authorized_keys[0]"},
		{"key with newline", func(p map[string]any) { p["ssh_authorized_keys"] = []string{key + "\nssh-ed25519 AAAA x"} }, "ssh_authorized_keys[0]"},
		{"psk length", func(p map[string]any) {
			p["wifi"] = map[string]any{"ssid": "Venue Wi-Fi", "passphrase": "1234567"}
		}, "wifi.passphrase"},
		{"psk hex length", func(p map[string]any) {
			p["wifi"] = map[string]any{"ssid": "Venue Wi-Fi", "psk": strings.Repeat("ab", 31)}
		}, "wifi.psk"},
		{"path outside", func(p map[string]any) {
			p["files"] = []map[string]any{{"path": "/boot/firmware/cmdline.txt", "content": "x"}}
		}, "files[0].path"},
		{"relative path", func(p map[string]any) { p["files"] = []map[string]any{{"path": "../etc/shadow", "content": "x"}} }, "files[0].path"},
		{"unknown fact", func(p map[string]any) {
			p["files"] = []map[string]any{{"path": "/etc/x", "content": "{{.Hostname}} {{.Password}}"}}
		}, "files[0].content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := kioskProfile(key)
			tc.set(p)
			err := srv.Do(ctx, http.MethodPut, "/api/v1/profiles/kiosk", p, nil)
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Status != 400 || ce.Field != tc.field || !strings.Contains(ce.Msg, tc.field) {
				t.Fatalf("PUT = %v, want 400 naming field %q", err, tc.field)
			}
		})
	}
	var v map[string]any
	if err := srv.Do(ctx, http.MethodGet, "/api/v1/profiles/kiosk", nil, &v); err != nil {
		t.Fatal(err)
	}
	if v["timezone"] != "Europe/London" || v["password_set"] != true {
		t.Errorf("the stored profile changed after refused saves: %v", v)
	}
}

// TestProfileOnlyLaterDeployments: the effective profile is fixed when a deployment
// opens. A change reaches the next deployment, not the open one (whose board asks
// again after a reboot of the agent), and a batch's profile overrides the product's
// Wi-Fi field by field.
func TestProfileOnlyLaterDeployments(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	fleet := srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 3, PoolSize: 5, Image: testImage(t)})
	ctx := context.Background()
	key := sshKey(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(srv.Do(ctx, http.MethodPut, "/api/v1/profiles/kiosk", kioskProfile(key), nil))
	must(srv.Do(ctx, http.MethodPut, "/api/v1/profile-links/product/KXP2", map[string]string{"profile": "kiosk"}, nil))

	r1 := hello(t, srv, helloOf(1))
	fb1 := r1.Deployment.FirstBoot
	if fb1.User != "kiosk" || !strings.HasPrefix(fb1.PasswordHash, "$6$") || fb1.Timezone != "Europe/London" || fb1.WiFi == nil ||
		len(fb1.WiFi.PSK) != 64 || fb1.SSHPasswordAuth || len(fb1.Files) != 1 || len(fb1.RunOnce) != 1 {
		t.Fatalf("first boot of deployment 1: %+v", fb1)
	}
	wantFile := fmt.Sprintf("host=KXP2-CORO-001 serial=%s mac=%s venue=CORO batch=%d deployment=%d image=%s\n",
		serialOf(1), macOf(1), fleet.Batch.ID, r1.Deployment.ID, fleet.ImageName)
	if fb1.Files[0].Content != wantFile || fb1.Files[0].Mode != "0640" {
		t.Errorf("rendered file = %+v, want content %q", fb1.Files[0], wantFile)
	}

	// The profile changes (time zone) and a batch profile overrides the Wi-Fi.
	changed := kioskProfile(key)
	delete(changed, "password")
	changed["timezone"] = "Europe/Rome"
	changed["wifi"] = map[string]any{"ssid": "Venue Wi-Fi", "country": "GB"} // no passphrase: the PSK stays
	must(srv.Do(ctx, http.MethodPut, "/api/v1/profiles/kiosk", changed, nil))
	must(srv.Do(ctx, http.MethodPut, "/api/v1/profiles/test-rig", map[string]any{
		"wifi": map[string]any{"ssid": "Rig", "psk": strings.Repeat("0f", 32), "hidden": true, "country": "IT"}}, nil))
	must(srv.Do(ctx, http.MethodPut, fmt.Sprintf("/api/v1/profile-links/batch/%d", fleet.Batch.ID), map[string]string{"profile": "test-rig"}, nil))

	// The open deployment asks again: same deployment, same profile as it started with.
	again := hello(t, srv, helloOf(1))
	if again.Deployment.ID != r1.Deployment.ID || again.Deployment.FirstBoot.Timezone != "Europe/London" ||
		again.Deployment.FirstBoot.WiFi.SSID != "Venue Wi-Fi" || again.Deployment.FirstBoot.PasswordHash != fb1.PasswordHash {
		t.Errorf("open deployment changed with the profile: %+v", again.Deployment.FirstBoot)
	}
	// A new deployment gets the changed, merged profile.
	r2 := hello(t, srv, helloOf(2))
	fb2 := r2.Deployment.FirstBoot
	if fb2.Timezone != "Europe/Rome" || fb2.WiFi.SSID != "Rig" || !fb2.WiFi.Hidden || fb2.WiFi.PSK != strings.Repeat("0f", 32) ||
		fb2.User != "kiosk" || fb2.PasswordHash != fb1.PasswordHash {
		t.Errorf("new deployment: %+v (wifi %+v)", fb2, fb2.WiFi)
	}
	// Both are recorded, redacted, with their deployments.
	for _, tc := range []struct {
		id   int64
		name string
		tz   string
	}{{r1.Deployment.ID, "kiosk", "Europe/London"}, {r2.Deployment.ID, "kiosk+test-rig", "Europe/Rome"}} {
		var rec map[string]any
		must(srv.Do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/deployments/%d/profile", tc.id), nil, &rec))
		if rec["name"] != tc.name || rec["timezone"] != tc.tz || rec["password_set"] != true || rec["password_hash"] != nil ||
			rec["wifi"].(map[string]any)["psk"] != "set" {
			t.Errorf("deployment %d profile: %v", tc.id, rec)
		}
	}
	// Without any profile attached the answer has no profile fields.
	must(srv.Do(ctx, http.MethodDelete, fmt.Sprintf("/api/v1/profile-links/batch/%d", fleet.Batch.ID), nil, nil))
	must(srv.Do(ctx, http.MethodDelete, "/api/v1/profile-links/product/KXP2", nil, nil))
	if fb := hello(t, srv, helloOf(3)).Deployment.FirstBoot; fb.User != "" || fb.WiFi != nil || fb.PasswordHash != "" {
		t.Errorf("deployment without a profile: %+v", fb)
	}
	if err := srv.Do(ctx, http.MethodDelete, "/api/v1/profiles/nope", nil, nil); client.StatusOf(err) != 404 {
		t.Errorf("delete unknown profile: %v, want 404", err)
	}
	if err := srv.Do(ctx, http.MethodPut, "/api/v1/profile-links/venue/XXXX", map[string]string{"profile": "kiosk"}, nil); client.StatusOf(err) != 400 {
		t.Errorf("attach to unknown venue: %v, want 400", err)
	}
}

// TestProfileSecretsNowhere: the password, the Wi-Fi passphrase, the password hash
// and the PSK appear in no server log line, no CSV export, no event of the SSE
// stream and no audit entry, through a whole save-attach-deploy-change cycle.
func TestProfileSecretsNowhere(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	fleet := srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 2, PoolSize: 5, Image: testImage(t)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The event stream, from before the profile exists.
	sse := startSSE(t, srv)

	key := sshKey(t)
	p := kioskProfile(key)
	if err := srv.Do(ctx, http.MethodPut, "/api/v1/profiles/kiosk", p, nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.Do(ctx, http.MethodPut, "/api/v1/profile-links/venue/CORO", map[string]string{"profile": "kiosk"}, nil); err != nil {
		t.Fatal(err)
	}
	r := hello(t, srv, helloOf(1))
	hash, psk := r.Deployment.FirstBoot.PasswordHash, r.Deployment.FirstBoot.WiFi.PSK
	if hash == "" || psk == "" {
		t.Fatalf("the hello answer lacks the hash or PSK: %+v", r.Deployment.FirstBoot)
	}
	event(t, srv, r.Deployment, agentapi.Event{Phase: "streaming", Bytes: 1 << 20, Total: 3 << 20})
	result(t, srv, r.Deployment, helloOf(1).Serial, agentapi.Result{Success: true, SHA256: fleet.Manifest.SHA256, ChunksVerified: 3})
	// A save with a new password and passphrase, and a refused one that quotes them.
	p["password"], p["wifi"] = testPassword+"2", map[string]any{"ssid": "Venue Wi-Fi", "passphrase": testPassphrase + "2"}
	if err := srv.Do(ctx, http.MethodPut, "/api/v1/profiles/kiosk", p, nil); err != nil {
		t.Fatal(err)
	}
	p["timezone"] = testPassword
	if err := srv.Do(ctx, http.MethodPut, "/api/v1/profiles/kiosk", p, nil); client.StatusOf(err) != 400 {
		t.Fatalf("bad timezone: %v", err)
	}

	var audit, csv, profiles, deployments []byte
	for path, out := range map[string]*[]byte{"/api/v1/audit": &audit, "/api/v1/deployments?format=csv": &csv,
		"/api/v1/profiles": &profiles, "/api/v1/deployments": &deployments} {
		if err := srv.Do(ctx, http.MethodGet, path, nil, out); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(string(audit), "profile.put") || !strings.Contains(string(csv), "KXP2-CORO-001") {
		t.Fatalf("audit or CSV lacks the run:\n%s\n%s", audit, csv)
	}
	srv.Stop() // ends the stream and flushes the log
	stream := sse.Ended()
	if !strings.Contains(stream, "profile.changed") {
		t.Fatalf("the event stream has no profile.changed event:\n%s", stream)
	}
	for where, text := range map[string]string{"server log": srv.Log(), "CSV export": string(csv), "SSE stream": stream,
		"audit log": string(audit), "GET /profiles": string(profiles), "GET /deployments": string(deployments)} {
		for what, secret := range map[string]string{"password": testPassword, "passphrase": testPassphrase,
			"password hash": hash, "PSK": psk, "hash salt": strings.Split(hash, "$")[2]} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s holds the %s %q", where, what, secret)
			}
		}
	}
}
