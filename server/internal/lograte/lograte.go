// Package lograte keeps a flood of like events to one log line a second that says
// how many there were, so that a hostile host cannot fill the log (or slow the
// server with logging) by repeating what makes a WARN line.
package lograte

import (
	"sync"
	"time"
)

// Counter counts events and lets one log line through per second. The zero value
// is ready; it is safe for concurrent use.
type Counter struct {
	mu   sync.Mutex
	n    int
	last time.Time
	now  func() time.Time // nil: time.Now (tests set a clock)
}

// Add counts one event and returns the count to report, the events since the
// last line including this one, or 0 to stay quiet: it returns non-zero for the
// first event and then at most once a second.
func (c *Counter) Add() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	t := now()
	c.n++
	if !c.last.IsZero() && t.Sub(c.last) < time.Second {
		return 0
	}
	n := c.n
	c.n, c.last = 0, t
	return n
}
