package connlimit

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/rpi-deploy/rpi-deploy/internal/logbuf"
)

// serve runs an http.Server behind a Limiter on a loopback port.
func serve(t *testing.T, l *Limiter, ln net.Listener) {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ConnState: l.ConnState, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l.Listen(ln))
	t.Cleanup(func() { srv.Close() })
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// request sends one GET on c and returns the status line.
func request(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "error: " + err.Error()
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Status
}

func dial(t *testing.T, ln net.Listener, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitStats(t *testing.T, l *Limiter, ok func(Stats) bool) Stats {
	t.Helper()
	st := l.Stats()
	for deadline := time.Now().Add(5 * time.Second); !ok(st) && time.Now().Before(deadline); st = l.Stats() {
		time.Sleep(10 * time.Millisecond)
	}
	return st
}

// TestCaps: past PerSource a host gets 429 while another host is served; past Max the
// longest-idle keep-alive connection is closed to make room, and when no connection
// is idle the new one gets 503; a connection that sends nothing for a second is
// reclaimable too.
func TestCaps(t *testing.T) {
	l := New(Options{Max: 4, PerSource: 3})
	ln := listen(t)
	serve(t, l, ln)

	var idle []net.Conn
	for range 3 {
		c := dial(t, ln, "127.0.0.2")
		if s := request(t, c); s != "200 OK" {
			t.Fatalf("within the caps: %s", s)
		}
		idle = append(idle, c)
		// The server marks a connection idle after the client has its answer: wait,
		// so that idle[0] is the longest idle.
		waitStats(t, l, func(s Stats) bool { return s.Idle == len(idle) })
	}
	if s := request(t, dial(t, ln, "127.0.0.2")); !strings.HasPrefix(s, "429") {
		t.Errorf("4th connection from one host: %s, want 429", s)
	}
	c4 := dial(t, ln, "127.0.0.3")
	if s := request(t, c4); s != "200 OK" {
		t.Fatalf("another host: %s", s)
	}
	waitStats(t, l, func(s Stats) bool { return s.Idle == 4 })
	// Max reached with 4 idle connections: the oldest (idle[0]) makes room.
	c5 := dial(t, ln, "127.0.0.4")
	if s := request(t, c5); s != "200 OK" {
		t.Fatalf("past Max with idle connections: %s", s)
	}
	idle[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle[0].Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the longest-idle connection should have been closed: %v", err)
	}
	if s := request(t, idle[1]); s != "200 OK" {
		t.Errorf("a younger idle connection: %s", s)
	}
	// Make every connection busy (a request whose body never ends), then one more.
	st := waitStats(t, l, func(s Stats) bool { return s.Open == 4 })
	if st.Open != 4 {
		t.Fatalf("stats %+v", st)
	}
	for _, c := range []net.Conn{idle[1], idle[2], c4, c5} {
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	}
	waitStats(t, l, func(s Stats) bool { return s.Idle == 0 })
	if s := request(t, dial(t, ln, "127.0.0.5")); !strings.HasPrefix(s, "503") {
		t.Errorf("past Max with no idle connection: %s, want 503", s)
	}
	// One of them ends; a silent connection takes its place and, a second later,
	// gives it up to a real request.
	idle[1].Close()
	waitStats(t, l, func(s Stats) bool { return s.Open == 3 })
	silent := dial(t, ln, "127.0.0.6")
	waitStats(t, l, func(s Stats) bool { return s.Open == 4 })
	if s := request(t, dial(t, ln, "127.0.0.7")); !strings.HasPrefix(s, "503") {
		t.Errorf("past Max, the silent connection still in its first second: %s, want 503", s)
	}
	time.Sleep(freshGrace + 100*time.Millisecond)
	if s := request(t, dial(t, ln, "127.0.0.7")); s != "200 OK" {
		t.Errorf("past Max, the silent connection older than a second: %s, want it reclaimed", s)
	}
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the silent connection should have been closed: %v", err)
	}
	if st := l.Stats(); st.RefusedPerSource != 1 || st.RefusedMax != 2 || st.Reclaimed != 2 {
		t.Errorf("counters %+v, want 1 refused per source, 2 at Max, 2 reclaimed", st)
	}
}

