// Package connlimit caps the connections of rpi-deployd's HTTP listeners: at most
// PerSource connections from one remote address and Max in all. When Max is reached,
// the connection that has been idle the longest is closed to make room: a keep-alive
// connection between requests, or one that has sent no whole request in its first
// second (a header that trickles in counts as idle; a request being served or a body
// being received does not). Only when none is idle is the new connection turned away. Connections turned away get a short HTTP answer (429 past PerSource, 503 past
// Max) and are closed, so one host can hold at most PerSource descriptors and all
// hosts together at most Max, whatever they send.
//
// Wrap each listener with Limiter.Listen and set http.Server.ConnState to
// Limiter.ConnState (the limiter learns from it which connections are idle). Accept
// errors (such as "too many open files") are logged at WARN, at most once a second,
// before net/http backs off and retries.
package connlimit

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/internal/lograte"
)

// Defaults of Options.
const (
	DefaultMax       = 2048
	DefaultPerSource = 64
)

// Options configure a Limiter; zero values mean the defaults.
type Options struct {
	Max       int          // connections in all; default DefaultMax
	PerSource int          // connections from one remote IP address; default DefaultPerSource
	Logger    *slog.Logger // nil discards
}

// Limiter counts connections across any number of listeners.
type Limiter struct {
	opt Options
	log *slog.Logger

	start time.Time // the zero of Conn.idle's times (monotonic)

	mu    sync.Mutex
	total int
	per   map[netip.Addr]int
	conns *Conn // every connection holding a slot, a list through Conn.prev and next

	refusedSource, refusedMax, reclaimed atomic.Int64

	refusing chan struct{}   // bounds the goroutines answering refused connections
	warn     lograte.Counter // accept errors
	refused  lograte.Counter // refused connections
}

// New returns a Limiter.
func New(o Options) *Limiter {
	if o.Max <= 0 {
		o.Max = DefaultMax
	}
	if o.PerSource <= 0 {
		o.PerSource = DefaultPerSource
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Limiter{opt: o, log: log, start: time.Now(), per: map[netip.Addr]int{},
		refusing: make(chan struct{}, 64)}
}

// since is now as a time of Conn.idle: nanoseconds since the limiter started, plus
// 1 (0 is "busy").
func (l *Limiter) since() int64 { return int64(time.Since(l.start)) + 1 }

// freshGrace is how long a new connection is left alone before it may be reclaimed:
// a real client sends its request at once.
const freshGrace = time.Second

// Stats are the limiter's counts.
type Stats struct {
	Open    int // connections open
	Idle    int // of which with no request in progress (between requests, or new)
	Sources int // distinct remote addresses

	RefusedPerSource int64 // connections refused (429) since start: their source was at PerSource
	RefusedMax       int64 // connections refused (503) since start: Max reached, none idle
	Reclaimed        int64 // idle connections closed since start to make room
}

// Stats returns the current counts.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	idle := 0
	for c := l.conns; c != nil; c = c.next {
		if c.idle.Load() != 0 {
			idle++
		}
	}
	return Stats{Open: l.total, Idle: idle, Sources: len(l.per), RefusedPerSource: l.refusedSource.Load(),
		RefusedMax: l.refusedMax.Load(), Reclaimed: l.reclaimed.Load()}
}

// Listen wraps ln: its connections count against the limits.
func (l *Limiter) Listen(ln net.Listener) net.Listener { return &listener{Listener: ln, l: l} }

// ConnState is the http.Server.ConnState hook that tells the limiter which
// connections are idle. Connections wrapped by another layer (crypto/tls) are found
// through their NetConn method. It takes no lock: each state is one atomic store in
// the connection (Conn.idle), read by admit when it looks for a connection to reclaim.
func (l *Limiter) ConnState(c net.Conn, st http.ConnState) {
	for {
		if _, ok := c.(*Conn); ok {
			break
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return
		}
		c = u.NetConn()
	}
	lc := c.(*Conn)
	switch st {
	case http.StateIdle:
		lc.idle.Store(l.since())
	case http.StateNew:
		lc.idle.Store(-l.since())
	default:
		lc.idle.Store(0)
	}
}

type listener struct {
	net.Listener
	l *Limiter
}

// Accept returns the next connection within the limits; others are answered and
// closed here.
func (ln *listener) Accept() (net.Conn, error) {
	l := ln.l
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				if n := l.warn.Add(); n > 0 {
					l.log.Warn("http: accept failed", "listener", ln.Addr().String(), "errors", n, "err", err)
				}
			}
			return nil, err
		}
		lc := &Conn{Conn: c, l: l, ip: sourceOf(c)}
		code, victim := l.admit(lc)
		if victim != nil {
			victim.Close() // frees its slot; ours is taken already
		}
		if code != 0 {
			l.refuse(c, lc.ip, code)
			continue
		}
		return lc, nil
	}
}

