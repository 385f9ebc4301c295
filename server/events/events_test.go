package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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

// TestCursor: a cursor reads every event published since its last read in one go,
// in order, as the same SSE messages a subscriber gets; Ready is closed exactly when
// there is something to read; a cursor that falls more than the ring behind is told
// it lost events and starts again at the newest; resuming works as with Subscribe.
func TestCursor(t *testing.T) {
	b := New(4, 0)
	c, missed := b.Follow(0)
	if missed {
		t.Error("a new cursor missed events")
	}
	select {
	case <-c.Ready():
		t.Fatal("Ready before any event")
	default:
	}
	ready := c.Ready()
	b.Publish("x", 1)
	b.Publish("x", 2)
	select {
	case <-ready:
	default:
		t.Fatal("Ready not closed by Publish")
	}
	got, lost := c.Read(nil, 0)
	var want []byte
	for q := int64(1); q <= 2; q++ {
		want = append(want, b.ring[q%4].SSE...)
	}
	if lost || !bytes.Equal(got, want) {
		t.Errorf("Read = %q, %v; want %q, false", got, lost, want)
	}
	if got, _ := c.Read(nil, 0); len(got) != 0 {
		t.Errorf("second Read = %q, want nothing", got)
	}
	for i := range 5 { // one more than the ring holds
		b.Publish("x", i)
	}
	if got, lost := c.Read(nil, 0); !lost || len(got) != 0 {
		t.Errorf("behind by 5 with a ring of 4: Read = %q, %v; want nothing, lost", got, lost)
	}
	b.Publish("x", "after")
	if got, lost := c.Read(nil, 0); lost || !bytes.Contains(got, []byte(`"data":"after"`)) || bytes.Count(got, []byte("id: ")) != 1 {
		t.Errorf("after a loss: Read = %q, %v; want the one new event", got, lost)
	}
	// seq is 8; the ring holds 5..8.
	if c, missed := b.Follow(5); missed {
		t.Error("resume after 5 reported missed events")
	} else if got, _ := c.Read(nil, 0); bytes.Count(got, []byte("id: ")) != 3 || !bytes.HasPrefix(got, []byte("id: 6\n")) {
		t.Errorf("resume after 5: %q, want events 6..8", got)
	}
	if _, missed := b.Follow(2); !missed {
		t.Error("resume after 2 should report missed events")
	}
}

// TestCursorSkipsSupersededState: of the state events about one object (a board by
// serial, a batch by id) that a reader gets in one Read, only the latest is
// delivered; transitions (deployment.created), progress and events about other
// objects all are; a reader that already read the earlier event
// still gets the later one; Read stops past its byte limit and the rest follows.
func TestCursorSkipsSupersededState(t *testing.T) {
	b := New(0, 0)
	early, _ := b.Follow(0)
	c, _ := b.Follow(0)
	b.Publish(BoardChanged, map[string]any{"serial": "10000000abcd0001", "v": 1})
	if got, _ := early.Read(nil, 0); !bytes.Contains(got, []byte(`"v":1`)) {
		t.Fatalf("first read: %q", got)
	}
	b.Publish(DeploymentCreated, map[string]any{"id": 7, "serial": "10000000abcd0001"})
	b.Publish(BatchChanged, map[string]any{"id": 1, "v": 1})
	b.Publish(BoardChanged, map[string]any{"serial": "10000000abcd0002", "v": 1})
	b.Publish(BoardChanged, map[string]any{"serial": "10000000abcd0001", "v": 2})
	b.Publish(BatchChanged, map[string]any{"id": 1, "v": 2})
	b.Publish(DeploymentCreated, map[string]any{"id": 7, "serial": "10000000abcd0001"})
	b.Publish(DeploymentProgress, map[string]any{"id": 7, "v": 1})
	b.Publish(DeploymentProgress, map[string]any{"id": 8, "v": 1})
	b.Publish(DeploymentProgress, map[string]any{"id": 7, "v": 2})

	ids := func(p []byte) []string {
		var out []string
		for _, l := range bytes.Split(p, []byte("\n")) {
			if id, ok := bytes.CutPrefix(l, []byte("id: ")); ok {
				out = append(out, string(id))
			}
		}
		return out
	}
	got, _ := c.Read(nil, 0)
	want := []string{"2", "4", "5", "6", "7", "8", "9", "10"}
	if diff := fmt.Sprint(ids(got)); diff != fmt.Sprint(want) {
		t.Errorf("one read of all: ids %v, want %v", ids(got), want)
	}
	if got, _ := early.Read(nil, 0); fmt.Sprint(ids(got)) != fmt.Sprint(want) {
		t.Errorf("reader of event 1: ids %v, want %v", ids(got), want)
	}
	// A byte limit: one event per Read (each is longer than 1 byte), then the rest.
	d, _ := b.Follow(1)
	var all []string
	for range 20 {
		got, _ := d.Read(nil, 1)
		if len(got) == 0 {
			break
		}
		if n := len(ids(got)); n != 1 {
			t.Fatalf("Read with limit 1: %d events", n)
		}
		all = append(all, ids(got)...)
	}
	if fmt.Sprint(all) != fmt.Sprint(want) || d.More() {
		t.Errorf("reads of one event each: ids %v (more: %v), want %v", all, d.More(), want)
	}
}

