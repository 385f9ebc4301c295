package events

import (
	"encoding/json"
	"time"
)

// Relay makes out take every event published on the bus from now on, in place of
// the ring: out gets the event with its time and type, Data encoded as a
// json.RawMessage and no sequence number (an event whose data cannot be encoded is
// dropped, as the stream would skip it). The relay numbers the events and gives them
// back, with the events of other servers, through Append. out runs on the
// publisher's goroutine and must not block; it is not called with the bus's lock
// held.
func (b *Bus) Relay(out func(Event)) {
	b.relay.Store(&out)
}

// toRelay encodes one published event for the relay.
func (b *Bus) toRelay(out func(Event), typ string, data any) {
	j, err := appendData(nil, data)
	if err != nil {
		return
	}
	out(Event{Time: time.Now().UTC(), Type: typ, Data: json.RawMessage(j)})
}

// Append adds an event numbered by a relay (ev.Seq, the global sequence number)
// and hands it to the readers as Publish does; ev.Data is the data's JSON
// (json.RawMessage) or any value that encodes. It reports false, and changes
// nothing, for an event at or below Seq (already appended). An event more than one
// past Seq leaves a gap (the events between never reached this bus, as at a
// relay's start, or when a relay fell behind the database's retention): a reader
// that had not read up to the gap is told it lost events (Cursor.Read), and a
// resume from before the gap reports missed events (Follow).
func (b *Bus) Append(ev Event) bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ev.Seq <= b.seq {
		return false
	}
	if ev.Seq > b.seq+1 {
		b.floor = ev.Seq
	}
	b.seq = ev.Seq
	ev.SSE, ev.next = nil, 0
	j, k := encode(ev)
	b.add(ev, j, k)
	return true
}

// Keep is how many events the bus remembers (New's keep): a relay that starts
// appends that many of the latest, so that a client can resume at any server.
func (b *Bus) Keep() int { return len(b.ring) }
