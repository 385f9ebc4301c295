package dashboard

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// newServer mounts the dashboard on a real HTTP server; requests carrying the cookie
// "session=ok" count as authenticated.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	gin.SetMode(gin.TestMode)
	r := gin.New()
	Register(r, Config{Version: "v1.2.3-test", Authenticated: func(r *http.Request) bool {
		c, err := r.Cookie("session")
		return err == nil && c.Value == "ok"
	}})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

type req struct {
	method, path string
	session      bool
	accept       string
	header       map[string]string
}

func do(t *testing.T, srv *httptest.Server, q req) (*http.Response, string) {
	t.Helper()
	if q.method == "" {
		q.method = http.MethodGet
	}
	r, err := http.NewRequest(q.method, srv.URL+q.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.session {
		r.AddCookie(&http.Cookie{Name: "session", Value: "ok"})
	}
	if q.accept != "" {
		r.Header.Set("Accept", q.accept)
	}
	for k, v := range q.header {
		r.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

func TestRoutes(t *testing.T) {
	srv := newServer(t)
	const html = "text/html,application/xhtml+xml"
	for _, tc := range []struct {
		name     string
		req      req
		status   int
		location string // for redirects
		typ      string // Content-Type prefix
		contains string
	}{
		{"root without session goes to login", req{path: "/", accept: html}, 303, "/login", "", ""},
		{"root without session, not a navigation", req{path: "/"}, 401, "", "application/json", "login required"},
		{"root with session goes to the app", req{path: "/", session: true, accept: html}, 303, "/ui/", "", ""},
		{"login page is public", req{path: "/login", accept: html}, 200, "", "text/html", `id="login"`},
		{"login page HEAD", req{method: "HEAD", path: "/login"}, 200, "", "text/html", ""},
		{"login script is public", req{path: "/assets/login.js"}, 200, "", "text/javascript", "/api/v1/login"},
		{"style sheet is public", req{path: "/assets/style.css"}, 200, "", "text/css", ".row"},
		{"icon is public", req{path: "/assets/favicon.svg"}, 200, "", "image/svg+xml", "<svg"},
		{"unknown asset", req{path: "/assets/nope.js"}, 404, "", "application/json", "not found"},
		{"asset path cannot climb into the app", req{path: "/assets/../app/index.html"}, 404, "", "", ""},
		{"asset path cannot climb, encoded", req{path: "/assets/..%2fapp%2findex.html"}, 404, "", "", ""},
		{"app navigation without session", req{path: "/ui/", accept: html}, 303, "/login?next=%2Fui%2F", "", ""},
		{"app navigation keeps the query", req{path: "/ui/x?a=1", header: map[string]string{"Sec-Fetch-Mode": "navigate"}}, 303, "/login?next=%2Fui%2Fx%3Fa%3D1", "", ""},
		{"app module without session", req{path: "/ui/js/main.js"}, 401, "", "application/json", "login required"},
		{"app shell HEAD without session", req{method: "HEAD", path: "/ui/"}, 401, "", "", ""},
		{"app shell with session", req{path: "/ui/", session: true, accept: html}, 200, "", "text/html", `src="/ui/js/main.js"`},
		{"shell shows the version", req{path: "/ui/", session: true}, 200, "", "text/html", "v1.2.3-test"},
		{"client route gets the shell", req{path: "/ui/fleet", session: true, accept: html}, 200, "", "text/html", `id="view"`},
		{"app module with session", req{path: "/ui/js/main.js", session: true}, 200, "", "text/javascript", "import"},
		{"page module with session", req{path: "/ui/js/pages/fleet.js", session: true}, 200, "", "text/javascript", "export function render"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := do(t, srv, tc.req)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %q", res.StatusCode, tc.status, body)
			}
			if tc.location != "" {
				if got := res.Header.Get("Location"); got != tc.location {
					t.Errorf("Location %q, want %q", got, tc.location)
				}
			}
			if tc.typ != "" && !strings.HasPrefix(res.Header.Get("Content-Type"), tc.typ) {
				t.Errorf("Content-Type %q, want %s…", res.Header.Get("Content-Type"), tc.typ)
			}
			if !strings.Contains(body, tc.contains) {
				t.Errorf("body does not contain %q:\n%.300s", tc.contains, body)
			}
		})
	}
}

// The app shell must never reach a client without a session, whatever the path.
func TestAppFilesNeedSession(t *testing.T) {
	srv := newServer(t)
	for rel := range load("") {
		if !strings.HasPrefix(rel, "app/") {
			continue
		}
		p := "/ui/" + strings.TrimPrefix(rel, "app/")
		res, body := do(t, srv, req{path: p})
		if res.StatusCode != http.StatusUnauthorized || strings.Contains(body, "import") || strings.Contains(body, "<html") {
			t.Errorf("GET %s without session: %d %.80q", p, res.StatusCode, body)
		}
	}
}

func TestETagRevalidation(t *testing.T) {
	srv := newServer(t)
	res, _ := do(t, srv, req{path: "/assets/style.css"})
	etag := res.Header.Get("ETag")
	if etag == "" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q Cache-Control %q", etag, res.Header.Get("Cache-Control"))
	}
	res, body := do(t, srv, req{path: "/assets/style.css", header: map[string]string{"If-None-Match": etag}})
	if res.StatusCode != http.StatusNotModified || body != "" {
		t.Errorf("revalidation: %d %q, want 304 and no body", res.StatusCode, body)
	}
}