// TestRelayAndAppend: a bus with a relay hands Publish's events to it (encoded, not
// numbered, not delivered) and delivers what the relay appends with its numbers;
// an event at or below Seq is ignored; a gap in the numbering makes readers from
// before it lose events and resumes from before it miss them; a resume ahead of
// the bus (read at a quicker server) starts after it.
func TestRelayAndAppend(t *testing.T) {
	b := New(8, 0)
	var out []Event
	b.Relay(func(ev Event) { out = append(out, ev) })
	c, _ := b.Follow(0)
	b.Publish(BoardChanged, map[string]string{"serial": "10000000abcd1234"})
	b.Publish(BoardChanged, func() {}) // cannot be encoded: dropped
	if len(out) != 1 || out[0].Seq != 0 || string(out[0].Data.(json.RawMessage)) != `{"serial":"10000000abcd1234"}` {
		t.Fatalf("relay got %+v", out)
	}
	if b.Seq() != 0 || c.More() {
		t.Fatal("a relayed event was delivered before the relay appended it")
	}
	ahead, _ := b.Follow(3) // a client that read 1..3 at another server
	for q := int64(1); q <= 4; q++ {
		if !b.Append(Event{Seq: q, Type: "x", Data: json.RawMessage(fmt.Sprint(q))}) {
			t.Fatalf("Append %d refused", q)
		}
	}
	if b.Append(Event{Seq: 4, Type: "x"}) || b.Append(Event{Seq: 2, Type: "x"}) {
		t.Error("Append of an event already appended accepted")
	}
	got, lost := c.Read(nil, 0)
	if lost || bytes.Count(got, []byte("id: ")) != 4 || !bytes.HasPrefix(got, []byte(`id: 1
event: x
data: {"seq":1,"time":"0001-01-01T00:00:00Z","type":"x","data":1}`)) {
		t.Errorf("Read after appends = %q, %v", got, lost)
	}
	if got, _ := ahead.Read(nil, 0); !bytes.HasPrefix(got, []byte("id: 4\n")) || bytes.Count(got, []byte("id: ")) != 1 {
		t.Errorf("resume after 3 while the bus was at 0: %q, want event 4 only", got)
	}
	behind, _ := b.Follow(2)
	b.Append(Event{Seq: 10, Type: "x", Data: 10}) // 5..9 never reached this bus
	if got, lost := behind.Read(nil, 0); !lost || len(got) != 0 {
		t.Errorf("reader from before a gap: %q, %v; want lost", got, lost)
	}
	if got, lost := c.Read(nil, 0); !lost || len(got) != 0 {
		t.Errorf("reader at the gap: %q, %v; want lost", got, lost)
	}
	if _, missed := b.Follow(4); !missed {
		t.Error("resume after 4, before a gap: not missed")
	}
	if _, missed := b.Follow(10 + 8 + 1); !missed {
		t.Error("resume ahead of the bus by more than its ring: not missed")
	}
	if c, missed := b.Follow(9); missed {
		t.Error("resume after 9, just before the event after the gap: missed")
	} else if got, _ := c.Read(nil, 0); !bytes.HasPrefix(got, []byte("id: 10\n")) {
		t.Errorf("resume after 9: %q", got)
	}
}

