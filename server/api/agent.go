package api

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
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
	if !bindJSON(c, &h, 64<<10) {
		return
	}
	start := time.Now()
	resp, err := a.svc.Hello(domain.WithSource(c.Request.Context(), remoteIP(c.Request)), h)
	a.Metrics.observeHello(time.Since(start), resp.Action, err)
	if err != nil {
		failErr(c, err)
		return
	}
	if d := resp.Deployment; d != nil {
		base := baseURL(c.Request)
		d.Image.URL = base + d.Image.URL
		d.Image.ManifestURL = base + d.Image.ManifestURL
	}
	c.JSON(http.StatusOK, resp)
}

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
// (header X-Deployment-Secret) marks that deployment as streaming; a wrong secret
// is refused with 401 before any byte is sent. Requests without the header are
// served as before (operators, curl). Manifests do not count as image bytes.
func (a *API) claimStream(c *gin.Context) {
	secret := c.GetHeader(agentapi.HeaderSecret)
	if secret == "" || !strings.HasSuffix(c.Param("file"), ".img.zst") || c.Request.Method != http.MethodGet {
		c.Next()
		return
	}
	if _, err := a.svc.StreamStarted(c.Request.Context(), secret); err != nil {
		failErr(c, err)
		return
	}
	c.Next()
}
