// Package api is rpi-deployd's HTTP layer (Gin): the agent API, image downloads,
// the management API behind operator authentication, the SSE event stream, /healthz
// and /metrics. Handlers hold no SQL: they decode, call the domain, encode.
// docs/api.md describes every endpoint.
package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/connlimit"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/swarm"
)

// DefaultAgentPerSource is Options.AgentPerSource when zero.
const DefaultAgentPerSource = 4

// Options configure the handler.
type Options struct {
	// Token is the admin token (Authorization: Bearer TOKEN). "" = token auth off;
	// only user sessions work then.
	Token string
	// Logger; nil discards.
	Logger *slog.Logger
	// AgentOnlyListeners: when true, the agent API answers only on connections whose
	// context was marked with AgentContext (the agent listeners). When false it
	// answers everywhere.
	AgentOnlyListeners bool
	// AgentListenersOnlyAgent: when true, connections of the agent listeners (marked
	// with AgentContext) get only the agent API, image downloads and /healthz; the
	// management API, login and dashboard answer 404 there. Set when the management
	// listener uses TLS, so that no credential is ever sent in the clear on the deploy
	// network.
	AgentListenersOnlyAgent bool
	// Shutdown, when closed, ends the long-lived event streams (so that an HTTP
	// shutdown does not wait for them). nil: never.
	Shutdown <-chan struct{}
	// ReadTimeout is how long an image upload may go without a body byte (its read
	// deadline moves on by this much as bytes arrive). 0: no deadline of our own.
	ReadTimeout time.Duration
	// WriteTimeout is how long an image download may take for each 1 MiB, and the
	// event stream for each event (the write deadline moves on by this much before
	// each). 0: no deadline of our own.
	WriteTimeout time.Duration
	// MaxEventStreams caps the event streams open at once; past it GET
	// /api/v1/events gets 503. 0: DefaultMaxEventStreams.
	MaxEventStreams int
	// Conns, when set, is the HTTP listeners' connection limiter; /metrics reports it.
	Conns *connlimit.Limiter
	// EventRelay, when set, reports the event relay's counters for /metrics (servers
	// on one PostgreSQL, server/events/pgrelay): events waiting for the database, events
	// dropped past its bound, and whether the database was unreachable at the last try.
	EventRelay func() (pending int, dropped int64, unreachable bool)
	// Version is reported by /healthz.
	Version string
	// LoginFailures failed logins from one source address within LoginWindow lock that
	// address out of logging in until the window ends. Defaults DefaultLoginFailures
	// (10) and DefaultLoginWindow (10 minutes).
	LoginFailures int
	LoginWindow   time.Duration
	// AgentPerSource is how many agent-API requests (hello, events, result) of one
	// source address run at once; more wait their turn. Default 4; negative: no limit.
	AgentPerSource int
	// Swarm, when set, makes peer-to-peer image distribution possible: hello answers
	// invite boards into their image's swarm, when their batch's or image's mode, or
	// else P2P, says so, and the swarm endpoints answer those boards. nil: off, boards
	// fetch over HTTP alone.
	Swarm *swarm.Registry
	// P2P is the mode of images and batches whose mode is "inherit" (rpi-deployd
	// --p2p): true invites their boards into a swarm.
	P2P bool
	// Extra lets other parts (dashboard, netboot) add routes to the engine; called
	// with the engine and the middleware that enforces operator authentication.
	Extra []func(r *gin.Engine, auth gin.HandlerFunc)
}

// API holds the handlers' dependencies.
type API struct {
	svc     *domain.Service
	opt     Options
	log     *slog.Logger
	Metrics *Metrics
	started time.Time
	logins  *loginLimiter
	csrf    *http.CrossOriginProtection
	streams chan struct{} // one token per open event stream
	pace    pacer         // the event streams' shared instants
	turn    chan struct{} // the event stream writing (sendShared): one at a time
	upload  uploadMeter   // the server's image upload rate, for GET /api/v1/swarm
}

type agentKey struct{}

// AgentContext marks a listener's base context as being on the deployment network:
// the agent API answers there (when Options.AgentOnlyListeners is set).
func AgentContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, agentKey{}, true)
}

