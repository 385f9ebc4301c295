package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rpi-deploy/rpi-deploy/server/events"
)

// heartbeat is how often an idle event stream sends a comment line (all streams at
// the same instants: the multiples of heartbeat on the server's pacer).
const heartbeat = 15 * time.Second

// streamBatch is the interval of an event stream's writes while events keep coming:
// an event after a quiet spell goes out at once; the ones published in the
// streamBatch after a write wait for the next multiple of streamBatch on one clock
// shared by every stream of the server (pacer) and go together in one write. So a
// busy stream writes once per streamBatch (at most twice: the write at once and the
// next instant), whatever the number of events, and every busy stream writes at the
// same instants the same bytes (one read and one compression for all of them).
const streamBatch = 250 * time.Millisecond

// streamBusy and streamBusyBatch: after a write of streamBusy bytes or more (about
// 70 events: a fleet saying hello at once) the next write to that stream waits for
// the next multiple of streamBusyBatch instead of streamBatch. A dashboard then gets
// a busy fleet's events once a second, and a thousand dashboards cost the server a
// thousand writes a second (each a system call, whatever its size).
const (
	streamBusy      = 32 << 10
	streamBusyBatch = time.Second
)

// streamsPerStep: with more than streamsPerStep event streams open, the intervals
// (streamBatch, streamBusyBatch) are multiplied by the number of streamsPerStep
// started (1001–2000 streams: 500 ms and 2 s): while a fleet is busy, all the streams
// together then cost the server about streamsPerStep writes a second however many
// dashboards are open, and each of them gets its events a little less often. The
// multiples stay whole, so the instants of one step are instants of the steps below
// it, and streams that see different counts still read up to the same events there.
const streamsPerStep = 1000

// streamInterval is a stream's time to its next instant after a write of n bytes of
// events, with open streams open.
func streamInterval(n, open int) time.Duration {
	every := streamBatch
	if n >= streamBusy {
		every = streamBusyBatch
	}
	return every * time.Duration(max(1, (open+streamsPerStep-1)/streamsPerStep))
}

// streamWrite is about the most bytes of events one write to a stream carries: a
// stream that was caught up takes all that was published in streamBusyBatch in one
// write (at 4000 hellos a second, about 5 MB), and a backlog (a resume from far back)
// goes in several, one after the other.
const streamWrite = 8 << 20

// events: GET /api/v1/events — Server-Sent Events, one per state change:
//
//	id: SEQ
//	event: TYPE
//	data: {"seq":SEQ,"time":"…","type":"TYPE","data":{…}}
//
// Resume with Last-Event-ID (or ?after=SEQ). When events were missed (the client was
// too slow or too long away) an event "reset" is sent: fetch /api/v1/fleet again.
// An event after a quiet spell is sent at once; the events that follow within
// streamBatch arrive together at the next multiple of streamBatch (of streamBusyBatch
// while events come faster than streamBusy bytes a write; both longer with more than
// streamsPerStep streams open).
// ?site=NAME leaves out the events of boards and deployments at other sites.
// At most Options.MaxEventStreams streams are open at once (503 past it); each write
// has Options.WriteTimeout, so a client that stops reading is cut, not waited for.
// A client that accepts gzip (browsers do) gets the stream compressed (gzipStream).
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
	a.stream(c, a.svc.Bus(), after, site)
}

// stream sends bus's events after sequence number after (0: from now) to c as an
// event stream, of one site ("": all), until the client goes or the server shuts down.
func (a *API) stream(c *gin.Context, bus *events.Bus, after int64, site string) {
	cur, missed := bus.Follow(after)
	cur.OnlySite(site)
	s, ok := startEventStream(c, a.opt.WriteTimeout)
	if !ok {
		return
	}
	if s.conn != nil {
		defer s.conn.Close()
	}
	s.pace, s.shutdown, s.turn, s.writes, s.open = a.pace, a.opt.Shutdown, a.turn, &a.Metrics.streamWrites, a.streams
	first := fmt.Appendf(nil, ": connected seq %d\n\n", bus.Seq())
	if missed {
		first = []byte("event: reset\ndata: {\"reason\":\"events missed\"}\n\n")
	}
	if !s.sendOwn(first) {
		return
	}
	s.heart = s.pace.next(heartbeat)
	for {
		// Quiet: the next event goes out as soon as it is published.
		if !s.wait(cur.Ready(), nil) {
			return
		}
		var to int64 // the last event to read (0: all there is)
		for {
			n, ok := s.writeEvents(cur, to)
			if !ok {
				return
			}
			if n >= streamWrite {
				continue // a backlog larger than one write: no pause in between
			}
			// Busy: what is published until the next instant of the pacer goes out
			// then, in one write; nothing by then: quiet again (an event published
			// after the instant goes out at once). Half the bus's ring published
			// before the instant: everything goes out at once, before events the
			// stream has yet to send leave the ring.
			t := s.pace.next(streamInterval(n, len(s.open)))
			if !s.wait(t.C, cur.Filling()) {
				return
			}
			select {
			case <-t.C:
				to = t.seq
			default:
				to = 0
			}
			if !cur.MoreTo(to) {
				break
			}
		}
	}
}

