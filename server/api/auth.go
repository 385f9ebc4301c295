package api

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rpi-deploy/rpi-deploy/server/domain"
)

// SessionCookie is the dashboard's login cookie.
const SessionCookie = "rpi_deploy_session"

// auth lets a request through with the admin token (Authorization: Bearer) or a
// live session cookie, and tags its context with the actor for the audit log.
func (a *API) auth(c *gin.Context) {
	if tok, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer "); ok {
		if a.opt.Token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.opt.Token)) == 1 {
			c.Request = c.Request.WithContext(domain.WithActor(c.Request.Context(), "token"))
			c.Next()
			return
		}
		if user, err := a.svc.SessionUser(c.Request.Context(), tok); err == nil {
			c.Request = c.Request.WithContext(domain.WithActor(c.Request.Context(), "user:"+user))
			c.Set("user", user)
			c.Next()
			return
		}
		fail(c, http.StatusUnauthorized, "invalid token", "")
		return
	}
	if ck, err := c.Cookie(SessionCookie); err == nil && ck != "" {
		if !a.sameOrigin(c) {
			return
		}
		user, err := a.svc.SessionUser(c.Request.Context(), ck)
		if err == nil {
			c.Request = c.Request.WithContext(domain.WithActor(c.Request.Context(), "user:"+user))
			c.Set("user", user)
			c.Next()
			return
		}
		if !errors.Is(err, domain.ErrAuth) {
			failErr(c, err)
			return
		}
	}
	c.Header("WWW-Authenticate", `Bearer realm="rpi-deployd"`)
	fail(c, http.StatusUnauthorized, "authentication required: Authorization: Bearer TOKEN or a login session", "")
}

type loginRequest struct {
	User     string `json:"user"`
	Username string `json:"username"` // alias of user
	Password string `json:"password"`
}

// login: POST /api/v1/login {"user","password"} → session cookie (and the token in
// the body, usable as a Bearer token).
//
// Failed logins are counted per source address (the TCP peer, never a forwarded-for
// header): past Options.LoginFailures in Options.LoginWindow that address gets 429
// with Retry-After until the window ends, whatever it sends. Each failure is in the
// audit log (user.login_failed, with the address; never the password).
//
// Password checks run within a budget of their own (loginBudget: one at a time, at
// most half of one CPU, 16 waiting): a login that finds no place within 1 s gets 429
// with Retry-After: 1, so that logins, however many, never take the CPU the boards'
// requests need.
func (a *API) login(c *gin.Context) {
	if !a.sameOrigin(c) {
		return
	}
	var lr loginRequest
	if !bindJSON(c, &lr, 4<<10) {
		return
	}
	if lr.User == "" {
		lr.User = lr.Username
	}
	src := c.RemoteIP()
	if blocked, wait := a.logins.blocked(src, time.Now()); blocked {
		secs := int64(wait/time.Second) + 1
		c.Header("Retry-After", strconv.FormatInt(secs, 10))
		fail(c, http.StatusTooManyRequests, "too many failed logins from "+src+"; try again in "+
			strconv.FormatInt(secs, 10)+" s", "")
		return
	}
	var tok string
	var exp time.Time
	var err error
	if berr := a.logins.checks.do(c.Request.Context(), func() {
		tok, exp, err = a.svc.Login(c.Request.Context(), lr.User, lr.Password)
	}); berr != nil {
		c.Header("Retry-After", "1")
		fail(c, http.StatusTooManyRequests, "too many logins being checked; try again in 1 s", "")
		return
	}
	if err != nil {
		if errors.Is(err, domain.ErrAuth) {
			last := a.logins.fail(src, time.Now())
			if err := a.svc.LoginFailed(c.Request.Context(), lr.User, src, last); err != nil {
				a.log.Error("audit a failed login", "from", src, "err", err)
			}
			if last {
				a.log.Warn("failed logins: limit reached, address refused for the rest of the window", "from", src,
					"failures", a.opt.LoginFailures, "window", a.opt.LoginWindow)
			}
			fail(c, http.StatusUnauthorized, "wrong user or password", "")
			return
		}
		failErr(c, err)
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: tok, Path: "/", Expires: exp, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.Request.TLS != nil})
	c.JSON(http.StatusOK, gin.H{"user": lr.User, "expires": exp, "token": tok})
}

// logout: POST /api/v1/logout — ends the session of the cookie (or Bearer session token).
func (a *API) logout(c *gin.Context) {
	if !a.sameOrigin(c) {
		return
	}
	tok, _ := c.Cookie(SessionCookie)
	if b, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer "); ok {
		tok = b
	}
	if tok != "" {
		if err := a.svc.Logout(c.Request.Context(), tok); err != nil {
			failErr(c, err)
			return
		}
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
	c.JSON(http.StatusOK, gin.H{"ok": true})
}

// sameOrigin refuses (403) a state-changing request that a browser sent from another
// site (Sec-Fetch-Site, else Origin against Host: net/http.CrossOriginProtection), so
// that a page elsewhere cannot use an operator's session cookie. Safe methods and
// requests without those headers (the CLI, curl, agents) pass. It is applied where a
// cookie authenticates: Bearer-token calls cannot be forged by a browser.
func (a *API) sameOrigin(c *gin.Context) bool {
	if err := a.csrf.Check(c.Request); err != nil {
		fail(c, http.StatusForbidden, "cross-origin request refused: a browser sent it from another site ("+err.Error()+")", "")
		return false
	}
	return true
}

// me: GET /api/v1/me.
func (a *API) me(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"actor": domain.Actor(c.Request.Context()), "user": c.GetString("user")})
}

// Authenticated reports whether r carries the admin token or a live session (for
// the dashboard's page gate).
func (a *API) Authenticated(r *http.Request) bool {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if a.opt.Token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.opt.Token)) == 1 {
			return true
		}
		_, err := a.svc.SessionUser(r.Context(), tok)
		return err == nil
	}
	if ck, err := r.Cookie(SessionCookie); err == nil && ck.Value != "" {
		_, err := a.svc.SessionUser(r.Context(), ck.Value)
		return err == nil
	}
	return false
}