// New builds the Gin engine with every route.
func New(svc *domain.Service, opt Options) (*gin.Engine, *API) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.LoginFailures <= 0 {
		opt.LoginFailures = DefaultLoginFailures
	}
	if opt.LoginWindow <= 0 {
		opt.LoginWindow = DefaultLoginWindow
	}
	if opt.MaxEventStreams <= 0 {
		opt.MaxEventStreams = DefaultMaxEventStreams
	}
	a := &API{svc: svc, opt: opt, log: log, Metrics: NewMetrics(), started: time.Now(),
		logins: newLoginLimiter(opt.LoginFailures, opt.LoginWindow), csrf: http.NewCrossOriginProtection(),
		streams: make(chan struct{}, opt.MaxEventStreams), turn: make(chan struct{}, 1)}
	a.pace = newClockPacer(func() int64 { return a.svc.Bus().Seq() })
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery(), a.logRequests, a.agentListenerScope, a.uploadDeadline)
	r.HandleMethodNotAllowed = true
	r.NoRoute(func(c *gin.Context) { fail(c, http.StatusNotFound, "no such endpoint", "") })
	r.NoMethod(func(c *gin.Context) { fail(c, http.StatusMethodNotAllowed, "method not allowed", "") })

	r.GET("/healthz", a.healthz)
	r.GET("/images/:file", a.claimStream, a.swarmPieceTurn, a.download)
	r.HEAD("/images/:file", a.download)

	v1 := r.Group("/api/v1")
	gate := &sourceGate{n: opt.AgentPerSource}
	if opt.AgentPerSource == 0 {
		gate.n = DefaultAgentPerSource
	}
	ag := v1.Group("", a.agentOnly, gate.handle)
	ag.POST("/agent/hello", a.hello)
	ag.POST("/deployments/:id/events", a.event)
	ag.POST("/deployments/:id/result", a.result)
	a.swarmRoutes(ag, v1.Group("", a.auth))

	v1.POST("/login", a.login)
	v1.POST("/logout", a.logout)
	v1.POST("/session", a.login)
	v1.DELETE("/session", a.logout)

	v1.GET("/peer/images/:file", a.peerImage) // the peer credential, not an operator's
	v1.HEAD("/peer/images/:file", a.peerImage)

	r.GET("/metrics", a.auth, a.metrics) // Prometheus: bearer_token or authorization in the scrape config
	m := v1.Group("", a.auth)
	a.manageRoutes(m)
	for _, f := range opt.Extra {
		f(r, a.auth)
	}
	return r, a
}

// PublicRoutes are the routes that need no operator credential (the rest do).
var PublicRoutes = map[string]bool{
	"GET /healthz":                        true,
	"GET /images/:file":                   true,
	"HEAD /images/:file":                  true,
	"POST /api/v1/agent/hello":            true,
	"POST /api/v1/deployments/:id/events": true,
	"POST /api/v1/deployments/:id/result": true,
	"POST /api/v1/login":                  true,
	"POST /api/v1/logout":                 true,
	"POST /api/v1/session":                true,
	"DELETE /api/v1/session":              true,
}

func (a *API) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	if c.Writer.Status() >= 500 {
		a.log.Error("request", "method", c.Request.Method, "path", c.Request.URL.Path, "status", c.Writer.Status(),
			"duration", time.Since(start), "errors", c.Errors.String())
	} else if a.log.Enabled(c.Request.Context(), slog.LevelDebug) { // not to box the arguments for nothing
		a.log.Debug("request", "method", c.Request.Method, "path", c.Request.URL.Path, "status", c.Writer.Status(),
			"duration", time.Since(start))
	}
}

// agentRoutes are what an agent listener serves under Options.AgentListenersOnlyAgent.
var agentRoutes = map[string]bool{
	"GET /healthz":                        true,
	"GET /images/:file":                   true,
	"HEAD /images/:file":                  true,
	"POST /api/v1/agent/hello":            true,
	"POST /api/v1/deployments/:id/events": true,
	"POST /api/v1/deployments/:id/result": true,
}

