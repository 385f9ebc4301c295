// Package events is rpi-deployd's in-process publish/subscribe of state changes. The
// domain publishes every change; the SSE endpoint streams them to dashboards. Each
// event has a sequence number; the bus keeps the most recent ones so that a client
// reconnecting with Last-Event-ID misses nothing that is still in the ring.
//
// With one server the bus numbers the events itself. Several servers on one
// PostgreSQL database share one numbering instead: a relay (server/events/pgrelay)
// takes what is published (Bus.Relay), numbers it in the database, and appends every
// server's events to every bus with those global numbers (Bus.Append).
package events

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rpi-deploy/rpi-deploy/server/internal/jsonstr"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
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
	HelloRetry         = "hello.retry"         // Data: {"serial","mac","reason","site"}: a board was told to retry
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
	// Site is the site (rpi-deployd --site) the event's board or deployment is at, from
	// its data's "site"; "" for an event that belongs to no one site (batches, images,
	// venues, …). A cursor that follows one site skips the other sites' events.
	Site string `json:"-"`

	// next is the sequence number of the next event of the same type about the same
	// object (see stateKey), 0 while there is none: a cursor that reads both at once
	// skips this one.
	next int64
}

// stateKey names the object of an event that carries the whole of the object's
// state now (a board, a batch), so that a later event with the same key supersedes
// it; "" for every other event (they are all delivered). Every hello and result
// changes its batch: with a fleet saying hello, most of a stream's batch.changed
// events are superseded before they are sent. (deployment.progress events are
// delivered all: a board reports a few a second, fewer than a stream's writes.)
//
// data is the event's data as JSON (json.Marshal's, compact); the key is made of
// its "id" and "serial" as encoding/json would decode them into a json.Number and
// a string (decodeIDSerial): read straight from the bytes (idSerial) when they are
// plainly there, which is every event the domain publishes, else decoded.
func stateKey(typ string, data []byte) string {
	switch typ {
	case BoardChanged, BatchChanged:
	default:
		return ""
	}
	id, serial, ok := idSerial(data)
	if !ok {
		i, s, ok := decodeIDSerial(data)
		if !ok {
			return ""
		}
		id, serial = []byte(i), []byte(s)
	}
	if len(id) == 0 && len(serial) == 0 {
		return ""
	}
	var a [64]byte
	k := append(append(append(append(a[:0], typ...), ' '), id...), ' ')
	return string(append(k, serial...))
}

// decodeIDSerial is data's "id" (as a json.Number) and "serial" as encoding/json
// decodes them, matching names in any case; ok is false when it does not decode.
func decodeIDSerial(data []byte) (id, serial string, ok bool) {
	var k struct {
		ID     json.Number `json:"id"`
		Serial string      `json:"serial"`
	}
	if json.Unmarshal(data, &k) != nil {
		return "", "", false
	}
	return string(k.ID), k.Serial, true
}

// idSerial reads data's top-level "id" (a number) and "serial" (a string without
// escapes) from compact JSON without decoding the rest. ok is false — and
// decodeIDSerial decides — when data is not a compact object, or names a member
// in a way that decoding could read differently: an escaped name, another case of
// "id" or "serial", a name or "serial" not in valid UTF-8 (decoding replaces
// what is not), an "id" that is not a number, a "serial" that is not such a string.
func idSerial(d []byte) (id, serial []byte, ok bool) {
	if len(d) < 2 || d[0] != '{' {
		return nil, nil, false
	}
	i := 1
	if d[i] == '}' {
		return nil, nil, len(d) == 2
	}
	for {
		if i >= len(d) || d[i] != '"' {
			return nil, nil, false
		}
		j := i + 1
		for j < len(d) && d[j] != '"' && d[j] != '\\' {
			j++
		}
		if j+1 >= len(d) || d[j] != '"' || d[j+1] != ':' {
			return nil, nil, false
		}
		key := d[i+1 : j]
		i = j + 2
		end, good := skipValue(d, i)
		if !good {
			return nil, nil, false
		}
		v := d[i:end]
		switch {
		case string(key) == "id":
			if c := v[0]; c != '-' && (c < '0' || c > '9') {
				return nil, nil, false
			}
			id = v
		case string(key) == "serial":
			if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 || !utf8.Valid(v) {
				return nil, nil, false
			}
			serial = v[1 : len(v)-1]
		case !utf8.Valid(key) || bytes.EqualFold(key, []byte("id")) || bytes.EqualFold(key, []byte("serial")):
			return nil, nil, false
		}
		i = end
		if i >= len(d) {
			return nil, nil, false
		}
		if d[i] == '}' {
			return id, serial, i == len(d)-1
		}
		if d[i] != ',' {
			return nil, nil, false
		}
		i++
	}
}