// A new version of the binary is a new ETag for the shell that shows it.
func TestVersionChangesETag(t *testing.T) {
	a, b := load("v1"), load("v2")
	if a["app/index.html"].etag == b["app/index.html"].etag {
		t.Error("index.html has the same ETag for two versions")
	}
	if !bytes.Contains(load("<b>")["app/index.html"].data, []byte("&lt;b&gt;")) {
		t.Error("version is not HTML-escaped")
	}
	if a["public/style.css"].etag != b["public/style.css"].etag {
		t.Error("style.css changed ETag with the version")
	}
}

func TestHTMLHeaders(t *testing.T) {
	srv := newServer(t)
	res, _ := do(t, srv, req{path: "/login"})
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	if res.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("X-Frame-Options %q", res.Header.Get("X-Frame-Options"))
	}
}

var (
	importRE = regexp.MustCompile(`(?m)^\s*import\s+(?:[^'"]*\s+from\s+)?['"]([^'"]+)['"]`)
	refRE    = regexp.MustCompile(`(?:src|href)="(/[^"#?]*)"`)
	remoteRE = regexp.MustCompile(`(?:src|href|from|url\()\s*=?\s*['"]?(?:https?:)?//`)
)

// Every module import and every page reference resolves to an embedded file, and
// nothing is loaded from another host (deployment networks have no internet).
func TestReferencesResolve(t *testing.T) {
	files := load("")
	served := func(p string) bool {
		switch {
		case strings.HasPrefix(p, "/assets/"):
			_, ok := files["public/"+strings.TrimPrefix(p, "/assets/")]
			return ok
		case strings.HasPrefix(p, "/ui/"):
			_, ok := files["app/"+strings.TrimPrefix(p, "/ui/")]
			return ok
		}
		return false
	}
	checked := 0
	for rel, f := range files {
		text := string(f.data)
		if m := remoteRE.FindString(text); m != "" {
			t.Errorf("%s loads something from another host: %q", rel, m)
		}
		switch path.Ext(rel) {
		case ".js":
			for _, m := range importRE.FindAllStringSubmatch(text, -1) {
				target := path.Join(path.Dir(rel), m[1])
				if _, ok := files[target]; !ok {
					t.Errorf("%s imports %q: no embedded file %s", rel, m[1], target)
				}
				checked++
			}
		case ".html":
			for _, m := range refRE.FindAllStringSubmatch(text, -1) {
				if !served(m[1]) {
					t.Errorf("%s refers to %s, which the dashboard does not serve", rel, m[1])
				}
				checked++
			}
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d references; the patterns are broken", checked)
	}
}
