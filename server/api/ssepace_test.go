package api

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rpi-deploy/rpi-deploy/server/connlimit"
	"github.com/rpi-deploy/rpi-deploy/server/events"
)

// handPacer is a pacer whose instants come when the test says (fire), not with time:
// what a stream sends before an instant is what it sends at once.
type handPacer struct {
	seq   func() int64
	asked chan time.Duration // each next call's interval, as a stream asks

	mu    sync.Mutex
	ticks map[time.Duration]*tick
}

func newHandPacer(seq func() int64) *handPacer {
	return &handPacer{seq: seq, asked: make(chan time.Duration, 1024), ticks: map[time.Duration]*tick{}}
}

func (p *handPacer) next(every time.Duration) *tick {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.ticks[every]
	if t == nil {
		t = &tick{C: make(chan struct{})}
		p.ticks[every] = t
	}
	p.asked <- every
	return t
}

// fire brings the instant of interval every that streams wait for.
func (p *handPacer) fire(every time.Duration) {
	p.mu.Lock()
	t := p.ticks[every]
	delete(p.ticks, every)
	p.mu.Unlock()
	if t != nil {
		t.seq = p.seq()
		close(t.C)
	}
}

// waitAsked waits until n streams have asked for the next instant of interval every
// (heartbeats and other intervals asked meanwhile are passed over).
func (p *handPacer) waitAsked(t *testing.T, every time.Duration, n int) {
	t.Helper()
	for n > 0 {
		select {
		case d := <-p.asked:
			if d == every {
				n--
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d streams did not come to wait for the next %v instant in 30 s", n, every)
		}
	}
}

// streamServer serves bus's events at GET /events on a real loopback socket as
// GET /api/v1/events does (API.stream), paced by p.
func streamServer(t *testing.T, bus *events.Bus, p pacer, writeTimeout time.Duration) (*API, string) {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	a := &API{opt: Options{WriteTimeout: writeTimeout}, Metrics: NewMetrics(), pace: p, turn: make(chan struct{}, 1)}
	r := gin.New()
	r.GET("/events", func(c *gin.Context) { a.stream(c, bus, 0, "") })
	srv := httptest.NewUnstartedServer(r)
	srv.Listener = connlimit.New(connlimit.Options{}).Listen(srv.Listener) // as rpi-deployd's listeners
	srv.Start()
	t.Cleanup(srv.Close)
	return a, srv.URL + "/events"
}

// sseReader reads the events of one stream, as they come, into a channel of their
// sequence numbers (the comment lines and pings are passed over).
type sseReader struct {
	ids  chan int64
	done chan error
}

func readSSE(r io.Reader) *sseReader {
	s := &sseReader{ids: make(chan int64, 4096), done: make(chan error, 1)}
	go func() {
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadString('\n')
			if id, ok := strings.CutPrefix(line, "id: "); ok {
				var seq int64
				fmt.Sscan(id, &seq)
				s.ids <- seq
			}
			if err != nil {
				s.done <- err
				return
			}
		}
	}()
	return s
}

// want reads the next events of the stream and fails unless they are from..to, in
// order, each once.
func (s *sseReader) want(t *testing.T, name string, from, to int64) {
	t.Helper()
	for want := from; want <= to; want++ {
		select {
		case got := <-s.ids:
			if got != want {
				t.Fatalf("%s: event %d, want %d", name, got, want)
			}
		case err := <-s.done:
			t.Fatalf("%s: stream ended (%v) before event %d", name, err, want)
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: event %d did not come in 30 s", name, want)
		}
	}
}