// TestShared: cursors at one position share one read (the same bytes, not a copy),
// and each still gets every event once, in order, with its site filter applied; an
// empty read is not shared (it would hide the events published after it), and a
// cursor behind the ring is told it lost events.
func TestShared(t *testing.T) {
	b := New(8, 1)
	a, _ := b.Follow(0)
	c, _ := b.Follow(0)
	other, _ := b.Follow(0)
	other.OnlySite("north")
	if msg, lost := a.Shared(0); len(msg) != 0 || lost {
		t.Fatalf("nothing published: read %q, lost %v", msg, lost)
	}
	b.Publish(BoardNetboot, map[string]string{"serial": "1", "site": "south"})
	b.Publish(BoardNetboot, map[string]string{"serial": "2", "site": "north"})
	ma, _ := a.Shared(0)
	b.Publish(BoardNetboot, map[string]string{"serial": "3", "site": "south"})
	mc, _ := c.Shared(0) // at a's position: a's read, not the third event yet
	if len(ma) == 0 || &ma[0] != &mc[0] || !bytes.Equal(ma, mc) {
		t.Errorf("cursors at one position did not share the read: %q and %q", ma, mc)
	}
	if n := bytes.Count(mc, []byte("\n\n")); n != 2 {
		t.Errorf("shared read holds %d events, want the 2 published before it", n)
	}
	rest, _ := c.Shared(0)
	if !bytes.Contains(rest, []byte(`"serial":"3"`)) || bytes.Count(rest, []byte("\n\n")) != 1 {
		t.Errorf("the next read = %q, want only the third event", rest)
	}
	mo, _ := other.Shared(0)
	if bytes.Contains(mo, []byte("south")) || !bytes.Contains(mo, []byte(`"serial":"2"`)) {
		t.Errorf("the north cursor read %q, want only serial 2", mo)
	}
	for range 10 {
		b.Publish("x", 0)
	}
	if msg, lost := a.Shared(0); !lost || msg != nil {
		t.Errorf("a cursor 11 events behind a ring of 8: read %q, lost %v; want lost", msg, lost)
	}
}

// TestSharedUnderPublishing: cursors reading with Shared while events are published
// (under -race) each get every event once, in order, whichever of them built the
// reads they share.
func TestSharedUnderPublishing(t *testing.T) {
	const cursors, published = 16, 2000
	b := New(4096, 1)
	done := make(chan []int64, cursors)
	for range cursors {
		c, _ := b.Follow(0)
		go func() {
			var got []int64
			for len(got) < published {
				<-c.Ready()
				msg, lost := c.Shared(4096)
				if lost {
					break
				}
				for _, line := range bytes.Split(msg, []byte("\n")) {
					if id, ok := bytes.CutPrefix(line, []byte("id: ")); ok {
						var seq int64
						fmt.Sscan(string(id), &seq)
						got = append(got, seq)
					}
				}
			}
			done <- got
		}()
	}
	for i := range published {
		b.Publish("x", i)
	}
	for range cursors {
		got := <-done
		if len(got) != published {
			t.Fatalf("a cursor read %d events, want %d", len(got), published)
		}
		for i, seq := range got {
			if seq != int64(i+1) {
				t.Fatalf("event %d has seq %d, want %d", i, seq, i+1)
			}
		}
	}
}

