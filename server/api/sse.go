package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rpi-deploy/rpi-deploy/server/events"
)

// heartbeat is how often an idle event stream sends a comment line.
const heartbeat = 15 * time.Second

// streamBatch is the shortest time between two writes of events to one stream: an
// event after a quiet spell goes out at once, the ones that follow it within
// streamBatch go together in one write. With many dashboards open, a burst of events
// then costs each stream a few writes, not one per event.
const streamBatch = 200 * time.Millisecond

// streamBusy and streamBusyBatch: after a write of streamBusy bytes or more (about
// 70 events: a fleet saying hello at once) the next write to that stream waits
// streamBusyBatch instead of streamBatch. A dashboard then gets a busy fleet's events
// once a second, and a thousand dashboards cost the server a fifth of the writes
// (each write is two or three system calls, whatever its size).
const (
	streamBusy      = 32 << 10
	streamBusyBatch = time.Second
)

// streamWrite is about the most bytes of events one write to a stream carries (a
// backlog goes in several, one after the other).
const streamWrite = 256 << 10

// events: GET /api/v1/events — Server-Sent Events, one per state change:
//
//	id: SEQ
//	event: TYPE
//	data: {"seq":SEQ,"time":"…","type":"TYPE","data":{…}}
//
// Resume with Last-Event-ID (or ?after=SEQ). When events were missed (the client was
// too slow or too long away) an event "reset" is sent: fetch /api/v1/fleet again.
// Events that follow each other within streamBatch arrive in one write (within
// streamBusyBatch while events come faster than streamBusy bytes a write).
// ?site=NAME leaves out the events of boards and deployments at other sites.
// At most Options.MaxEventStreams streams are open at once (503 past it); each write
// has Options.WriteTimeout, so a client that stops reading is cut, not waited for.
func (a *API) events(c *gin.Context) {
	site, good := querySite(c)
	if !good {
		return
	}
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
	cur, missed := a.svc.Bus().Follow(after)
	cur.OnlySite(site)
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
	pause := time.NewTimer(0)
	defer pause.Stop()
	ctx := c.Request.Context()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.opt.Shutdown:
			return
		case <-tick.C:
			if !send([]byte(": ping\n\n")) {
				return
			}
			continue
		case <-cur.Ready():
		}
		n, ok := writeEvents(cur, send)
		if !ok {
			return
		}
		if n >= streamWrite {
			continue // a backlog larger than one write: no pause in between
		}
		// Events published during the pause go out together in the next write.
		wait := streamBatch
		if n >= streamBusy {
			wait = streamBusyBatch
		}
		pause.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-a.opt.Shutdown:
			return
		case <-pause.C:
		}
	}
}

// writeEvents sends what cur has to read, up to streamWrite bytes, in one write: the
// bytes that every stream at the same position sends (events.Cursor.Shared), so a
// thousand streams cost a thousand writes and one copy of the events. n is the
// number of bytes written (streamWrite or more: there is more to read at once); ok is
// false when the stream must end: the write failed, or the client fell so far
// behind that events are gone (it is sent "reset" first).
func writeEvents(cur *events.Cursor, send func([]byte) bool) (n int, ok bool) {
	msg, lost := cur.Shared(streamWrite)
	if lost {
		send([]byte("event: reset\ndata: {\"reason\":\"client too slow\"}\n\n"))
		return 0, false
	}
	if len(msg) == 0 {
		return 0, true
	}
	return len(msg), send(msg)
}

// fleet: GET /api/v1/fleet, the dashboard's starting snapshot (mgmtapi.Fleet).
func (a *API) fleet(c *gin.Context) {
	site, good := querySite(c)
	if !good {
		return
	}
	f, err := a.svc.Fleet(c.Request.Context(), site)
	if err != nil {
		failErr(c, err)
		return
	}
	f.StreamsInFlight = a.Metrics.StreamsInFlight()
	c.JSON(http.StatusOK, f)
}