// wait waits for ready or early to be closed (true; a nil early never is), sending
// the heartbeat when it is due; false: the stream has ended (the client went, or the
// server shuts down).
func (s *eventStream) wait(ready, early <-chan struct{}) bool {
	for {
		select {
		case <-s.gone:
			return false
		case <-s.shutdown:
			s.end()
			return false
		case <-s.heart.C:
			s.heart = s.pace.next(heartbeat)
			if !s.sendOwn([]byte(": ping\n\n")) {
				return false
			}
		case <-ready:
			return true
		case <-early:
			return true
		}
	}
}

// eventStream writes one GET /api/v1/events response. Over HTTP/1.x it takes the
// connection from net/http (hijack) and writes the response itself, the body
// delimited by the connection's close (RFC 9112, section 6.3), as an EventSource
// reads it: each write of events is then one write(2) of the shared bytes, where
// net/http's chunked writer makes three of a write larger than its 4 KiB buffer (the
// chunk's header with the first bytes, the rest, the chunk's end at the flush).
// Over HTTP/2 it writes through net/http.
type eventStream struct {
	w       gin.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration   // each write's (Options.WriteTimeout; 0: none)
	gone    <-chan struct{} // closed when the client has gone
	conn    net.Conn        // the hijacked connection (nil: net/http writes)
	raw     syscall.RawConn // its descriptor when it is plain TCP (rawConn; nil: none)
	head    []byte          // the response head, sent with the first write
	gz      *gzipStream     // nil: not compressed
	started bool            // the gzip header is out
	buf     []byte          // the stream's own messages, framed

	pace     pacer           // the server's (API.pace)
	heart    *tick           // the next heartbeat
	shutdown <-chan struct{} // Options.Shutdown
	turn     chan struct{}   // API.turn
	writes   *atomic.Int64   // Metrics.streamWrites
	open     chan struct{}   // API.streams: its length is the streams open
}

// startEventStream sets the response's headers and status 200 and, over HTTP/1.x,
// takes the connection (hijack); false: it could not, the stream ends.
func startEventStream(c *gin.Context, timeout time.Duration) (*eventStream, bool) {
	s := &eventStream{w: c.Writer, rc: http.NewResponseController(c.Writer), timeout: timeout, gone: c.Request.Context().Done()}
	c.Header("Content-Type", "text/event-stream; charset=utf-8")
	c.Header("Cache-Control", "no-cache")
	c.Header("X-Accel-Buffering", "no")
	c.Header("Vary", "Accept-Encoding")
	if acceptsGzip(c.GetHeader("Accept-Encoding")) {
		c.Header("Content-Encoding", "gzip")
		s.gz = &gzipStream{}
	}
	c.Status(http.StatusOK)
	if c.Request.ProtoMajor == 1 && !s.hijack() {
		return nil, false
	}
	return s, true
}

// hijack takes the connection over: the response head (status 200 and the headers
// set so far, with Connection: close) goes out with the first write. A goroutine
// reads what the client sends, to see it go (it should send nothing more). false:
// the connection could not be taken, nothing was sent; the stream ends.
func (s *eventStream) hijack() bool {
	conn, brw, err := s.rc.Hijack()
	if err != nil {
		return false
	}
	// net/http's read deadline (ReadTimeout) must not end the stream, and the write
	// deadline is set before each write.
	conn.SetDeadline(time.Time{})
	h := s.w.Header().Clone()
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	h.Write(&head)
	head.WriteString("\r\n")
	s.conn, s.raw, s.head = conn, rawConn(conn), head.Bytes()
	gone := make(chan struct{})
	s.gone = gone
	go func() {
		io.Copy(io.Discard, brw)
		close(gone)
	}()
	return true
}

