package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
)

// decodedStateKey is stateKey as it was before it read the bytes: the whole event's
// JSON decoded again. The reference the new one must agree with.
func decodedStateKey(typ string, j []byte) string {
	switch typ {
	case BoardChanged, BatchChanged:
	default:
		return ""
	}
	var k struct {
		Data struct {
			ID     json.Number `json:"id"`
			Serial string      `json:"serial"`
		} `json:"data"`
	}
	if json.Unmarshal(j, &k) != nil || (k.Data.ID == "" && k.Data.Serial == "") {
		return ""
	}
	return typ + " " + string(k.Data.ID) + " " + k.Data.Serial
}

// stateData are event data of every shape stateKey may meet: the domain's wire
// types, and JSON that a decoder reads in ways a byte scan could miss.
func stateData() []any {
	now := time.Date(2026, 12, 5, 15, 4, 5, 123456789, time.UTC)
	raw := func(s string) any { return json.RawMessage(s) }
	return []any{
		mgmtapi.Board{Serial: "10000000abcdef01", MAC: "2c:cf:67:00:00:01", Model: "Raspberry Pi 5 <Model B> & co", Hostname: "KXP2-CORO-001"},
		mgmtapi.Batch{ID: 42, Venue: "CORO", Product: "KXP2", Count: 10},
		mgmtapi.Deployment{ID: 7, Serial: "10000000abcdef01", BatchID: 42, Hostname: "KXP2-CORO-001", RateBps: 1e-7, Site: "hall-1"},
		mgmtapi.BoardView{Board: mgmtapi.Board{Serial: "10000000abcdef02"}, History: []mgmtapi.BoardEvent{{ID: 1, Kind: "agent.hello"}}},
		&mgmtapi.Batch{ID: 43, Note: "a pointer"},
		map[string]any{"id": 7, "serial": "abc", "nested": map[string]any{"id": 9, "serial": "zzz"}},
		map[string]any{"list": []any{map[string]any{"id": 1}}, "s": `a"b\c}{][,`, "id": -3.5e2},
		map[string]any{"serial": "10000000abcdef01", "site": "hall-1", "t": now},
		nil, "a string", 12, []int{1, 2}, map[string]any{}, struct{}{},
		raw(`{"ID":5}`), raw(`{"Serial":"x"}`), raw(`{"ſerial":"long s"}`), raw(`{"i\u0064":3}`),
		raw(`{"id":"12"}`), raw(`{"id":"twelve"}`), raw(`{"id":null,"serial":null}`), raw(`{"id":true}`),
		raw(`{"serial":12}`), raw(`{"serial":"a\"b"}`), raw(`{"serial":"\u0041"}`), raw(`{"serial":{"x":1}}`),
		raw(`{"id":1,"id":2,"serial":"a","serial":"b"}`), raw(`{ "id" : 4 , "serial" : "spaced" }`),
		raw(`{"a":[{"id":1},"]"],"id":0}`), raw(`{"x":"}","serial":"after a brace"}`), raw(`{"id":-0}`),
	}
}

// TestPublishEncodesAsMarshal: each published event's message carries json.Marshal
// of the Event, byte for byte, though Publish now writes it from the data's JSON;
// and the state key read from the bytes is the one decoding the event gave. The
// same with the data of a hello's events published by PublishView, whose
// subscribers get the data as Publish's do.
func TestPublishEncodesAsMarshal(t *testing.T) {
	t.Run("Publish", func(t *testing.T) { publishEncodesAsMarshal(t, (*Bus).Publish) })
	t.Run("PublishView", func(t *testing.T) { publishEncodesAsMarshal(t, publishAsView) })
}

// publishAsView publishes data with PublishView when it is a View, else Publish.
func publishAsView(b *Bus, typ string, data any) {
	switch v := data.(type) {
	case mgmtapi.Board:
		PublishView(b, typ, &v)
	case mgmtapi.Deployment:
		PublishView(b, typ, &v)
	case mgmtapi.Batch:
		PublishView(b, typ, &v)
	default:
		b.Publish(typ, data)
	}
}