// openStreams opens the test's three readers of url: Go's HTTP client plain, Go's
// HTTP client asking for gzip (and decoding it with compress/gzip), and
// curl --compressed. It returns once each has been answered (the stream's first
// line has come).
func openStreams(t *testing.T, ctx context.Context, url string) map[string]*sseReader {
	t.Helper()
	readers := map[string]*sseReader{}
	for _, gz := range []bool{false, true} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		name := "Go plain"
		if gz {
			req.Header.Set("Accept-Encoding", "gzip") // set by hand: Go's client does not decode it then
			name = "Go gzip"
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		var body io.Reader = resp.Body
		if gz {
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("asked for gzip, got Content-Encoding %q", resp.Header.Get("Content-Encoding"))
			}
			zr, err := gzip.NewReader(resp.Body) // reads the header, which comes with the first line
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		}
		br := bufio.NewReader(body)
		if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, ": connected") {
			t.Fatalf("%s: first line %q, %v", name, line, err)
		}
		readers[name] = readSSE(br)
	}
	curl := exec.CommandContext(ctx, "curl", "-sSN", "--compressed", url)
	out, err := curl.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := curl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { curl.Process.Kill(); curl.Wait() })
	br := bufio.NewReader(out)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, ": connected") {
		t.Fatalf("curl --compressed: first line %q, %v", line, err)
	}
	readers["curl --compressed"] = readSSE(br)
	return readers
}

// TestStreamPacing pins what a stream's writes are: an event at a quiet time goes out
// at once (it reaches every reader while the pacer has brought no instant at all); a
// burst of 1000 events published after it reaches each stream in one write, at the
// pacer's next instant, all of them in order; after an instant with nothing new the
// stream is quiet again, and the next event goes at once, also after the write
// timeout has passed since the last write (a write that does not wait once failed
// then, on the deadline its stream's previous write had set). Writes are counted
// (the server's rpideploy_event_stream_writes_total), not timed. Three readers: Go
// plain, Go with gzip, curl --compressed.
func TestStreamPacing(t *testing.T) {
	const writeTimeout = 2 * time.Second
	bus := events.New(4096, 1)
	p := newHandPacer(bus.Seq)
	a, url := streamServer(t, bus, p, writeTimeout)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readers := openStreams(t, ctx, url)
	writes := func() int64 { return a.Metrics.streamWrites.Load() }
	n := int64(len(readers))

	bus.Publish(events.BoardNetboot, map[string]string{"serial": "quiet", "kind": "dhcp.offer"})
	for name, r := range readers {
		r.want(t, name, 1, 1)
	}
	if got := writes(); got != n {
		t.Fatalf("one event at a quiet time: %d writes to %d streams, want one each", got, n)
	}

	p.waitAsked(t, streamBatch, len(readers)) // every stream now holds what comes until the instant
	for i := range 1000 {
		bus.Publish(events.DeploymentProgress, map[string]any{"id": i, "phase": "streaming", "bytes": i << 20})
	}
	p.fire(streamBatch)
	for name, r := range readers {
		r.want(t, name, 2, 1001)
	}
	if got := writes() - n; got != n {
		t.Fatalf("a burst of 1000 events: %d writes to %d streams, want one each", got, n)
	}

	// The burst's write was over streamBusy: the streams wait for the busy instant.
	p.waitAsked(t, streamBusyBatch, len(readers))
	p.fire(streamBusyBatch)                   // nothing new by then: quiet again
	time.Sleep(writeTimeout + writeTimeout/2) // past every deadline a write has set
	bus.Publish(events.BoardNetboot, map[string]string{"serial": "quiet-again", "kind": "dhcp.offer"})
	for name, r := range readers {
		r.want(t, name, 1002, 1002)
	}
	if got := writes() - 2*n; got != n {
		t.Fatalf("an event after a quiet instant: %d writes to %d streams, want one each", got, n)
	}
}

// TestStreamThatDoesNotReadHoldsNoOne: a client that opens a stream and reads
// nothing (a hostile host on the network, or a hung one) delays no other stream: the
// streams take turns for their writes (sendShared) but the turn is only ever one
// attempt that does not wait, so a reader gets every event of a burst larger than
// what the kernel can buffer for the stuck one (its socket's send and receive buffers
// at their largest), which the stuck one's writes therefore wait on.
func TestStreamThatDoesNotReadHoldsNoOne(t *testing.T) {
	const size, count = 64 << 10, 768
	if buffers := maxTCPBuffer(t, "tcp_wmem") + maxTCPBuffer(t, "tcp_rmem"); size*count <= buffers {
		t.Fatalf("the burst (%d bytes) must exceed what loopback TCP can buffer (%d)", size*count, buffers)
	}
	bus := events.New(1024, 1)
	_, url := streamServer(t, bus, newClockPacer(bus.Seq), time.Minute)
	stuck, err := net.Dial("tcp", strings.TrimPrefix(url, "http://")[:strings.Index(strings.TrimPrefix(url, "http://"), "/")])
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	if _, err := io.WriteString(stuck, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, ": connected") {
		t.Fatalf("first line %q, %v", line, err)
	}
	r := readSSE(br)
	payload := bytes.Repeat([]byte("a"), size)
	for range count {
		bus.Publish(events.BoardNetboot, map[string]string{"serial": "big", "kind": "dhcp.offer", "message": string(payload)})
	}
	r.want(t, "the reader beside a stuck stream", 1, count)
}

