package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/internal/logbuf"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// The attacks of issue 13 on the deployment level, each against the real rpi-deployd:
// the attacker is a host of its own (source address 127.0.0.2), the real boards say
// hello from 127.0.0.1, as on a deploy network where each board has its address.

// attacker is an HTTP client whose connections come from 127.0.0.2.
func attacker() *http.Client { return attackerAt(2) }

// attackerAt is an HTTP client whose connections come from 127.0.0.N.
func attackerAt(n byte) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, n)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 100}}
}

// post sends v as JSON with an optional deployment secret and decodes a 2xx answer.
func post(t testing.TB, hc *http.Client, url, secret string, v, out any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set(agentapi.HeaderSecret, secret)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("POST %s: %v in %s", url, err, body)
		}
	}
	return resp.StatusCode, string(body)
}

func randomSerial() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomHello() agentapi.Hello {
	return agentapi.Hello{Serial: randomSerial(), MAC: "2c:cf:67:ee:ee:ee", Disk: agentapi.Disk{Device: "/dev/mmcblk0", SizeBytes: 32 << 30}}
}

// TestCrossBoardResult: board B (or any host) cannot post events or a result for
// board A's deployment: without A's secret it gets 401, with A's secret but its own
// serial 409, and A's deployment stays open. A re-hello of A gets the same deployment
// with a new secret, the old one stops working, A finishes with the new one. The
// secret never shows in the management API, the board history, the audit log, the
// pool export, the event stream or the server log.
func TestCrossBoardResult(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--log-level", "debug"}})
	fleet := srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 2, Image: testImage(t)})
	ctx := context.Background()

	// Everything published from now on, as a dashboard sees it.
	sse := startSSE(t, srv)

	a := hello(t, srv, helloOf(1)).Deployment
	b := hello(t, srv, helloOf(2)).Deployment
	if a == nil || b == nil || len(a.Secret) < 40 || a.Secret == b.Secret {
		t.Fatalf("deployments %+v %+v: want two with distinct secrets", a, b)
	}
	ev := fmt.Sprintf(agentapi.PathEvents, a.ID)
	res := fmt.Sprintf(agentapi.PathResult, a.ID)
	win := agentapi.Result{Serial: serialOf(2), Success: true, SHA256: fleet.Manifest.SHA256}
	for _, tc := range []struct {
		name, path, secret string
		body               any
		want               int
	}{
		{"event without secret", ev, "", agentapi.Event{Phase: "streaming"}, 401},
		{"event with B's secret", ev, b.Secret, agentapi.Event{Phase: "streaming"}, 401},
		{"result without secret", res, "", win, 401},
		{"result with B's secret", res, b.Secret, win, 401},
		{"result with A's secret, B's serial", res, a.Secret, win, 409},
		{"result without serial", res, a.Secret, agentapi.Result{Success: true, SHA256: fleet.Manifest.SHA256}, 400},
	} {
		if code, body := post(t, attacker(), srv.URL+tc.path, tc.secret, tc.body, nil); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
	}
	// An image download with a wrong secret is refused before any byte.
	req, _ := http.NewRequest(http.MethodGet, a.Image.URL, nil)
	req.Header.Set(agentapi.HeaderSecret, "not-"+a.Secret)
	if resp, err := attacker().Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("image with a wrong secret: %v %v, want 401", resp.Status, err)
	} else {
		resp.Body.Close()
	}
	var d mgmtapi.Deployment
	srv.Do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/deployments/%d", a.ID), nil, &d)
	if d.State != mgmtapi.DeployOpen || d.Phase != agentapi.PhaseHello {
		t.Fatalf("A's deployment after the attack: %s %s, want open hello", d.State, d.Phase)
	}

	// A reboots and says hello again: same deployment, new secret.
	a2 := hello(t, srv, helloOf(1)).Deployment
	if a2 == nil || a2.ID != a.ID || a2.Secret == a.Secret {
		t.Fatalf("re-hello: %+v, want deployment %d with a new secret", a2, a.ID)
	}
	fetch(t, a2)
	if code, body := post(t, httpc, srv.URL+ev, a.Secret, agentapi.Event{Phase: "streaming"}, nil); code != 401 {
		t.Errorf("old secret after re-hello: %d %s, want 401", code, body)
	}
	if code := event(t, srv, a2, agentapi.Event{Phase: "streaming", Bytes: 1}); code != 200 {
		t.Errorf("event with the new secret: %d", code)
	}
	if got, code := result(t, srv, a2, serialOf(1), agentapi.Result{Success: true, SHA256: fleet.Manifest.SHA256}); code != 200 || got.State != mgmtapi.DeployVerified {
		t.Fatalf("A's own result: %d %+v", code, got)
	}

	// Nowhere to be read.
	secrets := []string{a.Secret, a2.Secret, b.Secret}
	for _, path := range []string{fmt.Sprintf("/api/v1/deployments/%d", a.ID), "/api/v1/deployments", "/api/v1/boards",
		"/api/v1/boards/" + serialOf(1) + "/events", "/api/v1/audit", "/api/v1/pools/export?venue=CORO&product=KXP2",
		"/api/v1/deployments?csv=1", "/api/v1/fleet", "/metrics"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+srv.Token)
		resp, err := httpc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(raw) < 20 {
			t.Errorf("GET %s: %s, %d bytes, %v", path, resp.Status, len(raw), err)
		}
		assertNoSecret(t, "GET "+path, string(raw), secrets)
	}
	if !sse.WaitFor("deployment.finished", 10*time.Second) { // the stream's last event
		t.Errorf("event stream has no deployment.finished: %.300s", sse.String())
	}
	stream := sse.String()
	assertNoSecret(t, "event stream", stream, secrets)
	assertNoSecret(t, "server log", srv.Log(), secrets)
}