func publishEncodesAsMarshal(t *testing.T, publish func(b *Bus, typ string, data any)) {
	b := New(1024, 1024)
	sub, _ := b.Subscribe(0)
	defer sub.Close()
	types := []string{BoardChanged, BatchChanged, DeploymentCreated, "odd <type> & \"quoted\"\n"}
	n := 0
	for _, typ := range types {
		for i, data := range stateData() {
			// A distinct field per publish, so that no state event repeats its
			// predecessor and is left out.
			if m, ok := data.(map[string]any); ok {
				m["publish"] = n
			}
			publish(b, typ, data)
			n++
			var ev Event
			select {
			case ev = <-sub.C:
				if !reflect.DeepEqual(ev.Data, data) {
					t.Errorf("%s data %d: the subscriber got %#v, want %#v", typ, i, ev.Data, data)
				}
			default:
				// Left out as a repeat of the same object's previous state: check
				// that it is one.
				d, _ := json.Marshal(data)
				if k := stateKey(typ, d); k == "" {
					t.Fatalf("%s data %d (%v): not published, and no state event", typ, i, data)
				}
				continue
			}
			want, err := json.Marshal(Event{Seq: ev.Seq, Time: ev.Time, Type: typ, Data: data})
			if err != nil {
				t.Fatal(err)
			}
			if got := string(ev.SSE); got != fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, typ, want) {
				t.Errorf("%s data %d: message\n%q\nwant json.Marshal's\n%q", typ, i, got, want)
			}
			d, _ := json.Marshal(data)
			if got, want := stateKey(typ, d), decodedStateKey(typ, want); got != want {
				t.Errorf("%s data %s: state key %q, decoding gives %q", typ, d, got, want)
			}
		}
	}
}

// TestAppendStateKey: an event appended by a relay (data a json.RawMessage, not
// compact) gets the state key decoding gives too.
func TestAppendStateKey(t *testing.T) {
	for i, data := range []json.RawMessage{
		json.RawMessage(`{ "id" : 4 , "serial" : "spaced" }`), json.RawMessage(`{"id":5,"serial":"plain"}`),
		json.RawMessage(`{"Id":6}`), json.RawMessage("{\n\t\"serial\": \"tabbed\"\n}"),
	} {
		ev := Event{Seq: int64(i + 1), Time: time.Now().UTC(), Type: BatchChanged, Data: data}
		j, k := encode(ev)
		if want := decodedStateKey(BatchChanged, j); k != want || k == "" {
			t.Errorf("%s: state key %q, decoding gives %q", data, k, want)
		}
	}
}

// FuzzStateKey: for any JSON as data, the state key read from the bytes is the one
// decoding the whole event gives (go test -fuzz FuzzStateKey ./server/events).
func FuzzStateKey(f *testing.F) {
	for _, d := range stateData() {
		b, _ := json.Marshal(d)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		j, err := json.Marshal(Event{Seq: 1, Type: BoardChanged, Data: json.RawMessage(data)})
		if err != nil {
			return
		}
		_, k := encode(Event{Seq: 1, Type: BoardChanged, Data: json.RawMessage(data)})
		if want := decodedStateKey(BoardChanged, j); k != want {
			t.Errorf("data %s: state key %q, decoding gives %q", data, k, want)
		}
	})
}

// TestPublishDataThatDoesNotEncode: data that json.Marshal refuses (a deployment
// whose rate is not a number, which its AppendJSON refuses too; a channel) is
// numbered and delivered as before, without a message (the event stream skips it),
// and the bus goes on.
func TestPublishDataThatDoesNotEncode(t *testing.T) {
	b := New(16, 16)
	sub, _ := b.Subscribe(0)
	defer sub.Close()
	for _, data := range []any{mgmtapi.Deployment{ID: 1, RateBps: math.NaN()}, make(chan int), mgmtapi.Deployment{ID: 2}} {
		b.Publish(DeploymentProgress, data)
	}
	for i, want := range []bool{false, false, true} {
		ev := <-sub.C
		if ev.Seq != int64(i+1) || (ev.SSE != nil) != want {
			t.Errorf("event %d: seq %d, message %q", i, ev.Seq, ev.SSE)
		}
	}
	if want := "id: 3\nevent: " + DeploymentProgress + "\ndata: "; !strings.HasPrefix(string(b.ring[3].SSE), want) {
		t.Errorf("third message %q, want it to start %q", b.ring[3].SSE, want)
	}
}

// TestAppendDeploymentOnStack: encoding a deployment's data allocates nothing
// beyond the message (its copy stays on the stack: json.Marshal, for a rate that
// does not encode, gets a copy of its own).
func TestAppendDeploymentOnStack(t *testing.T) {
	var data any = mgmtapi.Deployment{ID: 12, Serial: "10000000abcdef01", Venue: "BNCH", Product: "RXP2", State: "open", RateBps: 1.5}
	m := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { m, _ = appendAs[mgmtapi.Deployment](m[:0], data) }); n != 0 {
		t.Errorf("appendAs[mgmtapi.Deployment]: %v allocations, want 0", n)
	}
	if _, err := appendAs[mgmtapi.Deployment](nil, mgmtapi.Deployment{RateBps: math.Inf(1)}); err == nil {
		t.Error("an infinite rate encoded")
	}
}

