package api

import (
	"encoding/json"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
)

// TestHelloResponseAsMarshal: appendHelloResponse writes json.Marshal's bytes (what
// c.JSON sent before) for hello answers of every kind: the three actions as the
// domain makes them, strings that need escaping, and random values of every field
// (testing/quick fills each field, pointers and slices present or not, strings of
// any runes), so that a field added to the wire types fails here until it is
// written too.
func TestHelloResponseAsMarshal(t *testing.T) {
	check := func(r agentapi.HelloResponse) bool {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendHelloResponse(nil, &r); string(got) != string(want) {
			t.Errorf("appendHelloResponse\n%s\njson.Marshal\n%s", got, want)
			return false
		}
		return true
	}
	for _, r := range []agentapi.HelloResponse{
		{Action: agentapi.ActionRetry, Reason: "no batch is taking boards", RetryAfterMS: 30000},
		{Action: agentapi.ActionBootLocal, Reason: "verified <already> & \"done\""},
		{Action: agentapi.ActionDeploy, Deployment: &agentapi.Deployment{ID: 7, Hostname: "KXP2-CORO-001", Product: "KXP2", Venue: "CORO",
			Image: agentapi.Image{Name: "kxp2", URL: "http://10.42.0.1:8080/images/kxp2.img.zst", ManifestURL: "http://10.42.0.1:8080/images/kxp2.manifest.json",
				SHA256: "ab", Size: 1 << 30, CompressedSize: 1 << 28,
				Swarm: &agentapi.Swarm{InfoHash: "cd", TorrentURL: "http://x/t", AnnounceURL: "http://x/a", IntervalMS: 2000}},
			FirstBoot: agentapi.FirstBoot{Hostname: "KXP2-CORO-001", SSHKeys: []string{"ssh-ed25519 AAAA pi@host"}, EnableSSH: true,
				User: "pi", PasswordHash: "$6$salt$hash", WiFi: &agentapi.WiFi{SSID: "venue\u2028net", PSK: "00ff", Country: "GB"},
				Files:   []agentapi.File{{Path: "/etc/app.json", Content: "{\"a\":\"<b>\"}\n"}, {Path: "/x", Mode: "0600", Owner: "pi", Content: "\x00\xff"}},
				RunOnce: []string{"systemctl enable app"}, Locale: "en_GB.UTF-8"},
			After: agentapi.AfterWait, Secret: "s3cr3t"}},
		{Action: agentapi.ActionDeploy, Deployment: &agentapi.Deployment{FirstBoot: agentapi.FirstBoot{SSHKeys: []string{}, Files: []agentapi.File{}}}},
	} {
		check(r)
	}
	rnd := rand.New(rand.NewSource(18))
	err := quick.Check(check, &quick.Config{MaxCount: 5000, Rand: rnd, Values: func(v []reflect.Value, r *rand.Rand) {
		x, _ := quick.Value(reflect.TypeFor[agentapi.HelloResponse](), r)
		v[0] = x
	}})
	if err != nil {
		t.Error(err)
	}
}

// BenchmarkHelloResponse: a deploy answer through json.Marshal (c.JSON) and
// appendHelloResponse (go test -bench HelloResponse -benchmem ./server/api).
func BenchmarkHelloResponse(b *testing.B) {
	r := agentapi.HelloResponse{Action: agentapi.ActionDeploy, Deployment: &agentapi.Deployment{ID: 7, Hostname: "RXP2-BNCH-ABCDEF01", Product: "RXP2", Venue: "BNCH",
		Image: agentapi.Image{Name: "bench", URL: "http://127.0.0.1:8080/images/bench.img.zst", ManifestURL: "http://127.0.0.1:8080/images/bench.manifest.json",
			SHA256: "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b", Size: 1 << 20, CompressedSize: 1 << 20},
		FirstBoot: agentapi.FirstBoot{Hostname: "RXP2-BNCH-ABCDEF01"}, Secret: "Q2T3DKZ6XKBHJ3WQ4V5LGNVBUE"}}
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(r)
		}
	})
	b.Run("appendHelloResponse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			appendHelloResponse(make([]byte, 0, 1024), &r)
		}
	})
}
