package api

import (
	"context"
	"errors"
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

	// checks is the budget of password checks (see loginBudget).
	checks *loginBudget
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
	return &loginLimiter{max: max, window: window, src: map[string]*loginFails{},
		checks: newLoginBudget(loginQueue, loginAdmitWait)}
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

// loginQueue is how many logins may wait for the password check at once; a login
// past it waits up to loginAdmitWait for a place, then gets 429 (errLoginBusy). The
// wait keeps a flood of refused logins from coming back at once: each client of the
// flood sends at most one a second.
const (
	loginQueue     = 16
	loginAdmitWait = time.Second
)

// errLoginBusy: loginQueue logins are already waiting for the password check.
var errLoginBusy = errors.New("too many logins being checked")

// loginBudget keeps password checks (PBKDF2: tens of milliseconds of CPU each) from
// taking the CPU that boards need: one check runs at a time, and after each the
// checker rests as long as the check took, so logins, right or wrong and however
// many, use at most half of one CPU; the agent API and the rest of the server keep
// the others. Waiting logins are bounded by the queue; past it they are refused
// (after admitWait), not queued.
type loginBudget struct {
	admit     chan struct{} // one per login running or waiting
	run       chan struct{} // one per login running (capacity 1)
	admitWait time.Duration
}

func newLoginBudget(queue int, admitWait time.Duration) *loginBudget {
	return &loginBudget{admit: make(chan struct{}, queue+1), run: make(chan struct{}, 1), admitWait: admitWait}
}

// do runs check within the budget: errLoginBusy when the queue stayed full for
// admitWait, ctx's error when ctx ends while waiting. It returns once check has
// returned (the rest that follows delays the next check, not this caller).
func (b *loginBudget) do(ctx context.Context, check func()) error {
	select {
	case b.admit <- struct{}{}:
	default:
		t := time.NewTimer(b.admitWait)
		defer t.Stop()
		select {
		case b.admit <- struct{}{}:
		case <-t.C:
			return errLoginBusy
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() { <-b.admit }()
	select {
	case b.run <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	start := time.Now()
	check()
	time.AfterFunc(time.Since(start), func() { <-b.run })
	return nil
}
