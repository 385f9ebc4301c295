package api

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
)

func newStrictDecoder(r io.Reader) *json.Decoder {
	d := json.NewDecoder(r)
	d.DisallowUnknownFields()
	return d
}

// hello: POST /api/v1/agent/hello.
func (a *API) hello(c *gin.Context) {
	var h agentapi.Hello
	if err := readHello(c.Writer, c.Request.Body, c.Request.ContentLength, 64<<10, &h); err != nil {
		failBody(c, err)
		return
	}
	start := time.Now()
	resp, p2p, err := a.svc.HelloP2P(domain.WithSource(c.Request.Context(), remoteIP(c.Request)), h)
	a.Metrics.observeHello(time.Since(start), resp.Action, err)
	if err != nil {
		failErr(c, err)
		return
	}
	if d := resp.Deployment; d != nil {
		base := baseURL(c.Request)
		d.Image.URL = base + d.Image.URL
		d.Image.ManifestURL = base + d.Image.ManifestURL
		a.swarmHello(c, d, p2p)
	}
	// What c.JSON would send, byte for byte, without its reflection.
	bp := answerBufs.Get().(*[]byte)
	b := appendHelloResponse((*bp)[:0], &resp)
	// c.Data has copied the answer to the connection when it returns; the buffer is
	// cleared for the next hello (the answer holds the deployment's secret).
	c.Data(http.StatusOK, jsonContentType, b)
	clear(b)
	if cap(b) <= answerBufMax {
		*bp = b
		answerBufs.Put(bp)
	}
}

// answerBufs holds the buffers hello answers are written into: an answer is about
// 600 bytes (more with SSH keys and first-boot files), written to the connection
// before the handler returns. answerBufMax is the largest kept.
var answerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const answerBufMax = 16 << 10

// jsonContentType is the Content-Type of c.JSON's answers.
const jsonContentType = "application/json; charset=utf-8"

// baseURL is the scheme and host the client used.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	return scheme + "://" + strings.TrimSuffix(host, "/")
}

// event: POST /api/v1/deployments/:id/events.
func (a *API) event(c *gin.Context) {
	id, ok := idParam(c)
	if !ok {
		return
	}
	var e agentapi.Event
	if !bindJSON(c, &e, 64<<10) {
		return
	}
	d, err := a.svc.Event(c.Request.Context(), id, c.GetHeader(agentapi.HeaderSecret), e)
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, d)
}

// result: POST /api/v1/deployments/:id/result.
func (a *API) result(c *gin.Context) {
	id, ok := idParam(c)
	if !ok {
		return
	}
	var r agentapi.Result
	if !bindJSON(c, &r, 64<<10) {
		return
	}
	d, err := a.svc.Result(c.Request.Context(), id, c.GetHeader(agentapi.HeaderSecret), r)
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, d)
}

// remoteIP is the address of the connection's peer, without the port. Headers such
// as X-Forwarded-For are ignored: any host on the deployment network can write them.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// claimStream runs before an image download: a request carrying a deployment secret
// (header X-Deployment-Secret) marks that deployment as streaming, and the image
// bytes then sent are counted for it (a board that received fewer than the whole
// image cannot hold a named card); a wrong secret is refused with 401 before any
// byte is sent. Requests without the header are served as before (operators, curl).
// Manifests do not count as image bytes.
func (a *API) claimStream(c *gin.Context) {
	secret := c.GetHeader(agentapi.HeaderSecret)
	if secret == "" || !strings.HasSuffix(c.Param("file"), ".img.zst") || c.Request.Method != http.MethodGet {
		c.Next()
		return
	}
	id, err := a.svc.StreamStarted(c.Request.Context(), secret)
	if err != nil {
		failErr(c, err)
		return
	}
	w := &servedWriter{ResponseWriter: c.Writer}
	c.Writer = w
	c.Set(ctxStreamDeployment, id)
	c.Next()
	if err := a.svc.StreamServed(context.WithoutCancel(c.Request.Context()), id, w.n); err != nil {
		a.log.Error("count image bytes served", "deployment", id, "bytes", w.n, "err", err)
	}
}

// servedWriter counts the body bytes written through Gin's writer and, for the
// sendfile path (ReadFrom on the writer Unwrap gives), through the one underneath.
type servedWriter struct {
	gin.ResponseWriter
	n int64
}

func (w *servedWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *servedWriter) WriteString(s string) (int, error) {
	n, err := w.ResponseWriter.WriteString(s)
	w.n += int64(n)
	return n, err
}

// Unwrap is the net/http writer underneath, counted.
func (w *servedWriter) Unwrap() http.ResponseWriter {
	var inner http.ResponseWriter = w.ResponseWriter
	if u, ok := inner.(interface{ Unwrap() http.ResponseWriter }); ok {
		inner = u.Unwrap()
	}
	return servedRF{ResponseWriter: inner, n: &w.n}
}

// servedRF counts what goes through Write and ReadFrom (sendfile kept).
type servedRF struct {
	http.ResponseWriter
	n *int64
}

func (w servedRF) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	*w.n += int64(n)
	return n, err
}

func (w servedRF) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	}
	*w.n += n
	return n, err
}

// Unwrap keeps http.ResponseController working (write deadlines, flush).
func (w servedRF) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// sourceGate lets at most n agent-API requests of one source address run at once;
// the others wait (until their client gives up). A board makes one request at a
// time, so it never waits; a host that floods the agent API gets n workers' worth
// of the server, not all of it. n <= 0: no gate.
type sourceGate struct {
	n  int
	mu sync.Mutex
	m  map[string]*gateSlots
}

type gateSlots struct {
	ch   chan struct{}
	refs int // requests holding or waiting for a slot
}

func (g *sourceGate) handle(c *gin.Context) {
	if g.n <= 0 {
		c.Next()
		return
	}
	ip := remoteIP(c.Request)
	g.mu.Lock()
	if g.m == nil {
		g.m = map[string]*gateSlots{}
	}
	s := g.m[ip]
	if s == nil {
		s = &gateSlots{ch: make(chan struct{}, g.n)}
		g.m[ip] = s
	}
	s.refs++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		if s.refs--; s.refs == 0 {
			delete(g.m, ip)
		}
		g.mu.Unlock()
	}()
	select {
	case s.ch <- struct{}{}:
	case <-c.Request.Context().Done():
		fail(c, 499, "client gone while waiting for its address's turn", "")
		return
	}
	defer func() { <-s.ch }()
	c.Next()
}
