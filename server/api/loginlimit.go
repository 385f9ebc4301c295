package api

import (
	"sync"
	"time"
)

// Defaults of Options.LoginFailures and Options.LoginWindow.
const (
	DefaultLoginFailures = 10
	DefaultLoginWindow   = 10 * time.Minute
)

// maxLoginSources bounds the limiter's memory: past it, sources whose window ended
// are dropped, then the oldest.
const maxLoginSources = 4096

// loginLimiter counts failed logins per source address in fixed windows: the first
// failure opens a window of `window`; once `max` failures fall in it, every login
// from that address (right password or not) is refused until the window ends. Other
// addresses are not affected: a hostile host can lock out itself, never an operator
// elsewhere.
type loginLimiter struct {
	max    int
	window time.Duration

	mu  sync.Mutex
	src map[string]*loginFails
}

type loginFails struct {
	n     int
	start time.Time
}

func newLoginLimiter(max int, window time.Duration) *loginLimiter {
	if max <= 0 {
		max = DefaultLoginFailures
	}
	if window <= 0 {
		window = DefaultLoginWindow
	}
	return &loginLimiter{max: max, window: window, src: map[string]*loginFails{}}
}

// blocked reports whether addr has used up its failures, and for how much longer.
func (l *loginLimiter) blocked(addr string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.src[addr]
	if f == nil || now.Sub(f.start) >= l.window {
		return false, 0
	}
	return f.n >= l.max, f.start.Add(l.window).Sub(now)
}

// fail counts a failed login from addr and reports whether it used up the last one.
func (l *loginLimiter) fail(addr string, now time.Time) (last bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.src[addr]
	if f == nil || now.Sub(f.start) >= l.window {
		if f == nil && len(l.src) >= maxLoginSources {
			l.prune(now)
		}
		f = &loginFails{start: now}
		l.src[addr] = f
	}
	f.n++
	return f.n == l.max
}

// prune drops ended windows, then (if still full) the oldest source.
func (l *loginLimiter) prune(now time.Time) {
	var oldest string
	for a, f := range l.src {
		if now.Sub(f.start) >= l.window {
			delete(l.src, a)
			continue
		}
		if oldest == "" || f.start.Before(l.src[oldest].start) {
			oldest = a
		}
	}
	if len(l.src) >= maxLoginSources && oldest != "" {
		delete(l.src, oldest)
	}
}