// TestMessageBufferFitsItsData: a message's buffer is sized by the latest data of
// its kind, so that the ring keeps little unused room with each message (with a
// fixed 512 bytes, a board's message left about 200 unused); data that outgrows
// its guess is still encoded whole.
func TestMessageBufferFitsItsData(t *testing.T) {
	bus := New(64, 0)
	now := "2026-12-05T19:00:00.000000000Z"
	for i := range 20 {
		board := mgmtapi.Board{Serial: fmt.Sprintf("1%015x", i), MAC: "d8:3a:dd:00:00:01", Model: "Raspberry Pi 5 Model B Rev 1.0",
			Hostname: "RXP2-BNCH-ABCDEF01", LastEvent: "hello", FirstSeen: now, LastSeen: now, Site: "main"}
		bt := mgmtapi.Batch{ID: 3, Venue: "BNCH", Product: "RXP2", State: "active", InFlight: i, CreatedAt: now, UpdatedAt: now}
		if i == 10 {
			board.Model = strings.Repeat("n", 2000) // larger than its guess
		}
		bus.Publish(BoardChanged, board)
		bus.Publish(BatchChanged, bt)
	}
	for seq := int64(3); seq <= 40; seq++ {
		e := bus.ring[seq%64]
		if !bytes.HasSuffix(e.SSE, []byte("}\n\n")) || (seq == 21) != bytes.Contains(e.SSE, []byte(strings.Repeat("n", 2000))) {
			t.Fatalf("event %d: message %q", seq, e.SSE)
		}
		if spare := cap(e.SSE) - len(e.SSE); spare > 128 && seq != 21 && seq != 23 { // 21: the large one, grown by append; 23: the board after it
			t.Errorf("event %d (%s): %d bytes of its buffer unused (%d used)", seq, e.Type, spare, len(e.SSE))
		}
	}
}

// TestPublishViewBoxesNothing: with no subscriber, a hello's event published by
// PublishView allocates one less than Publish (whose caller boxes the data): a
// deployment.created its message alone, a batch.changed its message and its state
// key (stateKey).
func TestPublishViewBoxesNothing(t *testing.T) {
	bus := New(64, 0)
	now := "2026-12-05T19:00:00.000000000Z"
	d := mgmtapi.Deployment{ID: 12, Serial: "10000000abcdef01", BatchID: 3, Venue: "BNCH", Product: "RXP2",
		Hostname: "RXP2-BNCH-ABCDEF01", Image: "bench", State: "open", Phase: "hello", StartedAt: now, UpdatedAt: now}
	if n := testing.AllocsPerRun(100, func() { PublishView(bus, DeploymentCreated, &d) }); n != 1 {
		t.Errorf("PublishView of a deployment: %v allocations, want 1 (the message)", n)
	}
	bt := mgmtapi.Batch{ID: 3, Venue: "BNCH", Product: "RXP2", State: "active", CreatedAt: now, UpdatedAt: now}
	view := testing.AllocsPerRun(100, func() {
		bt.InFlight++ // not a repeat of the previous state
		PublishView(bus, BatchChanged, &bt)
	})
	if got := bus.ring[bus.seq%64]; !bytes.Contains(got.SSE, []byte(`"in_progress":`+fmt.Sprint(bt.InFlight)+`,`)) {
		t.Errorf("the last message %q is not the last state", got.SSE)
	}
	boxed := testing.AllocsPerRun(100, func() {
		bt.InFlight++
		bus.Publish(BatchChanged, bt)
	})
	if view != 2 || boxed != 3 {
		t.Errorf("a batch: PublishView %v allocations, Publish %v; want 2 and 3", view, boxed)
	}
}

// BenchmarkPublishHello: the three events a new board's hello publishes, with the
// data the domain gives them (go test -bench PublishHello -benchmem ./server/events).
func BenchmarkPublishHello(b *testing.B) {
	bus := New(1024, 0)
	now := "2026-12-05T19:00:00.000000000Z"
	board := mgmtapi.Board{Serial: "10000000abcdef01", MAC: "d8:3a:dd:00:00:01", Model: "Raspberry Pi 5 Model B Rev 1.0",
		Revision: "d04170", Hostname: "RXP2-BNCH-ABCDEF01", LastEvent: "hello", FirstSeen: now, LastSeen: now, Site: "main"}
	d := mgmtapi.Deployment{ID: 12, Serial: board.Serial, MAC: board.MAC, BatchID: 3, Venue: "BNCH", Product: "RXP2",
		Hostname: board.Hostname, Image: "bench", State: "open", Phase: "hello", Total: 1 << 20, StartedAt: now, UpdatedAt: now, Site: "main"}
	bt := mgmtapi.Batch{ID: 3, Venue: "BNCH", Product: "RXP2", State: "active", CreatedAt: now, UpdatedAt: now, P2P: "inherit"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		board.Serial, d.Serial = fmt.Sprintf("1%015x", i), board.Serial
		bt.InFlight = i
		PublishView(bus, BoardChanged, &board)
		PublishView(bus, DeploymentCreated, &d)
		PublishView(bus, BatchChanged, &bt)
	}
}