// admit takes a slot for the new connection c. It returns an HTTP status when the
// connection must be refused, and an idle connection to close to make room.
func (l *Limiter) admit(c *Conn) (code int, victim *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.per[c.ip] >= l.opt.PerSource {
		l.refusedSource.Add(1)
		return http.StatusTooManyRequests, nil
	}
	if l.total >= l.opt.Max {
		var since int64
		now := l.since()
		for o := l.conns; o != nil; o = o.next {
			i := o.idle.Load()
			if i == 0 || i < 0 && now+i < int64(freshGrace) {
				continue // busy, or fresh in its first second
			}
			if i < 0 {
				i = -i
			}
			if victim == nil || i < since {
				victim, since = o, i
			}
		}
		if victim == nil {
			l.refusedMax.Add(1)
			return http.StatusServiceUnavailable, nil
		}
		l.reclaimed.Add(1)
		// The victim's slot goes to the new connection now: its Close must not give it
		// back a second time.
		l.drop(victim)
	}
	l.total++
	l.per[c.ip]++
	c.next = l.conns
	if l.conns != nil {
		l.conns.prev = c
	}
	l.conns = c
	return 0, victim
}

func (l *Limiter) release(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !c.closed {
		l.drop(c)
	}
}

// drop gives c's slot back and takes it off the list; l.mu is held.
func (l *Limiter) drop(c *Conn) {
	c.closed = true
	l.total--
	if l.per[c.ip]--; l.per[c.ip] <= 0 {
		delete(l.per, c.ip)
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.conns = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
}

// refuse answers a refused connection with a short HTTP error and closes it. The
// answer is written by a goroutine (at most 64 at once, each for at most a second;
// beyond that the connection is just closed) so that Accept never waits on a client.
func (l *Limiter) refuse(c net.Conn, ip netip.Addr, code int) {
	if n := l.refused.Add(); n > 0 {
		l.log.Warn("http: connections refused", "refused", n, "status", code, "last_source", ip.String(),
			"max_conns", l.opt.Max, "max_conns_per_source", l.opt.PerSource)
	}
	select {
	case l.refusing <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-l.refusing }()
		defer c.Close()
		msg := "too many connections from " + ip.String()
		if code == http.StatusServiceUnavailable {
			msg = "server at its connection limit, try again"
		}
		body := fmt.Sprintf("{\"error\":%q}\n", msg)
		c.SetDeadline(time.Now().Add(time.Second))
		fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
			code, http.StatusText(code), len(body), body)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		// Read what the client sent so that closing does not reset the connection
		// before the client has read the answer.
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

// Conn is an accepted connection; Close gives its slot back.
type Conn struct {
	net.Conn
	l  *Limiter
	ip netip.Addr
	// idle is when the connection went idle (Limiter.since): between requests, or,
	// negated, accepted and not yet sent a whole request's headers (fresh); 0 while a
	// request is in progress. Set by ConnState.
	idle       atomic.Int64
	closed     bool  // under l.mu: its slot is given back
	prev, next *Conn // l.conns, under l.mu
	once       sync.Once
}

// Close closes the connection and frees its slot.
func (c *Conn) Close() error {
	c.once.Do(func() { c.l.release(c) })
	return c.Conn.Close()
}

// RemoteAddr is the peer's address. It is the first method net/http's goroutine for
// the connection calls (http.conn.serve), so it also grows that goroutine's stack to
// connStack while only a few frames are on it (growStack); see connStack.
func (c *Conn) RemoteAddr() net.Addr {
	growStack(false)
	return c.Conn.RemoteAddr()
}

// connStack is the stack a connection's goroutine gets at its start: what a hello
// (net/http, Gin, the handler, the domain and the events) needs at its deepest, with
// the runtime's guard. A goroutine starts with a stack of 2 KiB or, adaptively, of the
// average that the last GC scanned (4 KiB in rpi-deployd under a burst of hellos), and
// the runtime doubles it when a function's frame does not fit: copying every frame on
// it and adjusting their pointers, which costs by the number of frames. Grown in the
// hello handler's prologue, with net/http's and Gin's frames under it, that was 3.6 %
// of rpi-deployd's CPU under hellobench's bursts; grown here, with two frames under it,
// 1.0–2.1 % (docs/operations.md §10, eighth round). A goroutine whose stack is already that large is not touched, and the GC
// still shrinks stacks that stay mostly unused.
const connStack = 8 << 10

// growStack makes the runtime grow the calling goroutine's stack to connStack when
// it is smaller: its frame (growFrame bytes, never written when grow is false, the
// only way it is called) does not fit in a stack of half that size. noinline, so
// that the frame is its own.
//
//go:noinline
func growStack(grow bool) {
	if grow {
		var b [growFrame]byte
		keepFrame(b[:])
	}
}

// growFrame is more than connStack/2 minus the little a new connection's goroutine
// has used (net/http's conn.serve, about 1 KiB) and the runtime's guard, and less than
// connStack minus those: the runtime doubles the stack until the frame fits, to
// connStack exactly.
const growFrame = connStack/2 + 1<<10

//go:noinline
func keepFrame([]byte) {}

// ReadFrom keeps sendfile(2): net/http's response writer hands a file to the
// connection's ReadFrom, which *net.TCPConn implements with sendfile.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// SyscallConn gives the connection's descriptor (syscall.Conn), as *net.TCPConn
// does: the event stream writes to it without waiting (server/api). An error when the
// accepted connection has none.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// sourceOf is c's remote IP address (an IPv4-mapped IPv6 address as IPv4), the zero
// Addr when it has none. A TCP connection's is read from its *net.TCPAddr, without
// formatting and parsing it again.
func sourceOf(c net.Conn) netip.Addr {
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case nil:
		return netip.Addr{}
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap.Addr().Unmap()
		}
		return netip.Addr{}
	}
}