// skipValue is the end of the compact JSON value starting at d[i]; false if there is
// none.
func skipValue(d []byte, i int) (int, bool) {
	if i >= len(d) {
		return 0, false
	}
	depth := 0
	for j := i; j < len(d); j++ {
		switch d[j] {
		case '"':
			for j++; j < len(d) && d[j] != '"'; j++ {
				if d[j] == '\\' {
					j++
				}
			}
			if j >= len(d) {
				return 0, false
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j, j > i
			}
			depth--
		case ',':
			if depth == 0 {
				return j, j > i
			}
		}
		if depth == 0 && (d[j] == '"' || d[j] == '}' || d[j] == ']') {
			return j + 1, true
		}
	}
	return len(d), depth == 0
}

// siteKey is how the site of an event's data reads in the event's JSON.
var siteKey = []byte(`"site":"`)

// eventSite is the site named by the data of an event about a board or a deployment
// (their wire types carry "site"); "" for every other event. j is the event's JSON
// (json.Marshal of Event). The data of these events is one flat object (a board, a
// deployment, a board event, or a map of strings) whose only "site" key is its own, so
// the site is the value after the last `"site":"` in j: a string value cannot hold
// that sequence, as json.Marshal writes its quotes escaped (\"). This is read on every
// event published, without decoding it again.
//
// last is the site of an earlier event: when the site is the same, last is
// returned, so that a server's events (nearly all of one site) share one string.
func eventSite(typ string, j []byte, last string) string {
	switch typ {
	case BoardChanged, BoardNetboot, DeploymentCreated, DeploymentProgress, DeploymentFinished, HelloRetry:
	default:
		return ""
	}
	i := bytes.LastIndex(j, siteKey)
	if i < 0 {
		return ""
	}
	v := j[i+len(siteKey):]
	end := bytes.IndexByte(v, '"')
	if end < 0 || bytes.IndexByte(v[:end], '\\') >= 0 {
		return "" // not a site name (those are [a-z0-9-]): no site
	}
	if string(v[:end]) == last {
		return last
	}
	return string(v[:end])
}

// Bus fans events out to subscribers. The zero value is not usable; use New.
// A nil *Bus is safe: Publish does nothing.
type Bus struct {
	mu     sync.RWMutex // Cursor.Read and More read the ring under RLock, side by side
	seq    int64
	ring   []Event // the last len(ring) events, ring[seq % len], without their Data (addMessage)
	subs   map[*Sub]struct{}
	buffer int
	// notify is closed by the next Publish; made by Cursor.Ready when a follower
	// waits (nil: nobody waits).
	notify chan struct{}
	// passed holds the channels Cursor.Filling made, by the sequence number whose
	// publishing closes them; passedMin is the smallest of those (0: none).
	passed    map[int64]chan struct{}
	passedMin int64
	// last is the sequence number of the latest event of each state key (stateKey),
	// pruned to the keys still in the ring when it outgrows it.
	last map[string]int64
	// site is the latest event's site (Event.Site) that was not "", for eventSite.
	site string
	// floor is the first sequence number after the latest gap in the numbering
	// (Append; 0: none): the events below it never reached this bus.
	floor int64
	// relay, when set, takes Publish's events instead of the ring (Relay).
	relay atomic.Pointer[func(Event)]

	// shared holds the messages Cursor.Shared built lately, so that the cursors at
	// one position read one copy; sharedMu guards it and is taken before mu.
	sharedMu sync.Mutex
	shared   map[sharedKey]sharedRead
	// sharedBytes is the size of the messages in shared.
	sharedBytes int

	// dataLen is the length of the latest data of each kind (dataKind) Publish
	// encoded, the size of the next message's first buffer (dataRoom).
	dataLen [kinds]atomic.Int32
}