func (a *API) agentListenerScope(c *gin.Context) {
	if a.opt.AgentListenersOnlyAgent {
		if v, _ := c.Request.Context().Value(agentKey{}).(bool); v && !agentRoutes[c.Request.Method+" "+c.FullPath()] {
			fail(c, http.StatusNotFound, "only the agent API and image downloads answer on the deployment network listeners; "+
				"the management API is on the TLS listener", "")
			return
		}
	}
	c.Next()
}

func (a *API) agentOnly(c *gin.Context) {
	if a.opt.AgentOnlyListeners {
		if v, _ := c.Request.Context().Value(agentKey{}).(bool); !v {
			fail(c, http.StatusNotFound, "the agent API answers only on the deployment network listeners", "")
			return
		}
	}
	c.Next()
}

// healthz: 200 when the database reads and writes and the disk has its reserve; 503
// with the reason otherwise. After a failed write it probes with a write of its own,
// so it turns 200 again by itself once the disk has room.
func (a *API) healthz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	v, err := a.svc.Health(ctx)
	if err != nil {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "error", "error": err.Error()})
		return
	}
	if free, reserve, err := a.svc.DiskFree(); err == nil && free < reserve {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "error", "free_bytes": free, "reserve_bytes": reserve,
			"error": "data directory nearly full: " + strconv.FormatInt(free, 10) + " bytes free, " +
				strconv.FormatInt(reserve, 10) + " kept free for the database"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok", "version": a.opt.Version, "schema": v, "site": a.svc.Options().Site,
		"uptime_s": int64(time.Since(a.started).Seconds())})
}

// fail writes the API's JSON error body and aborts.
func fail(c *gin.Context, code int, msg, field string) {
	c.AbortWithStatusJSON(code, agentapi.Error{Error: msg, Field: field})
}

// failErr maps a domain error to a status code.
func failErr(c *gin.Context, err error) {
	var fe *domain.FieldError
	var se *domain.SpaceError
	switch {
	case errors.As(err, &se):
		c.AbortWithStatusJSON(http.StatusInsufficientStorage, gin.H{"error": se.Error(), "needed_bytes": se.Needed,
			"free_bytes": se.Free, "reserve_bytes": se.Reserve})
	case errors.As(err, &fe):
		fail(c, http.StatusBadRequest, fe.Msg, fe.Field)
	case errors.Is(err, domain.ErrInvalid):
		fail(c, http.StatusBadRequest, err.Error(), "")
	case errors.Is(err, domain.ErrNotFound):
		fail(c, http.StatusNotFound, err.Error(), "")
	case errors.Is(err, domain.ErrConflict):
		fail(c, http.StatusConflict, err.Error(), "")
	case errors.Is(err, domain.ErrDigest):
		fail(c, http.StatusUnprocessableEntity, err.Error(), "")
	case errors.Is(err, domain.ErrAuth):
		fail(c, http.StatusUnauthorized, err.Error(), "")
	case errors.Is(err, domain.ErrUnavailable):
		c.Header("Retry-After", "5")
		fail(c, http.StatusServiceUnavailable, err.Error(), "")
	case errors.Is(err, context.Canceled):
		fail(c, 499, err.Error(), "")
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The client stopped sending within the read deadline (http_read_timeout).
		fail(c, http.StatusRequestTimeout, err.Error(), "")
	default:
		c.Error(err)
		fail(c, http.StatusInternalServerError, err.Error(), "")
	}
}

// bindJSON decodes the body strictly (unknown fields are an error), at most max bytes.
func bindJSON(c *gin.Context, v any, max int64) bool {
	dec := newStrictDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, max))
	if err := dec.Decode(v); err != nil {
		failBody(c, err)
		return false
	}
	return true
}

// failBody answers 400 for a request body that did not decode.
func failBody(c *gin.Context, err error) {
	fail(c, http.StatusBadRequest, "decode JSON body: "+err.Error(), "")
}

func idParam(c *gin.Context) (int64, bool) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		fail(c, http.StatusBadRequest, "id "+strconv.Quote(c.Param("id"))+" is not a positive number", "id")
		return 0, false
	}
	return id, true
}
