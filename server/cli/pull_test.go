package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/internal/pgtest"
	"github.com/rpi-deploy/rpi-deploy/server/cli"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// TestCLIImagePull: two servers on one PostgreSQL, sites a and b; an image added at
// a is brought to b by `image pull NAME --from a` against b, which shows the bytes
// and ends when b holds it ready; `image list --json` then shows both sites ready.
// A site that does not hold the image is a clear error.
func TestCLIImagePull(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.CreateDB(t)
	a := servertest.Start(t, servertest.Options{DB: dsn, Args: []string{"--site", "a"}})
	b := servertest.Start(t, servertest.Options{DB: dsn, Args: []string{"--site", "b"}})
	img := servertest.PackedImage(t, t.TempDir(), "kxp2-pull", 3<<20, 1<<20)

	if out, errs, code := runCLI(t, a, "", "image", "add", img, "--allow-no-first-boot"); code != 0 {
		t.Fatalf("image add at a: %d %s %s", code, out, errs)
	}
	out, errs, code := runCLI(t, b, "", "image", "pull", "kxp2-pull", "--from", "nowhere")
	if code == 0 || !strings.Contains(errs, `site "nowhere" does not hold image "kxp2-pull" ready`) {
		t.Fatalf("image pull from a site without it: %d %q %q", code, out, errs)
	}
	out, errs, code = runCLI(t, b, "", "image", "pull", "kxp2-pull", "--from", "a")
	if code != 0 || !strings.Contains(out, "image kxp2-pull ready at this site") || !strings.Contains(errs, "pulling kxp2-pull") {
		t.Fatalf("image pull at b: %d %q %q", code, out, errs)
	}
	if out, _, _ := runCLI(t, a, "", "image", "list"); !strings.Contains(out, "SITES") || !strings.Contains(out, " a,b ") {
		t.Fatalf("image list at a: %q; want the sites a,b", out)
	}
	out, errs, code = runCLI(t, a, "", "image", "list", "--json")
	if code != 0 {
		t.Fatalf("image list: %d %s", code, errs)
	}
	var imgs []mgmtapi.Image
	if err := json.Unmarshal([]byte(out), &imgs); err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || len(imgs[0].Sites) != 2 || imgs[0].Sites[0].State != "ready" || imgs[0].Sites[1].State != "ready" ||
		imgs[0].Sites[1].Source != "a" {
		t.Fatalf("image list at a: %+v; want sites a and b ready (b pulled from a)", imgs)
	}
	if out, _, code := runCLI(t, b, "", "image", "pull", "kxp2-pull"); code != 0 || !strings.Contains(out, "ready at this site") {
		t.Fatalf("image pull of an image b holds: %d %q", code, out)
	}
}

// TestUserAddDirectToPostgres: `user add NAME --db URL` writes the user into a
// PostgreSQL database that servers share, without any server (the first login of a
// fresh installation); the server then logs the user in. --data and --db together
// are refused, and the database URL's password appears in no message.
func TestUserAddDirectToPostgres(t *testing.T) {
	dsn := pgtest.Start(t).CreateDB(t)
	env := func(out, errs *bytes.Buffer) cli.Env {
		return cli.Env{Stdout: out, Stderr: errs, SetPassword: domain.SetPasswordInDB, Getenv: func(k string) string {
			if k == "RPI_DEPLOY_PASSWORD" {
				return "night-shift-pass-1"
			}
			return ""
		}}
	}
	var out, errs bytes.Buffer
	if code := cli.Run(context.Background(), []string{"user", "add", "night-shift", "--db", dsn}, env(&out, &errs)); code != 0 {
		t.Fatalf("user add --db: %d %s", code, errs.String())
	}
	srv := servertest.Start(t, servertest.Options{DB: dsn})
	resp, err := srv.Client.HTTP.Post(srv.URL+"/api/v1/login", "application/json",
		strings.NewReader(`{"user":"night-shift","password":"night-shift-pass-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("login of a user added with --db: HTTP %d", resp.StatusCode)
	}

	out.Reset()
	errs.Reset()
	if code := cli.Run(context.Background(), []string{"user", "add", "x", "--db", dsn, "--data", t.TempDir()}, env(&out, &errs)); code == 0 ||
		!strings.Contains(errs.String(), "give one") {
		t.Errorf("user add with --data and --db: %d %q", code, errs.String())
	}
	out.Reset()
	errs.Reset()
	bad := "postgres://admin:db-secret-77@/nodb?host=/nonexistent"
	if code := cli.Run(context.Background(), []string{"user", "add", "x", "--db", bad}, env(&out, &errs)); code == 0 ||
		strings.Contains(errs.String()+out.String(), "db-secret-77") {
		t.Errorf("user add --db of an unreachable database: %d %q (must fail without the URL's password)", code, errs.String())
	}
}
