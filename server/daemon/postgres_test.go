package daemon_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/internal/pgtest"
	"github.com/rpi-deploy/rpi-deploy/server/daemon"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// postHello sends a board's hello and returns the HTTP status and the answer.
func postHello(t *testing.T, srv *servertest.Server, serial string) (int, agentapi.HelloResponse) {
	t.Helper()
	h := agentapi.Hello{Serial: serial, MAC: "2c:cf:67:00:" + serial[12:14] + ":" + serial[14:16],
		Disk: agentapi.Disk{Device: "/dev/mmcblk0", SizeBytes: 32 << 30}, AgentVersion: "test"}
	body, _ := json.Marshal(h)
	resp, err := http.Post(srv.URL+agentapi.PathHello, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("hello %s: %v", serial, err)
	}
	defer resp.Body.Close()
	var r agentapi.HelloResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatalf("hello %s: %v", serial, err)
		}
	}
	return resp.StatusCode, r
}

// TestServeOnPostgres: serve --db postgres://… keeps its inventory in PostgreSQL
// (no SQLite file in the data directory; a second store opened on the URL sees the
// names bound), never logs the URL's password, and answers a hello with text
// PostgreSQL cannot hold 400. While PostgreSQL is stopped a
// hello is answered 200 retry with a delay and no name, and once PostgreSQL is back
// the same rpi-deployd (not restarted) binds the next name; a board that had a name
// gets the same one again.
func TestServeOnPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	const password = "pw-in-the-dsn-4711"
	dsn := strings.Replace(pg.CreateDB(t), "postgres@", "postgres:"+password+"@", 1)
	if !strings.Contains(dsn, password) {
		t.Fatalf("DSN %q: no user part to hold the password", dsn)
	}
	srv := servertest.Start(t, servertest.Options{DB: dsn, NoSourceLimits: true,
		Args: []string{"--log-level", "debug"}})
	img := servertest.PackedImage(t, t.TempDir(), "kxp2-pg", 1<<20+77, 1<<20)
	srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 3, Image: img})

	code, r := postHello(t, srv, "10000000000000a1")
	if code != http.StatusOK || r.Action != agentapi.ActionDeploy || r.Deployment.Hostname != "KXP2-CORO-001" {
		t.Fatalf("first hello: %d %+v", code, r)
	}
	// Text PostgreSQL cannot store is the board's bad input (400), not a 500.
	resp, err := http.Post(srv.URL+agentapi.PathHello, "application/json", strings.NewReader(
		`{"serial":"10000000000000b0","mac":"2c:cf:67:00:00:b0","model":"Pi\u00005","disk":{"device":"/dev/mmcblk0","size_bytes":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("hello with a NUL in its model: %d, want 400", resp.StatusCode)
	}
	if _, err := os.Stat(filepath.Join(srv.DataDir, store.FileName)); !os.IsNotExist(err) {
		t.Errorf("SQLite file in the data directory of a server on PostgreSQL: %v", err)
	}

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, serial := range []string{"10000000000000a2", "10000000000000a1"} {
		code, r = postHello(t, srv, serial)
		if code != http.StatusOK || r.Action != agentapi.ActionRetry || r.Reason != "database unavailable" || r.RetryAfterMS != domain.DefaultRetryAfter.Milliseconds() || r.Deployment != nil {
			t.Errorf("hello of %s with PostgreSQL stopped: %d %+v, want 200 retry after the default delay, no deployment", serial, code, r)
		}
	}
	// The management API says so too: 503 with Retry-After, not a 500.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/boards", nil)
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("GET /api/v1/boards with PostgreSQL stopped: %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	// The first statements after the restart may find connections the restart broke:
	// those hellos are answered retry too, and the board asks again.
	var got agentapi.HelloResponse
	for i := 0; i < 20 && got.Action != agentapi.ActionDeploy; i++ {
		code, got = postHello(t, srv, "10000000000000a2")
		if code != http.StatusOK || (got.Action != agentapi.ActionDeploy && got.Action != agentapi.ActionRetry) {
			t.Fatalf("hello after PostgreSQL restarted: %d %+v", code, got)
		}
	}
	if got.Action != agentapi.ActionDeploy || got.Deployment.Hostname != "KXP2-CORO-002" {
		t.Fatalf("hello after PostgreSQL restarted: %+v, want KXP2-CORO-002", got)
	}
	if code, r = postHello(t, srv, "10000000000000a1"); code != http.StatusOK || r.Deployment == nil || r.Deployment.Hostname != "KXP2-CORO-001" {
		t.Errorf("re-hello of the first board: %d %+v, want KXP2-CORO-001 again", code, r)
	}

	st, err := store.OpenDB(t.Context(), store.Config{Dir: t.TempDir(), URL: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for name, serial := range map[string]string{"KXP2-CORO-001": "10000000000000a1", "KXP2-CORO-002": "10000000000000a2"} {
		if p, err := st.PoolName(t.Context(), name); err != nil || p.Serial != serial {
			t.Errorf("pool name %s in PostgreSQL: %+v %v, want bound to %s", name, p, err, serial)
		}
	}
	log := srv.Log()
	if strings.Contains(log, password) {
		t.Errorf("the database password is in the log:\n%s", log)
	}
	if want := fmt.Sprintf("db=\"postgres %s/", pg.Socket); !strings.Contains(log, want) {
		t.Errorf("start line does not name the database as %q:\n%s", want, log)
	}
}

// TestDBFlagChecked: --db takes PostgreSQL URLs only, and the error does not echo a
// password.
func TestDBFlagChecked(t *testing.T) {
	var stderr bytes.Buffer
	_, err := daemon.Parse([]string{"--db", "mysql://u:secret-pw@host/db"}, env(nil), &stderr)
	if err == nil || !strings.Contains(err.Error(), "postgres://") || strings.Contains(err.Error(), "secret-pw") {
		t.Errorf("--db mysql://…: %v, want an error naming postgres:// without the password", err)
	}
	_, err = daemon.Parse([]string{"--db", "host=/run/postgresql password=secret-pw dbname=x"}, env(nil), &stderr)
	if err == nil || strings.Contains(err.Error(), "secret-pw") {
		t.Errorf("--db in keyword=value form: %v, want an error without the password", err)
	}
	opt, err := daemon.Parse([]string{"--db", "postgresql://u@/db?host=/run/postgresql"}, env(nil), &stderr)
	if err != nil || opt.Config.DB != "postgresql://u@/db?host=/run/postgresql" {
		t.Errorf("--db postgresql://…: %+v %v", opt.Config.DB, err)
	}
}