// sharedKey is what a Cursor.Shared read depends on besides the ring.
type sharedKey struct {
	from  int64 // the cursor's next sequence number
	to    int64 // the last it may read (SharedReadTo; 0: no bound)
	site  string
	limit int
}

// sharedRead is one read's result: r, after which the cursor is at next.
type sharedRead struct {
	r    *SharedRead
	next int64
}

// sharedKeep is about how many reads Bus.shared remembers (one per group of cursors
// at one position, and per site filter), and sharedKeepBytes about how many bytes of
// messages: a read may be large (an event stream reads up to 8 MiB at once), and
// readers far apart must not make the bus hold 64 of those.
const (
	sharedKeep      = 64
	sharedKeepBytes = 32 << 20
)

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
	return &Bus{ring: make([]Event, keep), subs: map[*Sub]struct{}{}, buffer: buffer, last: map[string]int64{}}
}

// Publish sends an event to every subscriber. A subscriber whose buffer is full is
// dropped (its Lost channel closes) rather than blocking the publisher. A state
// event (board.changed, batch.changed) that shows its object exactly as the latest
// event about it did is not published (repeats). On a bus with a relay (Relay) the
// event goes to the relay instead, and reaches the subscribers when the relay
// appends it.
func (b *Bus) Publish(typ string, data any) {
	if b == nil {
		return
	}
	if out := b.relay.Load(); out != nil {
		b.toRelay(*out, typ, data)
		return
	}
	// The data is encoded, and its state key read, before the lock: publishers
	// (every hello publishes three events) wait only for the numbering. The data's
	// JSON is written after room for the message's head (appendHead), which is
	// written there under the lock: the whole message is one allocation.
	room, kind := headRoom(typ), dataKind(data)
	m, err := appendData(make([]byte, room, room+b.dataRoom(kind)), data)
	b.publish(typ, room, kind, m, err, func() any { return data })
}

// View is the data of a hello's events: PublishView encodes it where it is.
type View interface {
	mgmtapi.Board | mgmtapi.Deployment | mgmtapi.Batch
}

// PublishView is Publish of *v, without copying *v to the heap: the data is
// encoded from v, and boxed into the Event (Data) only for the subscribers
// (Subscribe) there are when it is published, if any. The event streams read the
// message alone: a hello's three events then box none of their data, where
// Publish's caller boxed each (176-320 bytes).
func PublishView[T View](b *Bus, typ string, v *T) {
	if b == nil {
		return
	}
	if out := b.relay.Load(); out != nil {
		b.toRelay(*out, typ, *v)
		return
	}
	room, kind := headRoom(typ), viewKind(v)
	m, err := appendView(make([]byte, room, room+b.dataRoom(kind)), v)
	b.publish(typ, room, kind, m, err, func() any { return *v })
}

// viewKind is v's kind (dataKind of *v).
func viewKind[T View](v *T) int {
	switch any(v).(type) {
	case *mgmtapi.Board:
		return kindBoard
	case *mgmtapi.Deployment:
		return kindDeployment
	}
	return kindBatch
}

// appendView appends *v's JSON (appendData of *v).
func appendView[T View](m []byte, v *T) ([]byte, error) {
	switch p := any(v).(type) {
	case *mgmtapi.Board:
		return mgmtapi.AppendBoard(m, p), nil
	case *mgmtapi.Deployment:
		return mgmtapi.AppendDeployment(m, p)
	case *mgmtapi.Batch:
		return mgmtapi.AppendBatch(m, p), nil
	}
	panic("events: a View of another type")
}