// TestAcceptErrorsLoggedAtWarn: when accept(2) fails with "too many open files"
// (RLIMIT_NOFILE lowered to the descriptors in use), the limiter logs it at WARN
// (net/http then backs off and retries: no silent spin) and serves the waiting
// connections once descriptors are available again.
func TestAcceptErrorsLoggedAtWarn(t *testing.T) {
	var logs logbuf.Buffer
	l := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ln := listen(t)
	conns := []net.Conn{dial(t, ln, "127.0.0.2"), dial(t, ln, "127.0.0.2")} // queued, not yet accepted

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir("/proc/self/fd") // the directory itself takes one while read
	low := old
	low.Cur = uint64(len(ents) - 1)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()
	serve(t, l, ln)
	logs.WaitFor("too many open files", 5*time.Second) // checked below, with the level
	restore()
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "http: accept failed") || !strings.Contains(out, "too many open files") {
		t.Errorf("log: %q, want a WARN about the failed accept", out)
	}
	if n := strings.Count(out, "http: accept failed"); n > 10 {
		t.Errorf("%d WARN lines in a few seconds: the log is not rate-limited", n)
	}
	if s := request(t, conns[0]); s != "200 OK" {
		t.Errorf("after the descriptors came back: %s", s)
	}
}

// TestHandlerStackGrownAtConnStart: a request's handler on a connection accepted
// through the limiter runs on a goroutine whose stack already has room for a frame of
// handlerFrame bytes (connStack: grown at the connection's first call, RemoteAddr,
// while net/http's conn.serve alone was on it), so calling such a frame does not move
// the stack. (Without growStack it moves: the goroutine starts with 2 or 4 KiB.) The
// same check on a new goroutine calling a frame of connStack bytes, which fits on no
// starting stack, shows that it sees a growth.
func TestHandlerStackGrownAtConnStart(t *testing.T) {
	l := New(Options{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strconv.FormatBool(stackMoves(handlerFrameCall)))
	}), ConnState: l.ConnState}
	ln := listen(t)
	go srv.Serve(l.Listen(ln))
	defer srv.Close()
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "false" {
		t.Errorf("behind the limiter, the handler's stack moved for a frame of %d bytes: %s", handlerFrame, b)
	}
	moved := make(chan bool)
	go func() { moved <- stackMoves(connStackCall) }()
	if !<-moved {
		t.Errorf("a new goroutine's stack did not move for a frame of %d bytes: the check sees no growth", connStack)
	}
}

// stackMoves reports whether calling f moved the goroutine's stack (the runtime
// copies a stack it grows, and a local's address changes with it).
//
//go:noinline
func stackMoves(f func(bool)) bool {
	var x byte
	before := uintptr(unsafe.Pointer(&x))
	f(false)
	return uintptr(unsafe.Pointer(&x)) != before
}

// handlerFrame is a frame that fits on connStack above net/http's frames and the
// handler's, and not on half of it.
const handlerFrame = 3 << 10

//go:noinline
func handlerFrameCall(use bool) {
	if use {
		var b [handlerFrame]byte
		keepFrame(b[:])
	}
}

//go:noinline
func connStackCall(use bool) {
	if use {
		var b [connStack]byte
		keepFrame(b[:])
	}
}

// TestSourceOf: a connection's source is its peer's IP address, an IPv4 peer of a
// dual-stack listener (an IPv4-mapped IPv6 address) as IPv4, so that both count
// against one PerSource.
func TestSourceOf(t *testing.T) {
	ln, err := net.Listen("tcp", "[::]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	for _, peer := range []string{"127.0.0.1", "::1"} {
		c, err := net.Dial("tcp", net.JoinHostPort(peer, strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		a, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if got := sourceOf(a); got != netip.MustParseAddr(peer) {
			t.Errorf("peer %s: source %v", peer, got)
		}
	}
}
