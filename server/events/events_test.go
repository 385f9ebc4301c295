package events

import "testing"

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
