package api

import (
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// DefaultMaxEventStreams is Options.MaxEventStreams's default.
const DefaultMaxEventStreams = 64

// downloadChunk is how much of an image goes out under one write deadline.
const downloadChunk = 1 << 20

// uploadRoute is the one request whose body may take longer than the server's
// ReadTimeout: a multi-GB image upload.
const uploadRoute = "/api/v1/images/:name/data"

// uploadDeadline lets an image upload outlast http.Server.ReadTimeout as long as its
// bytes keep coming: the read deadline moves on by Options.ReadTimeout whenever a
// read returns data. A sender that stops for longer is cut.
func (a *API) uploadDeadline(c *gin.Context) {
	if a.opt.ReadTimeout > 0 && c.FullPath() == uploadRoute && c.Request.Body != nil {
		rc := http.NewResponseController(c.Writer)
		if rc.SetReadDeadline(time.Now().Add(a.opt.ReadTimeout)) == nil {
			c.Request.Body = &movingReadDeadline{ReadCloser: c.Request.Body, rc: rc, d: a.opt.ReadTimeout}
		}
	}
	c.Next()
}

type movingReadDeadline struct {
	io.ReadCloser
	rc   *http.ResponseController
	d    time.Duration
	last time.Time
}

func (m *movingReadDeadline) Read(p []byte) (int, error) {
	n, err := m.ReadCloser.Read(p)
	// Moving the deadline is cheap, but not free: at most every 100 ms.
	if now := time.Now(); n > 0 && now.Sub(m.last) > 100*time.Millisecond {
		m.last = now
		m.rc.SetReadDeadline(now.Add(m.d))
	}
	return n, err
}

// moveWriteDeadline gives the next write d from now (nothing when d is 0 or the
// writer cannot take deadlines).
func moveWriteDeadline(rc *http.ResponseController, d time.Duration) {
	if d > 0 {
		rc.SetWriteDeadline(time.Now().Add(d))
	}
}
