package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

// TestResume: a subscriber resuming after a sequence number gets what followed, in
// order; one that asks for events already gone from the ring is told so.
func TestResume(t *testing.T) {
	b := New(4, 8)
	for i := range 6 {
		b.Publish("x", i)
	}
	s, missed := b.Subscribe(3)
	if missed {
		t.Error("missed after 3 with a ring of 4 holding 3..6")
	}
	for want := int64(4); want <= 6; want++ {
		if ev := <-s.C; ev.Seq != want {
			t.Errorf("seq %d, want %d", ev.Seq, want)
		}
	}
	s.Close()
	if _, missed := b.Subscribe(1); !missed {
		t.Error("resume after 1 should report missed events")
	}
}

// TestSlowSubscriberDropped: a subscriber that does not read is dropped (Lost
// closes) instead of blocking the publisher.
func TestSlowSubscriberDropped(t *testing.T) {
	b := New(2, 1)
	s, _ := b.Subscribe(0)
	for i := range 10 {
		b.Publish("x", i)
	}
	select {
	case <-s.Lost:
	default:
		t.Fatal("slow subscriber not dropped")
	}
	if b.Subscribers() != 0 {
		t.Errorf("%d subscribers left", b.Subscribers())
	}
	var nilBus *Bus
	nilBus.Publish("x", 1) // must not panic
	if nilBus.Seq() != 0 || nilBus.Subscribers() != 0 {
		t.Error("nil bus counts")
	}
}

// TestEncodedOnce: Publish encodes an event once as its SSE message, and every
// subscriber gets that same buffer (not an encoding of its own); the message is what
// the event's JSON says, and the JSON does not carry the message.
func TestEncodedOnce(t *testing.T) {
	b := New(0, 0)
	s1, _ := b.Subscribe(0)
	s2, _ := b.Subscribe(0)
	b.Publish(BoardChanged, map[string]string{"serial": "10000000abcd1234"})
	e1, e2 := <-s1.C, <-s2.C
	if len(e1.SSE) == 0 || &e1.SSE[0] != &e2.SSE[0] {
		t.Fatalf("subscribers got different encodings (or none): %q, %q", e1.SSE, e2.SSE)
	}
	j, err := json.Marshal(e1)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("id: 1\nevent: board.changed\ndata: %s\n\n", j)
	if string(e1.SSE) != want {
		t.Errorf("SSE message %q, want %q", e1.SSE, want)
	}
	if bytes.Contains(j, []byte("id: 1")) {
		t.Errorf("the JSON carries the SSE message: %s", j)
	}
	// Data that cannot be encoded leaves no message (the stream skips the event).
	b.Publish(BoardChanged, func() {})
	if ev := <-s1.C; ev.SSE != nil {
		t.Errorf("unencodable event: %q", ev.SSE)
	}
}
