package api

import (
	"sync"
	"time"
)

// pacer wakes the event streams that wait for their next write together, at the
// multiples of their interval on one clock: every busy stream of a server wakes at
// the same instants, reads up to the same event (the bus's last at that instant,
// tick.seq), and so reads what the others read (one events.SharedRead, compressed
// once) however far apart the streams started. One timer serves every stream that
// waits for the same instant, where a timer per stream would wake the streams one by
// one, each at its own position.
type pacer interface {
	// next returns the tick at the next multiple of every (after now) on the
	// pacer's clock.
	next(every time.Duration) *tick
}

// tick is one instant of a pacer: C is closed when it has come, and then seq is the
// sequence number of the bus's last event at that instant.
type tick struct {
	C   chan struct{}
	seq int64
}

// clockPacer is the pacer on the monotonic clock, from its first use.
type clockPacer struct {
	seq func() int64 // the bus's last sequence number (events.Bus.Seq)

	mu    sync.Mutex
	epoch time.Time
	ticks map[time.Duration]*tick // by instant (time since epoch) still to come
}

func newClockPacer(seq func() int64) *clockPacer {
	return &clockPacer{seq: seq, epoch: time.Now(), ticks: map[time.Duration]*tick{}}
}

func (p *clockPacer) next(every time.Duration) *tick {
	p.mu.Lock()
	defer p.mu.Unlock()
	since := time.Since(p.epoch)
	at := (since/every + 1) * every
	t := p.ticks[at]
	if t == nil {
		t = &tick{C: make(chan struct{})}
		p.ticks[at] = t
		time.AfterFunc(at-since, func() {
			p.mu.Lock()
			delete(p.ticks, at)
			p.mu.Unlock()
			t.seq = p.seq()
			close(t.C)
		})
	}
	return t
}
