package mgmtapi

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"
)

// appendAny is AppendBoard, AppendDeployment or AppendBatch by v's type.
func appendAny(j []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case Board:
		return AppendBoard(j, &v), nil
	case Deployment:
		return AppendDeployment(j, &v)
	case Batch:
		return AppendBatch(j, &v), nil
	}
	panic(fmt.Sprintf("%T", v))
}

// asMarshal reports whether v's JSON by appendAny (after prefix) is
// json.Marshal(v) byte for byte, errors alike.
func asMarshal(t *testing.T, v any) bool {
	t.Helper()
	want, werr := json.Marshal(v)
	got, gerr := appendAny([]byte("prefix"), v)
	if (werr == nil) != (gerr == nil) {
		t.Errorf("%T: error %v, json.Marshal's %v", v, gerr, werr)
		return false
	}
	if werr == nil && string(got) != "prefix"+string(want) {
		t.Errorf("%T: appended\n%s\njson.Marshal\n%s", v, got, want)
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
	for _, v := range []any{
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
		check := func(v any) bool { return asMarshal(t, v) }
		err := quick.Check(check, &quick.Config{MaxCount: 3000, Rand: rnd, Values: func(v []reflect.Value, r *rand.Rand) {
			x, _ := quick.Value(typ, r)
			if d, ok := x.Interface().(Deployment); ok && r.Intn(2) == 0 {
				// quick's floats are nearly all huge: a rate of any magnitude instead.
				d.RateBps = r.NormFloat64() * math.Pow(10, float64(r.Intn(60)-30))
				x = reflect.ValueOf(d)
			}
			iv := x.Interface()
			v[0] = reflect.ValueOf(&iv).Elem() // an any, as check takes
		}})
		if err != nil {
			t.Errorf("%v: %v", typ, err)
		}
	}
}

// BenchmarkAppendJSON: a new deployment's event data through json.Marshal and
// AppendDeployment (go test -bench AppendJSON -benchmem ./server/mgmtapi).
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
	b.Run("AppendDeployment", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			AppendDeployment(make([]byte, 0, 512), &d)
		}
	})
}
