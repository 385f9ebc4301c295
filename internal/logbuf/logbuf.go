// Package logbuf is a log destination that goroutines may write at once while a test
// reads it, and waits for a line: the event a test waits on instead of sleeping.
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
	changed chan struct{} // closed and replaced on every write; nil until a waiter needs it
}

// Write appends p and wakes the waiters. It never fails.
func (w *Buffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.changed != nil {
		close(w.changed)
		w.changed = nil
	}
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
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		w.mu.Lock()
		if strings.Contains(w.b.String(), text) {
			w.mu.Unlock()
			return true
		}
		if w.changed == nil {
			w.changed = make(chan struct{})
		}
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			return false
		}
	}
}