// TestRepeatedStateNotPublished: a board.changed or batch.changed that shows its
// object byte for byte as the latest event about it did is not published (no number,
// nothing to read); one that differs from the latest is, even if an older event
// showed the same; other events are published however often they repeat.
func TestRepeatedStateNotPublished(t *testing.T) {
	b := New(16, 1)
	c, _ := b.Follow(0)
	b.Publish(BoardChanged, map[string]any{"serial": "1", "hostname": "a"})
	b.Publish(BoardChanged, map[string]any{"serial": "1", "hostname": "a"}) // the same: dropped
	b.Publish(BoardChanged, map[string]any{"serial": "2", "hostname": "a"}) // another board
	b.Publish(BatchChanged, map[string]any{"id": 1, "done": 0})
	b.Publish(BatchChanged, map[string]any{"id": 1, "done": 0})             // dropped
	b.Publish(BoardChanged, map[string]any{"serial": "1", "hostname": "b"}) // 4
	b.Publish(BoardChanged, map[string]any{"serial": "1", "hostname": "a"}) // differs from the latest
	b.Publish(DeploymentCreated, map[string]any{"id": 7})
	b.Publish(DeploymentCreated, map[string]any{"id": 7}) // not a state event: published
	if got := b.Seq(); got != 7 {
		t.Errorf("Seq %d after 9 publishes of which 2 repeat a state, want 7", got)
	}
	var got []string
	for {
		msg, _ := c.Read(nil, 0)
		if len(msg) == 0 {
			break
		}
		for _, m := range bytes.Split(bytes.TrimSuffix(msg, []byte("\n\n")), []byte("\n\n")) {
			lines := bytes.Split(m, []byte("\n"))
			var ev struct {
				Data json.RawMessage `json:"data"`
			}
			json.Unmarshal(bytes.TrimPrefix(lines[2], []byte("data: ")), &ev)
			got = append(got, string(lines[0])+" "+string(ev.Data))
		}
	}
	want := []string{
		`id: 2 {"hostname":"a","serial":"2"}`, // 1 and 4 are superseded by 5 in one read
		`id: 3 {"done":0,"id":1}`,
		`id: 5 {"hostname":"a","serial":"1"}`,
		`id: 6 {"id":7}`,
		`id: 7 {"id":7}`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("read (-want +got):\n%s", diff)
	}
}

// TestSharedReadToConverges: cursors that started at different positions and read up
// to the same event end at the same position, and from then on share one read (the
// event streams' pacer has them all read up to the bus's last event at one instant);
// a read up to an event supersedes no state event with a later one beyond it.
func TestSharedReadToConverges(t *testing.T) {
	b := New(64, 1)
	early, _ := b.Follow(0)
	for i := range 5 {
		b.Publish(BoardChanged, map[string]any{"serial": "s1", "n": i})
	}
	late, _ := b.Follow(0)
	b.Publish(BoardChanged, map[string]any{"serial": "s2", "n": 0})
	to := b.Seq()
	b.Publish(BoardChanged, map[string]any{"serial": "s2", "n": 1}) // after the instant
	re, _ := early.SharedReadTo(0, to)
	rl, _ := late.SharedReadTo(0, to)
	if got := ids(re.Msg); !slices.Equal(got, []int64{5, 6}) {
		t.Errorf("the early cursor read %v up to %d, want [5 6] (s1's latest, s2's first: s2's second is past the read)", got, to)
	}
	if got := ids(rl.Msg); !slices.Equal(got, []int64{6}) {
		t.Errorf("the late cursor read %v up to %d, want [6]", got, to)
	}
	for i := range 3 {
		b.Publish(BoardNetboot, map[string]any{"serial": "s3", "n": i})
	}
	re, _ = early.SharedReadTo(0, b.Seq())
	rl, _ = late.SharedReadTo(0, b.Seq())
	if re != rl {
		t.Fatal("cursors at one position after a read up to one event did not share the next read")
	}
	if got := ids(re.Msg); !slices.Equal(got, []int64{7, 8, 9, 10}) {
		t.Errorf("the shared read holds %v, want [7 8 9 10]", got)
	}
	if early.MoreTo(0) || late.MoreTo(0) {
		t.Error("cursors that read everything report more to read")
	}
}

// ids are the sequence numbers of the SSE messages in msg, in order.
func ids(msg []byte) []int64 {
	var out []int64
	for _, line := range bytes.Split(msg, []byte("\n")) {
		if id, ok := bytes.CutPrefix(line, []byte("id: ")); ok {
			var seq int64
			fmt.Sscan(string(id), &seq)
			out = append(out, seq)
		}
	}
	return out
}

