// Package dashboard is the operator's web console, embedded in rpi-deployd: plain
// HTML, CSS and JavaScript modules (no build step, no CDN), served from the binary.
//
// It knows nothing of the server's packages. The server mounts it with one call,
//
//	dashboard.Register(router, dashboard.Config{Authenticated: sessions.Valid})
//
// and keeps every data endpoint (the management API, the event stream) to itself. The
// dashboard's pages only call that API from the browser.
//
// Routes (GET and HEAD):
//
//	/                  → 303 to /ui/ (without a session: 303 to /login, or 401 for a script)
//	/login             the login page                         public
//	/assets/*file      the login page's CSS, script and icon  public
//	/ui/*path          the application (index.html + modules) session only
//
// Without a session, /ui/ answers a browser navigation with 303 to /login?next=PATH and
// anything else with 401; it never serves the application's files.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

//go:embed static
var staticFS embed.FS

// Paths the dashboard registers.
const (
	LoginPath  = "/login"
	AssetsPath = "/assets/" // public: the login page's files
	AppPath    = "/ui/"     // session only
)

// Config is what the dashboard needs from its host.
type Config struct {
	// Authenticated reports whether r carries a valid operator session (or the admin
	// token). nil means no request is authenticated: only the login page is served.
	Authenticated func(r *http.Request) bool
	// Version is shown in the application's footer (HTML-escaped); may be empty.
	Version string
}

// file is one embedded asset, hashed once for its ETag.
type file struct {
	name string
	data []byte
	etag string
}

// files maps a path below static/ ("public/login.html", "app/js/main.js") to its asset.
type files map[string]*file

func load(version string) files {
	out := files{}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, "static/")
		if rel == "app/index.html" {
			data = bytes.ReplaceAll(data, []byte("{{VERSION}}"), []byte(html.EscapeString(version)))
		}
		sum := sha256.Sum256(data) // after the version went in: a new version is a new ETag
		out[rel] = &file{name: path.Base(p), data: data, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		// The embedded tree is part of the binary: failing to walk it is a build bug.
		panic("dashboard: walk embedded files: " + err.Error())
	}
	return out
}

// Register mounts the dashboard on r. It registers only the routes listed in the
// package comment.
func Register(r gin.IRouter, cfg Config) {
	h := &handler{files: load(cfg.Version), cfg: cfg}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		r.Handle(m, "/", h.root)
		r.Handle(m, LoginPath, h.login)
		r.Handle(m, AssetsPath+"*file", h.asset)
		r.Handle(m, AppPath+"*path", h.app)
	}
}

type handler struct {
	files files
	cfg   Config
}

func (h *handler) authenticated(r *http.Request) bool {
	return h.cfg.Authenticated != nil && h.cfg.Authenticated(r)
}

func (h *handler) root(c *gin.Context) {
	switch {
	case h.authenticated(c.Request):
		c.Redirect(http.StatusSeeOther, AppPath)
	case wantsHTML(c.Request):
		c.Redirect(http.StatusSeeOther, LoginPath)
	default:
		unauthorized(c)
	}
}

// unauthorized answers a script's request without a session like the management API
// does: 401 with a JSON error.
func unauthorized(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "login required"})
}

func (h *handler) login(c *gin.Context) {
	h.serve(c, "public/login.html")
}

func (h *handler) asset(c *gin.Context) {
	h.serve(c, "public/"+strings.TrimPrefix(path.Clean(c.Param("file")), "/"))
}

func (h *handler) app(c *gin.Context) {
	if !h.authenticated(c.Request) {
		if wantsHTML(c.Request) {
			next := c.Request.URL.Path
			if c.Request.URL.RawQuery != "" {
				next += "?" + c.Request.URL.RawQuery
			}
			c.Redirect(http.StatusSeeOther, LoginPath+"?next="+url.QueryEscape(next))
			return
		}
		unauthorized(c)
		return
	}
	p := strings.TrimPrefix(path.Clean(c.Param("path")), "/")
	if _, ok := h.files["app/"+p]; !ok || p == "" {
		// Client-side routes (and /ui/ itself) get the application shell.
		p = "index.html"
	}
	h.serve(c, "app/"+p)
}

// serve writes the embedded file rel with its ETag; 404 when there is none.
func (h *handler) serve(c *gin.Context, rel string) {
	f, ok := h.files[rel]
	if !ok {
		c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": "not found"})
		return
	}
	w := c.Writer
	w.Header().Set("ETag", f.etag)
	// Revalidate every time: the ETag makes that a 304 unless the binary changed.
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if strings.HasSuffix(rel, ".html") {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("Referrer-Policy", "same-origin")
	}
	http.ServeContent(w, c.Request, f.name, time.Time{}, bytes.NewReader(f.data))
}

// csp allows only this origin: nothing is loaded from anywhere else.
const csp = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"

// wantsHTML reports whether r is a browser navigation rather than a script's fetch.
func wantsHTML(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Mode") == "navigate" {
		return true
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}
