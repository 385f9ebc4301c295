package mgmtapi

import (
	"encoding/json"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"
)

// appender is what server/events asks of an event's data that writes its own JSON.
type appender interface {
	AppendJSON([]byte) ([]byte, error)
}

// asMarshal reports whether v's AppendJSON (after prefix) is json.Marshal(v) byte
// for byte, errors alike.
func asMarshal(t *testing.T, v appender) bool {
	t.Helper()
	want, werr := json.Marshal(v)
	got, gerr := v.AppendJSON([]byte("prefix"))
	if (werr == nil) != (gerr == nil) {
		t.Errorf("%T: AppendJSON error %v, json.Marshal error %v", v, gerr, werr)
		return false
	}
	if werr == nil && string(got) != "prefix"+string(want) {
		t.Errorf("%T: AppendJSON\n%s\njson.Marshal\n%s", v, got, want)
		return false
	}
	return true
}

// TestAppendJSONAsMarshal: the Board, Deployment and Batch of the hello's events
// write json.Marshal's bytes: as the domain fills them, with strings that need
// escaping, with rates of every magnitude and form encoding/json knows (0, -0,
// exponent forms below 1e-6 and from 1e21, the largest and smallest float64; NaN and
// ±Inf are json.Marshal's error), and random values of every field (testing/quick:
// strings of any runes, any numbers), so that a field added to one of these types
// fails here until it is written too.
func TestAppendJSONAsMarshal(t *testing.T) {
	for _, v := range []appender{
		Board{Serial: "10000000abcdef01", MAC: "d8:3a:dd:00:00:01", Model: "Raspberry Pi 5 Model B Rev 1.0", Revision: "d04170",
			LastEvent: "hello", FirstSeen: "2026-12-05T19:00:00.000000000Z", LastSeen: "2026-12-05T19:00:00.000000000Z", Site: "main"},
		Board{Serial: "<&>", Hostname: "KXP2-CORO-001", Image: "kxp2 \"v1\"", Deployed: true, Reimage: true, LastEvent: "retry: a\u2028b\xff"},
		Board{},
		Deployment{ID: 12, Serial: "10000000abcdef01", MAC: "d8:3a:dd:00:00:01", BatchID: 3, Venue: "CORO", Product: "KXP2",
			Hostname: "KXP2-CORO-001", Image: "kxp2", State: DeployOpen, Phase: "hello", Total: 1 << 30,
			StartedAt: "2026-12-05T19:00:00.000000000Z", UpdatedAt: "2026-12-05T19:00:00.000000000Z", Site: "main"},
		Deployment{ID: -1, Bytes: 5, RateBps: 1234.5678, Message: "<x>", Error: "e\n", ErrorPhase: "write", SHA256: "ab",
			BytesWritten: 1, BytesFetched: -2, DurationMS: 3, FinishedAt: "f"},
		Deployment{},
		Batch{ID: 3, Venue: "CORO", Product: "KXP2", Count: 20, Priority: 1, State: "active", Done: 1, InFlight: 19,
			CreatedAt: "2026-12-05T19:00:00.000000000Z", UpdatedAt: "2026-12-05T19:00:00.000000000Z", P2P: "inherit"},
		Batch{Note: "a \"note\" <b>", Count: -1},
		Batch{},
	} {
		asMarshal(t, v)
	}
	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 9.99999e-7, -1e-7, 1.5e-9, 1e20, 1e21, -1e21, 1.2345e22, 123456789.125,
		math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, 5e-324, 1e-100, 1e100, math.NaN(), math.Inf(1), math.Inf(-1)} {
		asMarshal(t, Deployment{RateBps: f})
	}
	rnd := rand.New(rand.NewSource(18))
	for _, typ := range []reflect.Type{reflect.TypeFor[Board](), reflect.TypeFor[Deployment](), reflect.TypeFor[Batch]()} {
		check := func(v appender) bool { return asMarshal(t, v) }
		err := quick.Check(check, &quick.Config{MaxCount: 3000, Rand: rnd, Values: func(v []reflect.Value, r *rand.Rand) {
			x, _ := quick.Value(typ, r)
			if d, ok := x.Interface().(Deployment); ok && r.Intn(2) == 0 {
				// quick's floats are nearly all huge: a rate of any magnitude instead.
				d.RateBps = r.NormFloat64() * math.Pow(10, float64(r.Intn(60)-30))
				x = reflect.ValueOf(d)
			}
			v[0] = reflect.ValueOf(x.Interface().(appender))
		}})
		if err != nil {
			t.Errorf("%v: %v", typ, err)
		}
	}
}

// BenchmarkAppendJSON: a new deployment's event data through json.Marshal and
// AppendJSON (go test -bench AppendJSON -benchmem ./server/mgmtapi).
func BenchmarkAppendJSON(b *testing.B) {
	d := Deployment{ID: 12, Serial: "10000000abcdef01", MAC: "d8:3a:dd:00:00:01", BatchID: 3, Venue: "BNCH", Product: "RXP2",
		Hostname: "RXP2-BNCH-ABCDEF01", Image: "bench", State: DeployOpen, Phase: "hello", Total: 1 << 20,
		StartedAt: "2026-12-05T19:00:00.000000000Z", UpdatedAt: "2026-12-05T19:00:00.000000000Z", Site: "main"}
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(d)
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d.AppendJSON(make([]byte, 0, 512))
		}
	})
}