// TestSharedReadsBounded: the reads the bus keeps for sharing stay within
// sharedKeepBytes however many cursors far apart make large ones (an event stream
// reads up to 8 MiB at once), and a cursor still reads all its events after the kept
// reads were let go.
func TestSharedReadsBounded(t *testing.T) {
	// Cursor i starts at event i of 8 and reads to the end: 8, 7, … 1 MiB, 36 MiB in
	// all, more than sharedKeepBytes.
	const size, count = 1 << 20, 8
	if size*count*(count+1)/2 <= sharedKeepBytes {
		t.Fatal("the reads must add up to more than the bound")
	}
	b := New(256, 1)
	var cursors []*Cursor
	for range count {
		c, _ := b.Follow(0)
		cursors = append(cursors, c)
		b.Publish(BoardNetboot, map[string]string{"serial": "big", "message": strings.Repeat("a", size)})
	}
	var got []int64
	for i, c := range cursors {
		r, lost := c.SharedReadTo(0, 0)
		if lost {
			t.Fatalf("cursor %d lost events", i)
		}
		if b.sharedBytes > sharedKeepBytes {
			t.Fatalf("after %d large reads the bus keeps %d bytes of them, over %d", i+1, b.sharedBytes, sharedKeepBytes)
		}
		if i == 0 {
			got = ids(r.Msg)
		}
	}
	if want := int64(len(cursors)); len(got) != len(cursors) || got[len(got)-1] != want {
		t.Errorf("the first cursor read %d events ending at %v, want %d", len(got), got[len(got)-1:], want)
	}
}

// TestFilling: a cursor's Filling channel is closed once half the ring has been
// published past its position, not one event sooner; cursors at one position share
// it; one already that far behind gets a closed channel.
func TestFilling(t *testing.T) {
	b := New(16, 1)
	c, _ := b.Follow(0)
	d, _ := b.Follow(0)
	f := c.Filling()
	if f != d.Filling() {
		t.Error("cursors at one position got two channels")
	}
	isClosed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	for i := range 7 {
		b.Publish("x", i)
	}
	if isClosed(f) {
		t.Fatal("closed after 7 events past the cursor, half of a ring of 16 is 8")
	}
	b.Publish("x", 7)
	if !isClosed(f) {
		t.Fatal("not closed after 8 events past the cursor (half of a ring of 16)")
	}
	if !isClosed(c.Filling()) {
		t.Error("a cursor 8 events behind got a channel that is not closed")
	}
	c.Read(nil, 0)
	if isClosed(c.Filling()) {
		t.Error("a cursor that read everything got a closed channel")
	}
}

// TestRingKeepsNoData: the ring keeps an event's message, not its data (which would
// keep a board's or deployment's view alive for as long as the ring holds it): the
// subscribers at the time of Publish get the data, a subscriber that resumes gets
// the kept events with their messages and without it, and a cursor reads the same
// messages.
func TestRingKeepsNoData(t *testing.T) {
	b := New(8, 0)
	live, _ := b.Subscribe(0)
	b.Publish(BoardChanged, map[string]string{"serial": "10000000abcd1234"})
	b.Publish(BatchChanged, map[string]int{"id": 3})
	for i := range b.ring {
		if b.ring[i].Data != nil {
			t.Errorf("ring[%d] (seq %d) keeps its data %#v", i, b.ring[i].Seq, b.ring[i].Data)
		}
	}
	var sent []byte
	for range 2 {
		ev := <-live.C
		if ev.Data == nil {
			t.Errorf("event %d reached a live subscriber without its data", ev.Seq)
		}
		sent = append(sent, ev.SSE...)
	}
	resumed, _ := b.Subscribe(1)
	if ev := <-resumed.C; ev.Seq != 2 || ev.Data != nil || !bytes.Equal(ev.SSE, sent[bytes.Index(sent, []byte("id: 2")):]) {
		t.Errorf("resumed at 2: seq %d, data %#v, message %q", ev.Seq, ev.Data, ev.SSE)
	}
	c, _ := b.Follow(0)
	c.next = 1
	if got, _ := c.Read(nil, 0); !bytes.Equal(got, sent) {
		t.Errorf("cursor read %q, want %q", got, sent)
	}
}
