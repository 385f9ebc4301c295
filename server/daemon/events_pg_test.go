package daemon_test

import (
	"bufio"
	"context"
	"crypto/pbkdf2"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/rpi-deploy/rpi-deploy/internal/pgtest"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// sseMsg is one message of an event stream.
type sseMsg struct {
	ID    int64
	Event string
	Data  string
}

// stream opens GET /api/v1/events at srv, resuming after Last-Event-ID after (0:
// none), and returns its messages as they come (comments left out). The stream is
// closed when the test ends.
func stream(t *testing.T, srv *servertest.Server, after int64) <-chan sseMsg {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	if after > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("GET /api/v1/events: HTTP %d", resp.StatusCode)
	}
	out := make(chan sseMsg, 1024)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var m sseMsg
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m.Event != "" {
					out <- m
				}
				m = sseMsg{}
			case strings.HasPrefix(line, "id: "):
				m.ID, _ = strconv.ParseInt(line[4:], 10, 64)
			case strings.HasPrefix(line, "event: "):
				m.Event = line[7:]
			case strings.HasPrefix(line, "data: "):
				m.Data = line[6:]
			}
		}
	}()
	return out
}

// take reads n messages of s (a minute at most: they never came).
func take(t *testing.T, s <-chan sseMsg, n int) []sseMsg {
	t.Helper()
	var got []sseMsg
	timeout := time.After(time.Minute)
	for len(got) < n {
		select {
		case m, ok := <-s:
			if !ok {
				t.Fatalf("stream ended after %d of %d messages: %+v", len(got), n, got)
			}
			got = append(got, m)
		case <-timeout:
			t.Fatalf("%d of %d messages after a minute: %+v", len(got), n, got)
		}
	}
	return got
}

// TestEventsAcrossServers: two rpi-deployd on one PostgreSQL database. Changes made
// at either reach the event streams of both, the same messages in the same order
// with the same ids; a client that read some at one server resumes at the other with
// Last-Event-ID and gets exactly the rest; a server started later resumes a client
// too (it loads the latest events at start).
func TestEventsAcrossServers(t *testing.T) {
	dsn := pgtest.DB(t)
	a := servertest.Start(t, servertest.Options{DB: dsn})
	b := servertest.Start(t, servertest.Options{DB: dsn})
	sa, sb := stream(t, a, 0), stream(t, b, 0)
	ctx := t.Context()
	const n = 6
	for i := range n {
		srv := a
		if i%2 == 1 {
			srv = b
		}
		code := fmt.Sprintf("V%c%cX", 'A'+i, 'A'+i)
		if err := srv.Do(ctx, http.MethodPost, "/api/v1/venues", map[string]string{"code": code, "name": "Venue " + code}, nil); err != nil {
			t.Fatal(err)
		}
	}
	ga, gb := take(t, sa, n), take(t, sb, n)
	if diff := cmp.Diff(ga, gb); diff != "" {
		t.Fatalf("the two servers' streams differ (-a +b):\n%s", diff)
	}
	// One change each, ids one after the other. (Two changes at two servers are in the
	// order their events reached the database, which need not be the order of the
	// requests.)
	codes := map[string]bool{}
	for i, m := range ga {
		var ev struct {
			Data struct{ Code string }
		}
		if err := json.Unmarshal([]byte(m.Data), &ev); err != nil || m.Event != "venue.changed" || (i > 0 && m.ID != ga[i-1].ID+1) {
			t.Errorf("message %d: %+v (%v), want venue.changed, ids one after the other", i, m, err)
		}
		codes[ev.Data.Code] = true
	}
	for i := range n {
		if code := fmt.Sprintf("V%c%cX", 'A'+i, 'A'+i); !codes[code] {
			t.Errorf("no event for venue %s: %v", code, codes)
		}
	}

	// Read three at a, reconnect to b after the third.
	resumed := take(t, stream(t, b, ga[2].ID), n-3)
	if diff := cmp.Diff(ga[3:], resumed); diff != "" {
		t.Errorf("resume at the other server after id %d (-read at a +resumed at b):\n%s", ga[2].ID, diff)
	}
	// A third server, started now, resumes a client that read at a.
	c := servertest.Start(t, servertest.Options{DB: dsn})
	resumed = take(t, stream(t, c, ga[1].ID), n-2)
	if diff := cmp.Diff(ga[2:], resumed); diff != "" {
		t.Errorf("resume at a server started later, after id %d (-read at a +resumed at c):\n%s", ga[1].ID, diff)
	}
	// And a change made there reaches the first two.
	if err := c.Do(ctx, http.MethodPost, "/api/v1/venues", map[string]string{"code": "VZZX", "name": "Late"}, nil); err != nil {
		t.Fatal(err)
	}
	la, lb := take(t, sa, 1), take(t, sb, 1)
	if la[0].ID != ga[n-1].ID+1 || !strings.Contains(la[0].Data, `"VZZX"`) || !cmp.Equal(la, lb) {
		t.Errorf("a change at the third server: a got %+v, b got %+v", la, lb)
	}

	// /metrics reports the relay: nothing waits, nothing dropped, database reachable.
	// (The relay counts its last event written once COMMIT has answered, which may be
	// just after the other servers read it: the metric is read until it says 0.)
	m := metrics(t, c)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(m, "\nrpideploy_event_relay_pending 0\n") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		m = metrics(t, c)
	}
	for _, want := range []string{"\nrpideploy_event_relay_pending 0\n", "\nrpideploy_event_relay_dropped_total 0\n",
		"\nrpideploy_event_relay_unreachable 0\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, m)
		}
	}
}

