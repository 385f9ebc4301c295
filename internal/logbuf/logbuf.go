// Package logbuf is a log destination that goroutines may write at once while a test
// reads it, and waits for a line: the event a test waits on instead of sleeping.
// Changes and Wait give the same wake-on-every-change wait to other collections a test
// watches (recorded events, a server's log lines).
package logbuf

import (
	"bytes"
	"strings"
	"sync"
	"time"
)

// Buffer collects what is written to it. The zero value is ready; it is safe for
// concurrent use.
type Buffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed Changes
}

// Write appends p and wakes the waiters. It never fails.
func (w *Buffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.changed.Notify()
	return w.b.Write(p)
}

// String returns everything written so far.
func (w *Buffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// WaitFor blocks until the buffer holds text, checking again on every write, or until
// timeout; it reports whether the text came.
func (w *Buffer) WaitFor(text string, timeout time.Duration) bool {
	return Wait(&w.mu, &w.changed, timeout, func() bool { return strings.Contains(w.b.String(), text) })
}

// Changes wakes the goroutines in Wait when the data it stands beside changes. The
// zero value is ready. Its methods must be called with the data's lock held.
type Changes struct {
	ch chan struct{} // closed by Notify; nil until a waiter needs one
}

// Notify wakes every waiter: the data changed.
func (c *Changes) Notify() {
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}

func (c *Changes) next() <-chan struct{} {
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

// Wait blocks until ok holds, or until timeout; it reports whether ok held. ok is
// called with mu held, first at once and then after each Notify on c.
func Wait(mu sync.Locker, c *Changes, timeout time.Duration, ok func() bool) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		mu.Lock()
		if ok() {
			mu.Unlock()
			return true
		}
		changed := c.next()
		mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			return false
		}
	}
}