// maxTCPBuffer is the largest a loopback TCP socket's buffer grows to (the third
// number of net.ipv4.NAME).
func maxTCPBuffer(t *testing.T, name string) int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/" + name)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	n, err := strconv.Atoi(f[len(f)-1])
	if err != nil {
		t.Fatalf("%s: %q", name, b)
	}
	return n
}

// TestRawConnOnlyForPlainTCP: the streams' write without waiting (sendInTurn) goes to
// the descriptor of a plain TCP connection, also one accepted through the connection
// limiter (as rpi-deployd's listeners accept them: without it no stream would take
// that path), and never to one under TLS, whose bytes must be records.
func TestRawConnOnlyForPlainTCP(t *testing.T) {
	lim := connlimit.New(connlimit.Options{})
	accept := func(t *testing.T, ln net.Listener) net.Conn {
		t.Helper()
		go func() {
			if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
				t.Cleanup(func() { c.Close() })
			}
		}()
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	listen := func(t *testing.T) net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	cases := []struct {
		name string
		conn net.Conn
		raw  bool
	}{
		{"TCP", accept(t, listen(t)), true},
		{"TCP through the limiter", accept(t, lim.Listen(listen(t))), true},
		{"TLS over the limiter", tls.Server(accept(t, lim.Listen(listen(t))), &tls.Config{}), false},
		{"pipe", p1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := rawConn(c.conn) != nil; got != c.raw {
				t.Errorf("rawConn found a descriptor: %v, want %v", got, c.raw)
			}
		})
	}
}

// TestStreamInterval: a stream's interval after a write, by the size of the write and
// the streams open: whole multiples of the base intervals, one more per
// streamsPerStep streams.
func TestStreamInterval(t *testing.T) {
	cases := []struct {
		n, open int
		want    time.Duration
	}{
		{0, 0, streamBatch},
		{streamBusy - 1, 1, streamBatch},
		{streamBusy, 1, streamBusyBatch},
		{100, streamsPerStep, streamBatch},
		{100, streamsPerStep + 1, 2 * streamBatch},
		{streamBusy, 2 * streamsPerStep, 2 * streamBusyBatch},
		{streamBusy, 2*streamsPerStep + 1, 3 * streamBusyBatch},
	}
	for _, c := range cases {
		if got := streamInterval(c.n, c.open); got != c.want {
			t.Errorf("write of %d bytes, %d streams open: %v, want %v", c.n, c.open, got, c.want)
		}
	}
}

// TestStreamWokenBeforeRingFills: a busy stream waiting for its pacer's next instant
// (which here never comes) is woken once half the bus's ring has been published past
// it, and sends those events, so a long interval (many streams open) never makes a
// stream lose events that a shorter one would have sent: three rounds of half a ring
// each reach every reader, in order, with no instant at all and no reset.
func TestStreamWokenBeforeRingFills(t *testing.T) {
	const keep = 64
	bus := events.New(keep, 1)
	p := newHandPacer(bus.Seq)
	_, url := streamServer(t, bus, p, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readers := openStreams(t, ctx, url)
	bus.Publish(events.BoardNetboot, map[string]string{"serial": "quiet", "kind": "dhcp.offer"})
	for name, r := range readers {
		r.want(t, name, 1, 1)
	}
	seq := int64(1)
	for range 3 {
		for range keep / 2 {
			bus.Publish(events.DeploymentProgress, map[string]any{"id": seq, "phase": "streaming"})
			seq++
		}
		for name, r := range readers {
			r.want(t, name, seq-keep/2+1, seq)
		}
	}
}
