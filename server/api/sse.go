package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

// heartbeat is how often an idle event stream sends a comment line.
const heartbeat = 15 * time.Second

// events: GET /api/v1/events — Server-Sent Events, one per state change:
//
//	id: SEQ
//	event: TYPE
//	data: {"seq":SEQ,"time":"…","type":"TYPE","data":{…}}
//
// Resume with Last-Event-ID (or ?after=SEQ). When events were missed (the client was
// too slow or too long away) an event "reset" is sent: fetch /api/v1/fleet again.
// At most Options.MaxEventStreams streams are open at once (503 past it); each write
// has Options.WriteTimeout, so a client that stops reading is cut, not waited for.
func (a *API) events(c *gin.Context) {
	select {
	case a.streams <- struct{}{}:
		defer func() { <-a.streams }()
	default:
		c.Header("Retry-After", "10")
		fail(c, http.StatusServiceUnavailable, "too many event streams open (at most "+
			strconv.Itoa(cap(a.streams))+"); try again later", "")
		return
	}
	after, _ := strconv.ParseInt(c.GetHeader("Last-Event-ID"), 10, 64)
	if v := c.Query("after"); v != "" {
		after, _ = strconv.ParseInt(v, 10, 64)
	}
	sub, missed := a.svc.Bus().Subscribe(after)
	defer sub.Close()
	c.Header("Content-Type", "text/event-stream; charset=utf-8")
	c.Header("Cache-Control", "no-cache")
	c.Header("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	rc := http.NewResponseController(c.Writer)
	send := func(b []byte) bool {
		moveWriteDeadline(rc, a.opt.WriteTimeout)
		if _, err := c.Writer.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	first := fmt.Appendf(nil, ": connected seq %d\n\n", a.svc.Bus().Seq())
	if missed {
		first = []byte("event: reset\ndata: {\"reason\":\"events missed\"}\n\n")
	}
	if !send(first) {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	ctx := c.Request.Context()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.opt.Shutdown:
			return
		case <-sub.Lost:
			send([]byte("event: reset\ndata: {\"reason\":\"client too slow\"}\n\n"))
			return
		case <-tick.C:
			if !send([]byte(": ping\n\n")) {
				return
			}
		case ev := <-sub.C:
			if ev.SSE != nil && !send(ev.SSE) {
				return
			}
		}
	}
}

// fleet: GET /api/v1/fleet, the dashboard's starting snapshot (mgmtapi.Fleet).
func (a *API) fleet(c *gin.Context) {
	f, err := a.svc.Fleet(c.Request.Context())
	if err != nil {
		failErr(c, err)
		return
	}
	f.StreamsInFlight = a.Metrics.StreamsInFlight()
	c.JSON(http.StatusOK, f)
}
