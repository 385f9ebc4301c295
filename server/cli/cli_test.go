package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/cli"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// runCLI runs one CLI invocation against srv and returns stdout, stderr, status.
func runCLI(t *testing.T, srv *servertest.Server, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	env := cli.Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Version: "test",
		Getenv: func(k string) string {
			switch k {
			case "RPI_DEPLOY_TOKEN":
				return srv.Token
			case "RPI_DEPLOY_SERVER":
				return srv.URL
			}
			return ""
		}}
	code := cli.Run(context.Background(), args, env)
	return out.String(), errb.String(), code
}

// TestCLI drives the commands of the README against a real server: venue, pool,
// image (resumable upload), batch, deployments (table and JSON), pool export and
// import, retire, board re-image, users, audit; and bad input exits non-zero with a
// message.
func TestCLI(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	dir := t.TempDir()
	img := servertest.PackedImage(t, dir, "kxp2-cli", 2<<20, 1<<20)

	steps := []struct {
		args []string
		want string // in stdout
	}{
		{[]string{"venue", "add", "CORO", "--name", "Coronado Karting"}, `venue CORO "Coronado Karting"`},
		{[]string{"venue", "list"}, "Coronado Karting"},
		{[]string{"pool", "add", "--venue", "CORO", "--product", "KXP2", "--count", "50"}, "added 50 names: KXP2-CORO-001 … KXP2-CORO-050"},
		{[]string{"image", "add", img, "--activate", "KXP2", "--allow-no-first-boot"}, "image kxp2-cli active for KXP2"},
		{[]string{"image", "list"}, "kxp2-cli"},
		{[]string{"batch", "add", "--venue", "CORO", "--product", "KXP2", "--count", "20", "--image", "kxp2-cli", "--allow-no-first-boot"}, "batch 1: CORO KXP2 count 20"},
		{[]string{"product", "add", "KXP3", "--naming", "pool", "--name", "KartXPro 3", "--timezone", "Europe/Berlin"}, "product KXP3 naming pool"},
		{[]string{"product", "list"}, "KXP3"},
		{[]string{"pool", "list"}, "CORO"},
		{[]string{"status"}, "batch 1 active CORO KXP2: 0/20 done"},
	}
	for _, s := range steps {
		out, errs, code := runCLI(t, srv, "", s.args...)
		if code != 0 || !strings.Contains(out, s.want) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want %q", s.args, code, out, errs, s.want)
		}
	}
	// A board takes a name; deployments shows it.
	var r agentapi.HelloResponse
	b, _ := json.Marshal(agentapi.Hello{Serial: "10000000deadbeef", MAC: "2c:cf:67:de:ad:01"})
	resp, err := srv.Client.HTTP.Post(srv.URL+agentapi.PathHello, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	out, _, code := runCLI(t, srv, "", "deployments")
	if code != 0 || !strings.Contains(out, "KXP2-CORO-001") || !strings.Contains(out, "10000000deadbeef") {
		t.Errorf("deployments: %d %q", code, out)
	}
	out, _, _ = runCLI(t, srv, "", "deployments", "--json")
	var ds []mgmtapi.Deployment
	if err := json.Unmarshal([]byte(out), &ds); err != nil || len(ds) != 1 || ds[0].Hostname != "KXP2-CORO-001" {
		t.Errorf("deployments --json: %v %q", err, out)
	}
	out, _, _ = runCLI(t, srv, "", "deployments", "--csv")
	if !strings.HasPrefix(out, "id,serial,mac,hostname") || !strings.Contains(out, "KXP2-CORO-001") {
		t.Errorf("deployments --csv: %q", out)
	}
	// Pools: export shows the holder; import into another venue; retire.
	out, _, _ = runCLI(t, srv, "", "pool", "export", "--venue", "CORO", "--product", "KXP2")
	if !strings.Contains(out, "KXP2-CORO-001,10000000deadbeef,0,") {
		t.Errorf("pool export: %q", out)
	}
	runCLI(t, srv, "", "venue", "add", "ARIA")
	csv := dir + "/aria.csv"
	os.WriteFile(csv, []byte("name,serial,retired\nKXP2-ARIA-007,,0\nKXP2-ARIA-008,10000000cafef00d,0\n"), 0o644)
	if out, errs, code := runCLI(t, srv, "", "pool", "import", "--venue", "ARIA", "--product", "KXP2", csv); code != 0 || !strings.Contains(out, "imported 2") {
		t.Errorf("pool import: %d %q %q", code, out, errs)
	}
	os.WriteFile(csv, []byte("KXP2-ARIA-009\nnot a hostname!\n"), 0o644)
	if _, errs, code := runCLI(t, srv, "", "pool", "import", "--venue", "ARIA", "--product", "KXP2", csv); code == 0 || !strings.Contains(errs, "line 2") {
		t.Errorf("bad CSV import: %d %q", code, errs)
	}
	out, _, _ = runCLI(t, srv, "", "pool", "list", "--venue", "ARIA", "--product", "KXP2", "--json")
	var names []mgmtapi.PoolName
	json.Unmarshal([]byte(out), &names)
	if len(names) != 2 || names[1].Serial != "10000000cafef00d" {
		t.Errorf("ARIA pool after a refused import: %+v", names)
	}
	if out, _, code := runCLI(t, srv, "", "pool", "retire", "KXP2-CORO-002"); code != 0 || !strings.Contains(out, "retired true") {
		t.Errorf("retire: %d %q", code, out)
	}
	// The next board skips the retired name.
	b, _ = json.Marshal(agentapi.Hello{Serial: "10000000deadbee2", MAC: "2c:cf:67:de:ad:02"})
	resp, err = srv.Client.HTTP.Post(srv.URL+agentapi.PathHello, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if r.Deployment == nil || r.Deployment.Hostname != "KXP2-CORO-003" {
		t.Errorf("after retiring 002: %+v", r.Deployment)
	}
	// Users: password from stdin; then from the environment-less stdin again.
	if out, errs, code := runCLI(t, srv, "s3cret-password\n", "user", "add", "ops"); code != 0 || !strings.Contains(out, "user ops") {
		t.Errorf("user add: %d %q %q", code, out, errs)
	}
	// --data writes the database directly (the server may run meanwhile: SQLite WAL);
	// the password comes from the environment here.
	var o, e bytes.Buffer
	code = cli.Run(context.Background(), []string{"user", "add", "night-shift", "--data", srv.DataDir},
		cli.Env{Stdout: &o, Stderr: &e, SetPassword: domain.SetPasswordInDB, Getenv: func(k string) string {
			if k == "RPI_DEPLOY_PASSWORD" {
				return "from-the-env-1"
			}
			return ""
		}})
	if code != 0 {
		t.Fatalf("user add --data: %d %s", code, e.String())
	}
	resp, err = srv.Client.HTTP.Post(srv.URL+"/api/v1/login", "application/json", strings.NewReader(`{"user":"night-shift","password":"from-the-env-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("login of a user added with --data: HTTP %d", resp.StatusCode)
	}
	if out, _, _ := runCLI(t, srv, "", "user", "list"); !strings.Contains(out, "ops") {
		t.Errorf("user list: %q", out)
	}
	if out, _, _ := runCLI(t, srv, "", "audit"); !strings.Contains(out, "pool.retire") || !strings.Contains(out, "venue.add") {
		t.Errorf("audit: %q", out)
	}
	// A name in use by an open deployment cannot be released; venues with names cannot go.
	if _, errs, code := runCLI(t, srv, "", "pool", "release", "KXP2-CORO-001"); code == 0 || !strings.Contains(errs, "open deployment") {
		t.Errorf("release of a name in use: %d %q", code, errs)
	}
	if _, errs, code := runCLI(t, srv, "", "venue", "rm", "CORO"); code == 0 || !strings.Contains(errs, "409") {
		t.Errorf("rm of a venue in use: %d %q", code, errs)
	}
	runCLI(t, srv, "", "venue", "add", "EMPT")
	if _, errs, code := runCLI(t, srv, "", "venue", "rm", "EMPT"); code != 0 {
		t.Errorf("rm of an unused venue: %d %q", code, errs)
	}
	if out, errs, code := runCLI(t, srv, "", "pool", "release", "KXP2-ARIA-008"); code != 0 || !strings.Contains(out, `serial ""`) {
		t.Errorf("release: %d %q %q", code, out, errs)
	}
	var entries []mgmtapi.AuditEntry
	if err := srv.Do(context.Background(), "GET", "/api/v1/audit?action=pool.&actor=token", nil, &entries); err != nil || len(entries) < 3 {
		t.Errorf("audit filter: %d entries, %v", len(entries), err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Action, "pool.") || e.Actor != "token" {
			t.Errorf("audit filter let through %+v", e)
		}
	}
	// Bad input: clear message, non-zero exit.
	for _, args := range [][]string{
		{"venue", "add", "coro"},
		{"pool", "add", "--venue", "NOPE", "--product", "KXP2", "--count", "5"},
		{"batch", "add", "--venue", "CORO", "--product", "KXP2", "--image", "missing"},
		{"image", "add", dir + "/missing.img.zst"},
		{"frobnicate"},
	} {
		if _, errs, code := runCLI(t, srv, "", args...); code == 0 || errs == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
	// Without the token the server refuses.
	var out2, errb bytes.Buffer
	code = cli.Run(context.Background(), []string{"venue", "list", "--server", srv.URL},
		cli.Env{Stdout: &out2, Stderr: &errb, Getenv: func(string) string { return "" }})
	if code == 0 || !strings.Contains(errb.String(), "401") {
		t.Errorf("without token: %d %q", code, errb.String())
	}
}
