// Package events is rpi-deployd's in-process publish/subscribe of state changes. The
// domain publishes every change; the SSE endpoint streams them to dashboards. Each
// event has a sequence number; the bus keeps the most recent ones so that a client
// reconnecting with Last-Event-ID misses nothing that is still in the ring.
package events

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Types of events (Event.Type). Data carries the object named by the type's prefix,
// as the management API returns it.
const (
	DeploymentCreated  = "deployment.created"  // Data: deployment
	DeploymentProgress = "deployment.progress" // Data: deployment (phase, bytes, total, rate_bps)
	DeploymentFinished = "deployment.finished" // Data: deployment (state verified/failed/abandoned)
	BatchChanged       = "batch.changed"       // Data: batch
	BoardChanged       = "board.changed"       // Data: board
	BoardNetboot       = "board.netboot"       // Data: board event (kind dhcp.offer, tftp.file, …)
	ImageChanged       = "image.changed"       // Data: image (state uploading/ready) or {"name","deleted":true}
	VenueChanged       = "venue.changed"       // Data: venue or {"code","deleted":true}
	ProductChanged     = "product.changed"     // Data: product
	PoolChanged        = "pool.changed"        // Data: {"venue","product"}
	HelloRetry         = "hello.retry"         // Data: {"serial","reason"}: a board was told to retry
	ProfileChanged     = "profile.changed"     // Data: redacted profile, {"name","deleted":true} or {"link":…}
)

// Event is one state change.
type Event struct {
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	Type string    `json:"type"`
	Data any       `json:"data"`
	// SSE is the event as one Server-Sent Events message ("id: SEQ\nevent: TYPE\ndata:
	// JSON\n\n"), encoded once by Publish for every subscriber; nil when Data could
	// not be encoded (the event stream skips it).
	SSE []byte `json:"-"`
}

// Bus fans events out to subscribers. The zero value is not usable; use New.
// A nil *Bus is safe: Publish does nothing.
type Bus struct {
	mu     sync.Mutex
	seq    int64
	ring   []Event // the last len(ring) events, ring[seq % len]
	subs   map[*Sub]struct{}
	buffer int
}

// Sub is one subscription.
type Sub struct {
	C    chan Event    // events, in order
	Lost chan struct{} // closed when the subscriber fell behind and was dropped
	bus  *Bus
	once sync.Once
}

// A nil *Bus publishes nothing and has no subscribers (Subscribe needs a real one).

// New returns a bus that remembers the last keep events and gives each subscriber a
// buffer of buffer events (0 → 1024 and 256).
func New(keep, buffer int) *Bus {
	if keep <= 0 {
		keep = 1024
	}
	if buffer <= 0 {
		buffer = 256
	}
	return &Bus{ring: make([]Event, keep), subs: map[*Sub]struct{}{}, buffer: buffer}
}

// Publish sends an event to every subscriber. A subscriber whose buffer is full is
// dropped (its Lost channel closes) rather than blocking the publisher.
func (b *Bus) Publish(typ string, data any) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	ev := Event{Seq: b.seq, Time: time.Now().UTC(), Type: typ, Data: data}
	if j, err := json.Marshal(ev); err == nil {
		ev.SSE = fmt.Appendf(nil, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, j)
	}
	b.ring[b.seq%int64(len(b.ring))] = ev
	for s := range b.subs {
		select {
		case s.C <- ev:
		default:
			delete(b.subs, s)
			close(s.Lost)
		}
	}
}

// Seq is the sequence number of the last event published.
func (b *Bus) Seq() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seq
}

// Subscribe starts a subscription. If after > 0, the events after that sequence
// number still in the ring are delivered first; missed reports whether some were
// already gone.
func (b *Bus) Subscribe(after int64) (s *Sub, missed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s = &Sub{C: make(chan Event, b.buffer+len(b.ring)), Lost: make(chan struct{}), bus: b}
	if after > 0 && after < b.seq {
		first := after + 1
		if oldest := b.seq - int64(len(b.ring)) + 1; first < oldest {
			first, missed = oldest, true
		}
		for q := first; q <= b.seq; q++ {
			s.C <- b.ring[q%int64(len(b.ring))]
		}
	}
	b.subs[s] = struct{}{}
	return s, missed
}

// Close ends the subscription.
func (s *Sub) Close() {
	s.once.Do(func() {
		s.bus.mu.Lock()
		delete(s.bus.subs, s)
		s.bus.mu.Unlock()
	})
}

// Subscribers counts the current subscriptions.
func (b *Bus) Subscribers() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}