func assertNoSecret(t *testing.T, where, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s shows a deployment secret", where)
		}
	}
}

// sseLog is the management event stream read in the background (startSSE).
// String is what arrived so far; WaitFor waits for a text to arrive.
type sseLog struct {
	logbuf.Buffer
	done chan struct{}
}

// Ended waits for the stream to end (the server stopped) and returns all of it.
func (l *sseLog) Ended() string {
	<-l.done
	return l.String()
}

// startSSE reads the management event stream in the background, from now on.
func startSSE(t *testing.T, srv *servertest.Server) *sseLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		cancel()
		t.Fatalf("event stream: %v %v", resp, err)
	}
	l := &sseLog{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			l.Write([]byte(sc.Text() + "\n"))
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-l.done
	})
	return l
}

// TestPoolDrain: one host says hello with random serials, each followed by a failed
// result, as fast as the server answers. Before the defences that bound 1000 pool
// names in under 3 s. Now: the host introduces at most 120 new serials a
// minute, answers over its limits are held a second, and each name whose deployment
// failed before the board got the whole image goes back to the pool at once; so the
// pool keeps its names, and a real board says hello during the attack and gets a
// name and its image. The names a host that says
// hello and then sits on its deployments can hold are bounded per address, and
// `rpi-deployd pool release-unused` gives back the names of failed deployments.
func TestPoolDrain(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--max-streams", "1000", "--claim-timeout", "4s"}})
	srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 0, PoolSize: 20, Image: testImage(t)})
	ctx := context.Background()

	// The attack: hellos with random serials, each deployment failed at once, as fast
	// as the server answers, until the server has refused 3 of them (at most 1000
	// hellos; 60 s is only a safety net).
	var hellos, deploys, limited, failedOK atomic.Int64
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		hc := attacker()
		for limited.Load() < 3 && hellos.Load() < 1000 && time.Now().Before(deadline) {
			hellos.Add(1)
			h := randomHello()
			var r agentapi.HelloResponse
			if code, body := post(t, hc, srv.URL+agentapi.PathHello, "", h, &r); code != 200 {
				t.Errorf("attacker hello: %d %s", code, body)
				return
			}
			if r.Deployment == nil {
				if strings.Contains(r.Reason, "too many new boards") {
					limited.Add(1)
				}
				continue
			}
			deploys.Add(1)
			res := agentapi.Result{Serial: h.Serial, Phase: "streaming", Error: "no"}
			if code, _ := post(t, hc, srv.URL+fmt.Sprintf(agentapi.PathResult, r.Deployment.ID), r.Deployment.Secret, res, nil); code == 200 {
				failedOK.Add(1)
			}
		}
	}()
	defer wg.Wait() // also when a check below ends the test early
	// A real board arrives while the attack runs, and fetches its whole image at once
	// as a board does (its claim times out after 4 s; the attack may run longer).
	time.Sleep(time.Second)
	r := hello(t, srv, helloOf(1))
	if r.Deployment == nil || !strings.HasPrefix(r.Deployment.Hostname, "KXP2-CORO-0") {
		t.Fatalf("real board during the attack: %+v", r)
	}
	fetch(t, r.Deployment)
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d attack hellos answered in %s: %d deployments (each failed at once: %d), %d refused as too many new serials",
		hellos.Load(), elapsed.Round(time.Millisecond), deploys.Load(), failedOK.Load(), limited.Load())
	if most := 120 + int64(elapsed.Seconds()*2) + 1; deploys.Load() > most || limited.Load() < 3 {
		t.Errorf("one address got %d deployments for new serials in %s (%d refused), want at most %d and then refusals",
			deploys.Load(), elapsed.Round(time.Millisecond), limited.Load(), most)
	}
	var free []mgmtapi.PoolName
	srv.Do(ctx, http.MethodGet, "/api/v1/pools/names?venue=CORO&product=KXP2&free=1", nil, &free)
	if len(free) != 19 {
		t.Errorf("%d names free after the attack, want 19 (20 less the real board's)", len(free))
	}

	// Hello and sit (from another address: this one spent its new serials): the
	// host's open deployments are bounded per address (4)...
	var held []*agentapi.Deployment
	hc := attackerAt(3)
	for i := range 6 { // quick enough that none of the claims times out meanwhile
		var r agentapi.HelloResponse
		post(t, hc, srv.URL+agentapi.PathHello, "", randomHello(), &r)
		if r.Deployment != nil {
			held = append(held, r.Deployment)
		} else if i >= 4 && !strings.Contains(r.Reason, "deployments open from 127.0.0.3") {
			t.Errorf("hello %d of the sitting host: %+v, want retry for its open deployments", i+1, r)
		}
	}
	if len(held) != 4 {
		t.Fatalf("a host that sits on its deployments holds %d names, want 4", len(held))
	}
	// ...and they are abandoned, their names released, when the claim times out
	// (the boards never fetched their image), while the real board that fetched its
	// image keeps its name.
	deadline = time.Now().Add(30 * time.Second)
	for {
		srv.Do(ctx, http.MethodGet, "/api/v1/pools/names?venue=CORO&product=KXP2&free=1", nil, &free)
		if len(free) == 19 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(free) != 19 {
		t.Fatalf("%d names free after the claims timed out, want 19", len(free))
	}
	var d mgmtapi.Deployment
	if err := srv.Do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/deployments/%d", r.Deployment.ID), nil, &d); err != nil || d.State != mgmtapi.DeployOpen {
		t.Fatalf("the real board's deployment: %+v %v, want open", d, err)
	}

	// A host that fetches a KiB of the image and then reports a failure: it did not get
	// the whole image, so no card can carry the name, which goes back at once.
	hc = attackerAt(4)
	var r4 agentapi.HelloResponse
	h4 := randomHello()
	post(t, hc, srv.URL+agentapi.PathHello, "", h4, &r4)
	if r4.Deployment == nil {
		t.Fatalf("host 4: %+v", r4)
	}
	fetchSome(t, r4.Deployment)
	post(t, hc, srv.URL+fmt.Sprintf(agentapi.PathResult, r4.Deployment.ID), r4.Deployment.Secret,
		agentapi.Result{Serial: h4.Serial, Phase: "streaming", Error: "gone"}, nil)
	srv.Do(ctx, http.MethodGet, "/api/v1/pools/names?venue=CORO&product=KXP2&free=1", nil, &free)
	if len(free) != 19 {
		t.Errorf("%d names free after a failure with a partial image, want 19", len(free))
	}

	// Names that stay bound: a host that downloads the whole image before it reports
	// its failure keeps the name for its retry, as a real board would; and a
	// deployment abandoned after it streamed may have a booted card. `pool
	// release-unused` gives back the first kind (a failed card never boots), keeps the
	// second and the real board's (open).
	hc = attackerAt(5)
	for i := range 3 {
		h := randomHello()
		var r agentapi.HelloResponse
		post(t, hc, srv.URL+agentapi.PathHello, "", h, &r)
		if r.Deployment == nil {
			t.Fatalf("host 5: %+v", r)
		}
		if i < 2 {
			fetch(t, r.Deployment)
			post(t, hc, srv.URL+fmt.Sprintf(agentapi.PathResult, r.Deployment.ID), r.Deployment.Secret,
				agentapi.Result{Serial: h.Serial, Phase: "verifying", Error: "read-back mismatch"}, nil)
			continue
		}
		fetchSome(t, r.Deployment)
		if err := srv.Do(ctx, http.MethodPost, fmt.Sprintf("/api/v1/deployments/%d/abandon", r.Deployment.ID),
			map[string]string{"reason": "test"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	srv.Do(ctx, http.MethodGet, "/api/v1/pools/names?venue=CORO&product=KXP2&free=1", nil, &free)
	if len(free) != 16 {
		t.Fatalf("%d names free after 2 failures with the whole image and 1 abandoned deployment, want 16", len(free))
	}
	out := runCLI(t, srv, "pool", "release-unused", "--venue", "CORO", "--product", "KXP2", "--dry-run")
	if !strings.Contains(out, "would release 2 names") {
		t.Errorf("dry run: %q", out)
	}
	out = runCLI(t, srv, "pool", "release-unused", "--venue", "CORO", "--product", "KXP2")
	if !strings.Contains(out, "released 2 names") {
		t.Errorf("release-unused: %q", out)
	}
	srv.Do(ctx, http.MethodGet, "/api/v1/pools/names?venue=CORO&product=KXP2&free=1", nil, &free)
	if len(free) != 18 {
		t.Errorf("%d names free after release-unused, want 18 (the real board and the abandoned one keep theirs)", len(free))
	}
	// The real board finishes; it keeps its name through release-unused too.
	if got, code := result(t, srv, r.Deployment, serialOf(1), agentapi.Result{Success: true, SHA256: r.Deployment.Image.SHA256}); code != 200 || got.State != mgmtapi.DeployVerified {
		t.Fatalf("real board's result: %d %+v", code, got)
	}
	if out := runCLI(t, srv, "pool", "release-unused", "--dry-run"); !strings.Contains(out, "would release 0 names") {
		t.Errorf("release-unused after the real board verified: %q", out)
	}
}

// runCLI runs the real rpi-deployd binary's CLI against srv.
func runCLI(t *testing.T, srv *servertest.Server, args ...string) string {
	t.Helper()
	cmd := exec.Command(servertest.Binary(t), args...)
	cmd.Env = append(cmd.Environ(), "RPI_DEPLOY_SERVER="+srv.URL, "RPI_DEPLOY_TOKEN="+srv.Token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rpi-deployd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestSlotLockout: one host says hello with 64 random serials to fill max_streams
// (before the defences: every real board got retry for stale_after, 15 minutes,
// renewable). Now the host holds at most 4 open deployments, so a real board gets a
// deployment at once; and with the per-address limit off, claims of deployments
// that never fetched their image stop counting after claim_window, so a real board
// waits that long, not 15 minutes.
func TestSlotLockout(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		held     int           // deployments the attacker gets
		window   time.Duration // claim window: held claims free their slots after it (0: never)
		realWait time.Duration // at most, for the real board
	}{
		// The attacker's over-limit answers are held 50 ms (default 1 s) to keep the test short.
		{"per-address limit", []string{"--max-streams", "8", "--over-limit-delay", "50ms"}, 4, 0, 0},
		{"claim window", []string{"--max-streams", "8", "--max-open-per-source", "-1", "--claim-window", "3s"}, 8, 3 * time.Second, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := servertest.Start(t, servertest.Options{Args: tc.args})
			srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 0, PoolSize: 100, Image: testImage(t)})
			hc := attacker()
			held := 0
			begun := time.Now() // before every claim the attacker makes
			for range 64 {
				var r agentapi.HelloResponse
				post(t, hc, srv.URL+agentapi.PathHello, "", randomHello(), &r)
				if r.Deployment == nil {
					continue
				}
				held++
				// On a slow machine the 64 hellos can outlast the claim window: a slot
				// is free again once a claim is older than the window, never sooner.
				if held > tc.held && (tc.window == 0 || time.Since(begun) < tc.window) {
					t.Fatalf("the attacker got deployment %d after %s, want at most %d within %s",
						held, time.Since(begun).Round(time.Millisecond), tc.held, tc.window)
				}
			}
			if held < tc.held {
				t.Fatalf("the attacker got %d deployments, want %d", held, tc.held)
			}
			start := time.Now()
			var r agentapi.HelloResponse
			for {
				r = hello(t, srv, helloOf(1))
				if r.Action == agentapi.ActionDeploy || time.Since(start) > tc.realWait+5*time.Second {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			waited := time.Since(start)
			if r.Deployment == nil {
				t.Fatalf("real board after %s: %+v", waited.Round(time.Millisecond), r)
			}
			if waited > tc.realWait+2*time.Second {
				t.Errorf("real board waited %s, want at most about %s", waited.Round(time.Millisecond), tc.realWait)
			}
			// And it gets its image.
			fetch(t, r.Deployment)
			t.Logf("real board got %s after %s", r.Deployment.Hostname, waited.Round(time.Millisecond))
		})
	}
}

// TestSerialNameCollision: RXP2 boards are named from the low 32 bits of their
// serial; two serials alike there got the same name. Now the second takes the low
// 12 hex digits, a third alike in those the whole serial, and each keeps its name.
func TestSerialNameCollision(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	srv.Setup(t, servertest.Fleet{Venue: "ARIA", Product: "RXP2", Count: 0, Image: testImage(t)})
	want := map[string]string{
		"10000000abcdef12": "RXP2-ARIA-ABCDEF12",
		"20000000abcdef12": "RXP2-ARIA-0000ABCDEF12",
		"30000000abcdef12": "RXP2-ARIA-30000000ABCDEF12",
	}
	for round := range 2 {
		for i, serial := range []string{"10000000abcdef12", "20000000abcdef12", "30000000abcdef12"} {
			h := helloOf(i)
			h.Serial = serial
			r := hello(t, srv, h)
			if r.Deployment == nil || r.Deployment.Hostname != want[serial] {
				t.Errorf("round %d, %s: %+v, want %s", round, serial, r.Deployment, want[serial])
			}
		}
	}
}

// TestRetentionAndInputChecks: expired sessions are purged; a board's history keeps
// its newest events_per_board; boards of a random-serial hello flood that never got a
// deployment are forgotten after forget_boards_after; a deployment's phase history is
// bounded; pools/generate with a huge start is a 400; a manifest without
// compressed_sha256 is refused when the image is added.
func TestRetentionAndInputChecks(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--events-per-board", "5", "--forget-boards-after", "1s",
		"--claim-timeout", "2s", "--max-open-per-source", "-1"}})
	fleet := srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 0, PoolSize: 5, Image: testImage(t)})
	ctx := context.Background()

	// A user session that expired (written as an earlier run of the server left it).
	st, err := store.Open(ctx, srv.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Do(ctx, http.MethodPut, "/api/v1/users/ops", map[string]string{"password": "correct horse battery"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB.ExecContext(ctx, `INSERT INTO sessions (token_sha256, user, created_at, expires_at) VALUES ('old', 'ops', ?, ?)`,
		store.FormatTime(time.Now().Add(-48*time.Hour)), store.FormatTime(time.Now().Add(-24*time.Hour))); err != nil {
		t.Fatal(err)
	}

	// One board says hello 20 times: 20 history events. Its deployment streams.
	var d *agentapi.Deployment
	for range 20 {
		d = hello(t, srv, helloOf(1)).Deployment
	}
	fetch(t, d)
	// Phase ping-pong: the history of one deployment is bounded.
	for i := range 200 {
		ph := []string{"streaming", "verifying"}[i%2]
		if code := event(t, srv, d, agentapi.Event{Phase: ph}); code != 200 {
			t.Fatalf("event %d: %d", i, code)
		}
	}
	// A flood of random serials while no batch has room for them: retry answers.
	if err := srv.Do(ctx, http.MethodPost, fmt.Sprintf("/api/v1/batches/%d/pause", fleet.Batch.ID), nil, nil); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		post(t, attacker(), srv.URL+agentapi.PathHello, "", randomHello(), nil)
	}

	count := func(q string) int {
		var n int
		if err := st.RDB.QueryRowContext(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		events, boards, sessions := count(`SELECT count(*) FROM board_events WHERE serial = '`+serialOf(1)+`'`),
			count(`SELECT count(*) FROM boards`), count(`SELECT count(*) FROM sessions WHERE token_sha256 = 'old'`)
		if events <= 5 && boards == 1 && sessions == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention did not run: %d events of board 1 (want 5), %d boards (want 1), %d expired sessions", events, boards, sessions)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n := count(fmt.Sprintf(`SELECT count(*) FROM deployment_phases WHERE deployment_id = %d`, d.ID)); n > 64 {
		t.Errorf("deployment %d has %d phase rows, want at most 64", d.ID, n)
	}
	st.Close()

	// Bad input: a clear 400, nothing written.
	err = srv.Do(ctx, http.MethodPost, "/api/v1/pools/generate", map[string]any{"venue": "CORO", "product": "KXP2", "count": 10,
		"start": int64(9223372036854775800)}, nil)
	if statusOf(err) != 400 || !strings.Contains(err.Error(), "start") {
		t.Errorf("generate with a huge start: %v, want 400 naming start", err)
	}
	var free []mgmtapi.PoolName
	srv.Do(ctx, http.MethodGet, "/api/v1/pools/names?venue=CORO&product=KXP2", nil, &free)
	if len(free) != 5 {
		t.Errorf("pool has %d names after the refused generate, want 5", len(free))
	}
	m := *fleet.Manifest
	m.Name, m.CompressedSHA256 = "no-digest", ""
	err = srv.Do(ctx, http.MethodPut, "/api/v1/images/no-digest/manifest", m, nil)
	if statusOf(err) != 400 || !strings.Contains(err.Error(), "compressed_sha256") {
		t.Errorf("manifest without compressed_sha256: %v, want 400 naming compressed_sha256", err)
	}
	var imgs []mgmtapi.Image
	srv.Do(ctx, http.MethodGet, "/api/v1/images", nil, &imgs)
	for _, i := range imgs {
		if i.Name == "no-digest" {
			t.Errorf("refused manifest left image row %+v", i)
		}
	}
}

// TestEarlyReleaseKeepsVerifiedName: the early release of a name whose board did not
// get the whole image never takes a name the board's card carries from an earlier
// verified deployment: a board flagged for re-imaging whose new deployment fails
// before any image byte keeps its name, and gets it again.
func TestEarlyReleaseKeepsVerifiedName(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	fleet := srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 0, PoolSize: 3, Image: testImage(t)})
	ctx := context.Background()
	d := hello(t, srv, helloOf(1)).Deployment
	fetch(t, d)
	if got, code := result(t, srv, d, serialOf(1), agentapi.Result{Success: true, SHA256: fleet.Manifest.SHA256}); code != 200 || got.State != mgmtapi.DeployVerified {
		t.Fatalf("verified: %d %+v", code, got)
	}
	if err := srv.Do(ctx, http.MethodPost, "/api/v1/boards/"+serialOf(1)+"/reimage", map[string]bool{"reimage": true}, nil); err != nil {
		t.Fatal(err)
	}
	re := hello(t, srv, helloOf(1)).Deployment
	if re == nil || re.Hostname != d.Hostname {
		t.Fatalf("re-image: %+v, want %s", re, d.Hostname)
	}
	if _, code := result(t, srv, re, serialOf(1), agentapi.Result{Phase: "streaming", Error: "network down"}); code != 200 {
		t.Fatalf("failure: %d", code)
	}
	var p mgmtapi.PoolName
	var names []mgmtapi.PoolName
	srv.Do(ctx, http.MethodGet, "/api/v1/pools/names?venue=CORO&product=KXP2", nil, &names)
	for _, n := range names {
		if n.Name == d.Hostname {
			p = n
		}
	}
	if p.Serial != serialOf(1) {
		t.Fatalf("name %s after the failed re-image: held by %q, want %s", d.Hostname, p.Serial, serialOf(1))
	}
	if out := runCLI(t, srv, "pool", "release-unused", "--dry-run"); !strings.Contains(out, "would release 0 names") {
		t.Errorf("release-unused would take the verified board's name: %q", out)
	}
	if r := hello(t, srv, helloOf(2)); r.Deployment == nil || r.Deployment.Hostname == d.Hostname {
		t.Errorf("another board: %+v, must not get %s", r.Deployment, d.Hostname)
	}
}