// send writes b (after the response head, on a hijacked connection's first write)
// and flushes it, within the write timeout.
func (s *eventStream) send(b []byte) bool {
	if s.conn != nil {
		if s.timeout > 0 {
			s.conn.SetWriteDeadline(time.Now().Add(s.timeout))
		}
		if s.head != nil {
			b = append(s.head, b...)
			s.head = nil
		}
		_, err := s.conn.Write(b)
		return err == nil
	}
	moveWriteDeadline(s.rc, s.timeout)
	if _, err := s.w.Write(b); err != nil {
		return false
	}
	return s.rc.Flush() == nil
}

// frame starts s.buf with the gzip header if it is not out yet.
func (s *eventStream) frame() {
	s.buf = s.buf[:0]
	if s.gz != nil && !s.started {
		s.buf = append(s.buf, gzipHeader...)
		s.started = true
	}
}

// sendOwn sends a message of this stream alone (not shared: not compressed).
func (s *eventStream) sendOwn(msg []byte) bool {
	if s.gz == nil {
		return s.sendInTurn(msg)
	}
	s.frame()
	s.buf = s.gz.stored(s.buf, msg)
	return s.sendInTurn(s.buf)
}

// end ends a compressed stream cleanly (its final block and trailer) before the
// server closes it; a plain one needs nothing.
func (s *eventStream) end() {
	if s.gz != nil {
		s.frame()
		s.send(s.gz.end(s.buf))
	}
}

// writeEvents sends what cur has to read, up to event to (0: all) and up to
// streamWrite bytes, in one write: the bytes that every stream at the same position
// sends (events.Cursor.SharedReadTo, compressed once for all of them when the stream
// is), so a thousand streams cost a thousand writes and one copy of the events. n is
// the number of bytes of events written, before compression (streamWrite or more:
// there is more to read at once); ok is false when the stream must end: the write
// failed, or the client fell so far behind that events are gone (it is sent "reset"
// first).
func (s *eventStream) writeEvents(cur *events.Cursor, to int64) (n int, ok bool) {
	r, lost := cur.SharedReadTo(streamWrite, to)
	if lost {
		if s.sendOwn([]byte("event: reset\ndata: {\"reason\":\"client too slow\"}\n\n")) {
			s.end()
		}
		return 0, false
	}
	if len(r.Msg) == 0 {
		return 0, true
	}
	s.writes.Add(1)
	if s.gz == nil {
		return len(r.Msg), s.sendInTurn(r.Msg)
	}
	z, crc := r.Deflate()
	s.gz.add(crc, len(r.Msg))
	return len(r.Msg), s.sendInTurn(z)
}

// sendInTurn sends b as send does, but on a hijacked TCP connection the streams take
// turns (API.turn) for one attempt each, which takes what the socket's buffer has room
// for and never waits: the streams that wake at one instant (the pacer's) then write
// one after the other, not all at once on every core (the hellos' requests would wait
// behind a thousand runnable goroutines), and one client that does not read holds no
// one else up. What the attempt did not write is written after the turn, as send does.
func (s *eventStream) sendInTurn(b []byte) bool {
	if s.raw == nil || s.turn == nil || s.head != nil {
		return s.send(b)
	}
	var n int
	var err error
	if s.timeout > 0 {
		// The deadline of send's last write would fail this one once it has passed
		// (the poller checks it before any write), though this one never waits.
		s.conn.SetWriteDeadline(time.Time{})
	}
	s.turn <- struct{}{}
	werr := s.raw.Write(func(fd uintptr) bool {
		n, err = syscall.Write(int(fd), b)
		return true // one attempt: a full buffer (EAGAIN) is not waited for here
	})
	<-s.turn
	switch {
	case werr != nil:
		return false // the connection is closed
	case err == nil:
		return n == len(b) || s.send(b[n:])
	case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
		return s.send(b)
	}
	return false
}

// rawConn is c's descriptor, when c writes its bytes to it as they are (TCP, also
// through the connection limiter, connlimit.Conn); nil for any other connection: TLS
// (a *tls.Conn writes records, and is no syscall.Conn), a pipe.
func rawConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
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