// metrics is GET /metrics at srv.
func metrics(t *testing.T, srv *servertest.Server) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: HTTP %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// TestEventsTableHoldsNoSecrets: with a server on PostgreSQL, the events table holds
// exactly the data the event stream sends, and no secret: not a deployment's secret
// (a hello), not a profile's password, its crypt hash, Wi-Fi passphrase or PSK.
func TestEventsTableHoldsNoSecrets(t *testing.T) {
	dsn := pgtest.DB(t)
	srv := servertest.Start(t, servertest.Options{DB: dsn, NoSourceLimits: true})
	s := stream(t, srv, 0)
	img := servertest.PackedImage(t, t.TempDir(), "kxp2-ev", 1<<20+77, 1<<20)
	srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 3, Image: img})
	const password, passphrase, ssid = "kiosk-pw-0815", "wifi-pass-4711", "Venue"
	profile := map[string]any{"user": "kiosk", "password": password,
		"wifi": map[string]any{"ssid": ssid, "passphrase": passphrase, "country": "GB"}}
	if err := srv.Do(t.Context(), http.MethodPut, "/api/v1/profiles/kiosk", profile, nil); err != nil {
		t.Fatal(err)
	}
	code, hr := postHello(t, srv, "10000000000000b1")
	if code != http.StatusOK || hr.Deployment == nil || hr.Deployment.Secret == "" {
		t.Fatalf("hello: %d %+v", code, hr)
	}
	// Read the stream up to the deployment's creation: every event before it is in.
	var got []sseMsg
	for len(got) == 0 || got[len(got)-1].Event != "deployment.created" {
		got = append(got, take(t, s, 1)...)
	}

	psk, err := pbkdf2.Key(sha1.New, passphrase, []byte(ssid), 4096, 32)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT seq, type, data FROM events WHERE seq <= $1 ORDER BY seq`, got[len(got)-1].ID)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Seq        int64
		Type, Data string
	}
	table, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	var sent []row
	for _, m := range got {
		var ev struct{ Data json.RawMessage }
		if err := json.Unmarshal([]byte(m.Data), &ev); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, row{m.ID, m.Event, string(ev.Data)})
	}
	// The stream may leave out a board.changed or batch.changed that a later one
	// supersedes: compare the table with what was sent, seq by seq.
	bySeq := map[int64]row{}
	for _, r := range table {
		bySeq[r.Seq] = r
	}
	for _, m := range sent {
		if diff := cmp.Diff(bySeq[m.Seq], m); diff != "" {
			t.Errorf("event %d: table and stream differ (-table +stream):\n%s", m.Seq, diff)
		}
	}
	secrets := map[string]string{"deployment secret": hr.Deployment.Secret, "password": password,
		"passphrase": passphrase, "PSK": hex.EncodeToString(psk), "crypt hash": "$6$"}
	var profileEvents int
	for _, r := range table {
		if r.Type == "profile.changed" {
			profileEvents++
		}
		for name, v := range secrets {
			if strings.Contains(r.Data, v) {
				t.Errorf("event %d (%s) holds the %s: %s", r.Seq, r.Type, name, r.Data)
			}
		}
	}
	if profileEvents == 0 || len(table) < 5 {
		t.Errorf("%d events, %d about profiles: the test saw too little", len(table), profileEvents)
	}
}