// publish numbers and hands out the event of type typ whose data's JSON is m
// after room bytes (err: the data does not encode), of the given kind (dataKind);
// data gives the data for the subscribers, called only when there are any.
func (b *Bus) publish(typ string, room, kind int, m []byte, err error, data func() any) {
	b.dataLen[kind].Store(int32(min(len(m)-room, maxDataRoom)))
	var k string
	if err == nil {
		k = stateKey(typ, m[room:])
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ev := Event{Seq: b.seq + 1, Time: time.Now().UTC(), Type: typ}
	if len(b.subs) > 0 {
		ev.Data = data()
	}
	var j []byte
	if err == nil {
		m, j = putHead(m, room, &ev)
	} else {
		m = nil
	}
	if b.repeats(k, j) {
		return
	}
	b.seq++
	b.addMessage(ev, m, j, k)
}

// putHead makes m, the data's JSON after room bytes, ev's Server-Sent Events
// message: its head (appendHead) written into the room (a new message when it does
// not fit) and its end after the data; j is the event's JSON in it. (A function of
// its own: the head's buffer is not on the stack while the data is encoded.)
//
//go:noinline
func putHead(m []byte, room int, ev *Event) (msg, j []byte) {
	d := m[room:]
	var head [256]byte
	h, at := appendHead(head[:0], *ev)
	if len(h) <= room {
		m = m[room-len(h):]
		copy(m, h)
	} else {
		m = append(append(make([]byte, 0, len(h)+len(d)+3), h...), d...)
	}
	m = append(m, "}\n\n"...)
	return m, m[at : len(m)-2]
}

// Kinds of data (dataKind): the data of a hello's three events, and the rest.
const (
	kindOther = iota
	kindBoard
	kindDeployment
	kindBatch
	kinds
)

// dataKind is data's kind, by its type as appendData tells them apart.
func dataKind(data any) int {
	switch data.(type) {
	case mgmtapi.Board:
		return kindBoard
	case mgmtapi.Deployment:
		return kindDeployment
	case mgmtapi.Batch:
		return kindBatch
	}
	return kindOther
}

// dataRoom is the room Publish makes for the data's JSON (and the message's end)
// of the next event whose data is of the given kind: the latest such data's length
// and 64 bytes for what grows from one event to the next (numbers, names), or 512
// before the first. The ring keeps every message with its buffer: a buffer of a
// fixed 512 bytes left a third of a hello's messages unused (a board's JSON is
// about 300 bytes), and a larger one is grown by append, as before. maxDataRoom
// bounds what one large event makes the next ones take.
func (b *Bus) dataRoom(kind int) int {
	n := int(b.dataLen[kind].Load())
	if n == 0 {
		return 512
	}
	return n + 64
}

const maxDataRoom = 64 << 10

// appendData appends data's JSON as json.Marshal writes it: without reflection for
// the data of a hello's events, mgmtapi's Board, Deployment and Batch (exactly
// those types: one that embeds them has fields of its own), else by json.Marshal.
func appendData(m []byte, data any) ([]byte, error) {
	switch dataKind(data) {
	case kindBoard:
		return appendAs[mgmtapi.Board](m, data)
	case kindDeployment:
		return appendAs[mgmtapi.Deployment](m, data)
	case kindBatch:
		return appendAs[mgmtapi.Batch](m, data)
	}
	d, err := json.Marshal(data)
	return append(m, d...), err
}

// appendAs is appendData's case for data of type T (appendView of it), a function
// of its own for each type so that only one copy of the data is on the stack.
//
//go:noinline
func appendAs[T View](m []byte, data any) ([]byte, error) {
	v := data.(T)
	return appendView(m, &v)
}

// headRoom is the room Publish leaves for the head (appendHead) of a message of
// type typ: enough for any sequence number and time and a type whose JSON is no
// longer than itself (every type above).
func headRoom(typ string) int {
	return len("id: \nevent: \ndata: ") + 2*len(typ) + len(`{"seq":,"time":"","type":"",`) + len(dataKey) +
		2*len("-9223372036854775808") + len("2006-01-02T15:04:05.999999999Z")
}

// appendHead appends the head of ev's Server-Sent Events message (appendSSE):
// "id: SEQ\nevent: TYPE\ndata: " and ev's JSON up to its data, as json.Marshal of
// the Event writes it (seq, time, type, then data); at is where the JSON starts.
func appendHead(m []byte, ev Event) (h []byte, at int) {
	m = appendSSEHead(m, ev.Seq, ev.Type)
	at = len(m)
	m = append(m, `{"seq":`...)
	m = strconv.AppendInt(m, ev.Seq, 10)
	m = append(m, `,"time":"`...)
	m = ev.Time.AppendFormat(m, time.RFC3339Nano)
	m = append(m, `","type":`...)
	m = jsonstr.Append(m, ev.Type)
	return append(m, dataKey...), at
}

// encode is ev's JSON (nil: it does not encode) and its state key (stateKey), for
// Append's add. (Publish writes both from the data's JSON itself.)
func encode(ev Event) (j []byte, key string) {
	j, err := json.Marshal(ev)
	if err != nil {
		return nil, ""
	}
	// The data follows the first `,"data":` (the strings before it are escaped)
	// and ends before the final "}".
	i := bytes.Index(j, dataKey)
	return j, stateKey(ev.Type, j[i+len(dataKey):len(j)-1])
}

// dataKey is what precedes an event's data in its JSON (json.Marshal of Event: seq,
// time, type, data, in that order).
var dataKey = []byte(`,"data":`)

// repeats reports whether a state event (stateKey) shows its object as the latest
// event of the same key, still in the ring, already showed it: byte for byte the
// same data. Such an event tells no reader anything (a hello's result that changes
// nothing about its board would repeat the hello's board.changed), and is not
// published. j is the event's JSON and k its state key. b.mu is held.
func (b *Bus) repeats(k string, j []byte) bool {
	if k == "" {
		return false
	}
	prev, ok := b.last[k]
	if !ok {
		return false
	}
	e := &b.ring[prev%int64(len(b.ring))]
	i := bytes.Index(j, dataKey)
	if e.Seq != prev || i < 0 {
		return false
	}
	// e.SSE ends with its JSON and "\n\n"; both JSONs end with their data and "}".
	data := j[i : len(j)-1]
	old, ok := bytes.CutSuffix(e.SSE, []byte("}\n\n"))
	return ok && bytes.HasSuffix(old, data)
}

// add puts ev (numbered b.seq) into the ring and hands it to the readers; j and k
// are ev's JSON and state key (nil and "" when it does not encode). b.mu is held.
func (b *Bus) add(ev Event, j []byte, k string) {
	var m []byte
	if j != nil {
		m = appendSSE(make([]byte, 0, len(j)+len(ev.Type)+32), ev.Seq, ev.Type, j)
	}
	b.addMessage(ev, m, j, k)
}

// addMessage is add with ev's Server-Sent Events message m (appendSSE) made, j its
// JSON within m. b.mu is held.
func (b *Bus) addMessage(ev Event, m, j []byte, k string) {
	typ := ev.Type
	if j != nil {
		ev.SSE = m
		if k != "" {
			b.supersede(k, ev.Seq)
		}
		ev.Site = eventSite(typ, j, b.site)
		if ev.Site != "" {
			b.site = ev.Site
		}
	}
	// The ring keeps the event without its data: its readers (Cursor) read the
	// message, and the data (a board's, a deployment's view, a few hundred bytes
	// with its strings) would stay alive as long as the event stays in the ring.
	kept := ev
	kept.Data = nil
	b.ring[ev.Seq%int64(len(b.ring))] = kept
	if b.notify != nil {
		close(b.notify)
		b.notify = nil
	}
	if b.passedMin != 0 && ev.Seq >= b.passedMin {
		b.closePassed(ev.Seq)
	}
	for s := range b.subs {
		select {
		case s.C <- ev:
		default:
			delete(b.subs, s)
			close(s.Lost)
		}
	}
}

// appendSSE appends the Server-Sent Events message "id: SEQ\nevent: TYPE\ndata:
// JSON\n\n".
func appendSSE(m []byte, seq int64, typ string, j []byte) []byte {
	m = append(appendSSEHead(m, seq, typ), j...)
	return append(m, "\n\n"...)
}

// appendSSEHead appends "id: SEQ\nevent: TYPE\ndata: ".
func appendSSEHead(m []byte, seq int64, typ string) []byte {
	m = append(m, "id: "...)
	m = strconv.AppendInt(m, seq, 10)
	m = append(m, "\nevent: "...)
	m = append(m, typ...)
	return append(m, "\ndata: "...)
}

// supersede records seq as the latest event of key and links the previous one, if
// still in the ring, to it. b.mu is held.
func (b *Bus) supersede(key string, seq int64) {
	if prev, ok := b.last[key]; ok {
		if e := &b.ring[prev%int64(len(b.ring))]; e.Seq == prev {
			e.next = seq
		}
	}
	b.last[key] = seq
	if len(b.last) > 2*len(b.ring) {
		oldest := b.oldest()
		for k, q := range b.last {
			if q < oldest {
				delete(b.last, k)
			}
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
// number still in the ring are delivered first, as the ring keeps them: with their
// message (SSE) but without their Data; missed reports whether some were already
// gone.
func (b *Bus) Subscribe(after int64) (s *Sub, missed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s = &Sub{C: make(chan Event, b.buffer+len(b.ring)), Lost: make(chan struct{}), bus: b}
	if after > 0 && after < b.seq {
		first := after + 1
		if oldest := b.oldest(); first < oldest {
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

// Cursor follows the bus by reading its ring: a Publish costs the same whatever the
// number of cursors (one channel close wakes the waiting ones), and a reader takes
// all the events published since its last read at once. It suits many slow readers
// (event streams); Subscribe's channel suits a few in-process ones.
type Cursor struct {
	bus   *Bus
	next  int64    // sequence number of the next event to read
	parts [][]byte // Read's messages, reused
	site  string   // OnlySite: "" reads every event
}

// OnlySite makes the cursor skip the events of boards and deployments at other sites
// than site (Event.Site); events that belong to no one site are still read. "" reads
// all. Call it before the first Read.
func (c *Cursor) OnlySite(site string) { c.site = site }

// Follow starts a cursor after sequence number after (0: after the last event
// published). missed reports whether events after `after` are already gone from the
// ring; the cursor then starts at the oldest event still in it. On a bus with a
// relay, after may be ahead of Seq (a client that read it at another server, which
// was quicker to append): the cursor then starts after it, with the events this bus
// has yet to append. Ahead by more than the ring's length, after is taken for a
// number of another database (or of a server's own numbering before it moved to a
// shared one): missed, and the cursor starts after the last event.
func (b *Bus) Follow(after int64) (c *Cursor, missed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c = &Cursor{bus: b, next: b.seq + 1}
	switch {
	case after > 0 && after < b.seq:
		c.next = after + 1
		if oldest := b.oldest(); c.next < oldest {
			c.next, missed = oldest, true
		}
	case after > b.seq && b.relay.Load() != nil:
		if after-b.seq > int64(len(b.ring)) {
			return c, true
		}
		c.next = after + 1
	}
	return c, missed
}

// oldest is the sequence number of the oldest event in the ring. b.mu is held.
func (b *Bus) oldest() int64 {
	return max(1, b.seq-int64(len(b.ring))+1, b.floor)
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Ready returns a channel that is closed once there is an event to read.
func (c *Cursor) Ready() <-chan struct{} {
	b := c.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.next <= b.seq {
		return closed
	}
	if b.notify == nil {
		b.notify = make(chan struct{})
	}
	return b.notify
}

// Filling returns a channel that is closed once the bus has published half its ring
// past the cursor's position: a reader that waits for its next read (an event stream
// waits for its pacer's next instant) must not wait longer, or the events it has yet
// to read start to leave the ring. The cursors at one position share one channel.
func (c *Cursor) Filling() <-chan struct{} {
	b := c.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	at := c.next - 1 + int64(len(b.ring))/2 // the event that makes half a ring unread
	if b.seq >= at {
		return closed
	}
	ch := b.passed[at]
	if ch == nil {
		if b.passed == nil {
			b.passed = map[int64]chan struct{}{}
		}
		ch = make(chan struct{})
		b.passed[at] = ch
		if b.passedMin == 0 || at < b.passedMin {
			b.passedMin = at
		}
	}
	return ch
}

// closePassed closes the channels of Filling up to sequence number seq (those of
// cursors that have gone too: at most half a ring's worth of them wait). b.mu is held.
func (b *Bus) closePassed(seq int64) {
	b.passedMin = 0
	for at, ch := range b.passed {
		if at <= seq {
			close(ch)
			delete(b.passed, at)
		} else if b.passedMin == 0 || at < b.passedMin {
			b.passedMin = at
		}
	}
}

// Read appends the SSE messages (Event.SSE) of the events published since the last
// Read, in order, to dst and returns it, stopping once dst holds limit bytes or more
// (0: no limit; the rest comes with the next Read). Events without a message are
// skipped, and so is a state event (board.changed, batch.changed) that a later one
// about the same object, published by then, supersedes: the reader gets
// the later one and ends in the same state. lost reports that the reader fell more
// than the ring's length behind: events are gone, nothing is appended, and the
// cursor moves past the newest event (a reader then starts again from a snapshot).
func (c *Cursor) Read(dst []byte, limit int) (out []byte, lost bool) {
	// The messages are taken under the read lock, copied after it: a publisher never
	// waits for a reader's copy.
	parts, lost := c.take(limit, 0)
	for _, p := range parts {
		dst = append(dst, p...)
	}
	clear(parts)
	return dst, lost
}

// take collects into c.parts the messages Read appends (the slices themselves: a
// message is never changed once published), of the events up to sequence number to
// (0: all).
func (c *Cursor) take(limit int, to int64) (parts [][]byte, lost bool) {
	b := c.bus
	b.mu.RLock()
	defer b.mu.RUnlock()
	c.parts = c.parts[:0]
	if c.next < b.oldest() {
		c.next = b.seq + 1
		return c.parts, true
	}
	last := b.seq
	if to > 0 {
		last = min(last, to)
	}
	n := 0
	for ; c.next <= last && (limit <= 0 || n < limit); c.next++ {
		e := &b.ring[c.next%int64(len(b.ring))]
		if e.next != 0 && e.next <= last {
			continue
		}
		if c.site != "" && e.Site != "" && e.Site != c.site {
			continue
		}
		c.parts = append(c.parts, e.SSE)
		n += len(e.SSE)
	}
	return c.parts, false
}

// Shared is Read for many cursors: the cursors at the same position (and with the
// same site and limit) get one and the same slice, built by the first of them, and
// all move to where it ends; the events published after it was built come with the
// next call. One event stream then costs a write, not a copy of its events as well.
// msg must not be modified. lost is as for Read (msg is then nil).
func (c *Cursor) Shared(limit int) (msg []byte, lost bool) {
	r, lost := c.SharedRead(limit)
	if lost {
		return nil, true
	}
	return r.Msg, false
}

// SharedRead is Shared, with the read's compressed form (SharedRead.Deflate) made
// once for every cursor that shares it. An empty read (nothing published yet) is a
// SharedRead with no messages.
func (c *Cursor) SharedRead(limit int) (r *SharedRead, lost bool) {
	return c.SharedReadTo(limit, 0)
}

// SharedReadTo is SharedRead of the events up to sequence number to (0: all): the
// cursors that read up to the same number end at the same position, wherever each
// started, and share their reads from then on. A superseded state event (see Read)
// is skipped only if what supersedes it is within the read.
func (c *Cursor) SharedReadTo(limit int, to int64) (r *SharedRead, lost bool) {
	b := c.bus
	b.sharedMu.Lock()
	defer b.sharedMu.Unlock()
	k := sharedKey{from: c.next, to: to, site: c.site, limit: limit}
	if s, ok := b.shared[k]; ok && !c.behind() {
		c.next = s.next
		return s.r, false
	}
	parts, lost := c.take(limit, to)
	if lost {
		return nil, true
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	msg := make([]byte, 0, n)
	for _, p := range parts {
		msg = append(msg, p...)
	}
	clear(parts)
	r = &SharedRead{Msg: msg}
	if c.next == k.from || len(msg) > sharedKeepBytes {
		// Nothing yet: the next events must not find an empty read here; or a read
		// too large to keep.
		return r, false
	}
	if b.shared == nil || len(b.shared) >= sharedKeep || b.sharedBytes+len(msg) > sharedKeepBytes {
		b.shared = make(map[sharedKey]sharedRead, sharedKeep) // the old reads are behind their cursors now
		b.sharedBytes = 0
	}
	b.shared[k] = sharedRead{r: r, next: c.next}
	b.sharedBytes += len(msg)
	return r, false
}

// behind reports whether events the cursor has yet to read are gone from the ring.
func (c *Cursor) behind() bool {
	c.bus.mu.RLock()
	defer c.bus.mu.RUnlock()
	return c.next < c.bus.oldest()
}

// More reports whether there are events the cursor has not read yet.
func (c *Cursor) More() bool {
	return c.MoreTo(0)
}

// MoreTo reports whether there are events up to sequence number to (0: any) that the
// cursor has not read yet.
func (c *Cursor) MoreTo(to int64) bool {
	c.bus.mu.RLock()
	defer c.bus.mu.RUnlock()
	last := c.bus.seq
	if to > 0 {
		last = min(last, to)
	}
	return c.next <= last
}
