package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/rpi-deploy/rpi-deploy/dashboard"
	"github.com/rpi-deploy/rpi-deploy/server/api"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// dashboardPublic are the dashboard's routes that need no session: the login page and
// its own CSS, script and icon (dashboard.Register).
var dashboardPublic = map[string]bool{
	"GET /login": true, "HEAD /login": true, "GET /assets/*file": true, "HEAD /assets/*file": true,
}

// TestManagementRequiresAuth walks every registered route, the dashboard's included
// (mounted as rpi-deployd serve mounts it): all but the public ones (agent API, image
// downloads, health, login, the login page; /metrics needs the token too) refuse a request without a
// credential, and with a wrong one, with 401 and a JSON error; a browser navigation
// to a dashboard page without a session goes to the login page and sees nothing else.
func TestManagementRequiresAuth(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := domain.New(st, events.New(0, 0), domain.Options{DataDir: dir})
	var a *api.API
	engine, a := api.New(svc, api.Options{Token: "right-token-0123456789",
		Extra: []func(*gin.Engine, gin.HandlerFunc){func(r *gin.Engine, _ gin.HandlerFunc) {
			dashboard.Register(r, dashboard.Config{Authenticated: func(r *http.Request) bool { return a.Authenticated(r) }})
		}}})
	ts := httptest.NewServer(engine)
	defer ts.Close()

	managed, pages := 0, 0
	for _, r := range engine.Routes() {
		key := r.Method + " " + r.Path
		if api.PublicRoutes[key] || dashboardPublic[key] {
			continue
		}
		managed++
		path := strings.NewReplacer(":id", "1", ":code", "CORO", ":name", "x", ":serial", "10000000abcdef12",
			"*path", "js/main.js", "*file", "x").Replace(r.Path)
		if !strings.HasPrefix(r.Path, "/api/") && r.Path != "/metrics" && r.Method == http.MethodGet {
			pages++
			// A browser navigation without a session: to the login page, no body.
			req, _ := http.NewRequest(r.Method, ts.URL+path, nil)
			req.Header.Set("Accept", "text/html")
			req.Header.Set("Cookie", api.SessionCookie+"=forged")
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/login") {
				t.Errorf("%s navigation without a session: HTTP %d Location %q, want 303 to /login", key, resp.StatusCode, loc)
			}
			if strings.Contains(string(body), "import") || strings.Contains(string(body), "<html") {
				t.Errorf("%s navigation without a session leaks the page: %.100q", key, body)
			}
		}
		for _, auth := range []string{"", "Bearer wrong-token", "Basic YWRtaW46YWRtaW4="} {
			req, _ := http.NewRequest(r.Method, ts.URL+path, strings.NewReader("{}"))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s with %q: HTTP %d, want 401", key, auth, resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); r.Method != http.MethodHead && !strings.HasPrefix(ct, "application/json") {
				t.Errorf("%s: Content-Type %q", key, ct)
			}
		}
	}
	if managed < 40 || pages < 2 {
		t.Errorf("only %d management routes and %d dashboard pages found", managed, pages)
	}
	// The right token passes.
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/v1/venues", nil)
	req.Header.Set("Authorization", "Bearer right-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("with the token: HTTP %d", resp.StatusCode)
	}
}

// TestLoginSessions: no built-in credential; a user added with a password logs in
// and its cookie opens the management API; logout ends it.
func TestLoginSessions(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	login := func(user, pw string) (*http.Cookie, int) {
		resp, err := http.Post(srv.URL+"/api/v1/login", "application/json",
			strings.NewReader(`{"user":"`+user+`","password":"`+pw+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			if c.Name == api.SessionCookie {
				return c, resp.StatusCode
			}
		}
		return nil, resp.StatusCode
	}
	for _, cred := range [][2]string{{"admin", "admin"}, {"admin", ""}, {"root", "root"}, {"operator", "password"}} {
		if _, code := login(cred[0], cred[1]); code != 401 {
			t.Errorf("login %v: HTTP %d, want 401", cred, code)
		}
	}
	if err := srv.Do(ctx, http.MethodPut, "/api/v1/users/ops", map[string]string{"password": "short"}, nil); statusOf(err) != 400 {
		t.Errorf("short password: %v", err)
	}
	if err := srv.Do(ctx, http.MethodPut, "/api/v1/users/ops", map[string]string{"password": "correct horse"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, code := login("ops", "wrong horse"); code != 401 {
		t.Errorf("wrong password: %d", code)
	}
	ck, code := login("ops", "correct horse")
	if code != 200 || ck == nil || !ck.HttpOnly {
		t.Fatalf("login: %d %+v", code, ck)
	}
	get := func() int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/venues", nil)
		req.AddCookie(ck)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(); c != 200 {
		t.Errorf("with session: %d", c)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/logout", nil)
	req.AddCookie(ck)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := get(); c != 401 {
		t.Errorf("after logout: %d, want 401", c)
	}
}
