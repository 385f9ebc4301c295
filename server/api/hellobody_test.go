package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/agent/client"
)

// agentHellos are the bodies the real agent client (agent/client) sends for hs,
// captured by a net/http server on loopback.
func agentHellos(t testing.TB, hs ...agentapi.Hello) [][]byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var bodies [][]byte
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
		json.NewEncoder(w).Encode(agentapi.HelloResponse{Action: agentapi.ActionBootLocal})
	})}
	go srv.Serve(ln)
	defer srv.Close()
	c := &client.Client{Server: "http://" + ln.Addr().String()}
	for _, h := range hs {
		if _, err := c.Hello(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
	return bodies
}

// strictHello is what bindJSON's decoder makes of body: the hello and the error.
func strictHello(body io.Reader, max int64) (agentapi.Hello, string) {
	var h agentapi.Hello
	err := newStrictDecoder(http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(body), max)).Decode(&h)
	return h, errString(err)
}

// fastHello is what readHello makes of body sent with Content-Length length.
func fastHello(body io.Reader, length, max int64) (agentapi.Hello, string) {
	var h agentapi.Hello
	err := readHello(httptest.NewRecorder(), io.NopCloser(body), length, max, &h)
	return h, errString(err)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// helloBodies are hello bodies of every kind: the agent's own, and what a hostile
// or broken client could send instead.
func helloBodies(t testing.TB) map[string][]byte {
	agent := agentHellos(t,
		agentapi.Hello{Serial: "10000000abcdef01", MAC: "2c:cf:67:00:00:01", Model: "Raspberry Pi 5 Model B Rev 1.0", Revision: "d04170",
			Disk: agentapi.Disk{Device: "/dev/mmcblk0", SizeBytes: 31914983424, CID: "0353445345333247803a5e1c8b017b00"}, AgentVersion: "v1.4.0", IP: "10.42.0.23"},
		agentapi.Hello{Serial: "10000000ABCDEF02", MAC: "2c:cf:67:00:00:02", Disk: agentapi.Disk{Device: "/dev/mmcblk0"}},
		agentapi.Hello{Serial: "10000000abcdef03", MAC: "2c:cf:67:00:00:03", Model: "Modèle <5> & \"co\"", Disk: agentapi.Disk{Device: "/dev/sda", SizeBytes: -1}})
	b := map[string][]byte{
		"agent full":              agent[0],
		"agent minimal":           agent[1],
		"escapes, from the agent": agent[2], // not on the fast path
	}
	for name, s := range map[string]string{
		"spaced":                 " \t\r\n{ \"serial\" : \"10000000abcdef01\" ,\n \"disk\" : { \"size_bytes\" : 5 } } \n",
		"unknown field":          `{"serial":"10000000abcdef01","evil":1}`,
		"unknown disk field":     `{"serial":"10000000abcdef01","disk":{"evil":"x"}}`,
		"name in another case":   `{"Serial":"10000000abcdef01","DISK":{"Size_Bytes":7}}`,
		"escaped name":           `{"seri\u0061l":"10000000abcdef01"}`,
		"escaped value":          `{"serial":"10000000abcdef\u00301","model":"a\/b\n"}`,
		"null":                   `{"serial":null,"disk":null}`,
		"number for string":      `{"serial":10000000}`,
		"string for number":      `{"disk":{"size_bytes":"5"}}`,
		"fraction":               `{"disk":{"size_bytes":1.5}}`,
		"exponent":               `{"disk":{"size_bytes":1e3}}`,
		"minus zero":             `{"disk":{"size_bytes":-0}}`,
		"leading zero":           `{"disk":{"size_bytes":012}}`,
		"18 digits":              `{"disk":{"size_bytes":999999999999999999}}`,
		"19 digits":              `{"disk":{"size_bytes":9223372036854775807}}`,
		"overflow":               `{"disk":{"size_bytes":9223372036854775808}}`,
		"repeated member":        `{"serial":"aaaaaaaaaaaaaaaa","serial":"10000000abcdef01"}`,
		"repeated disk":          `{"disk":{"device":"/dev/a","size_bytes":1},"disk":{"size_bytes":2}}`,
		"control character":      "{\"model\":\"a\tb\"}",
		"invalid UTF-8":          "{\"model\":\"a\xffb\"}",
		"empty":                  ``,
		"only spaces":            `   `,
		"empty object":           `{}`,
		"array":                  `[]`,
		"not JSON":               `serial=1`,
		"unfinished":             `{"serial":"10000000abcdef01"`,
		"trailing comma":         `{"serial":"10000000abcdef01",}`,
		"missing colon":          `{"serial" "10000000abcdef01"}`,
		"something after":        `{"serial":"10000000abcdef01"}{"serial":"x"}`,
		"garbage after":          `{"serial":"10000000abcdef01"} garbage`,
		"object for string":      `{"serial":{}}`,
		"bool":                   `{"serial":true}`,
		"nested unknown in disk": `{"disk":{"device":"/dev/a","extra":{"a":[1,2]}}}`,
	} {
		b[name] = []byte(s)
	}
	b["past the fast size"] = append(append([]byte{}, agent[0]...), bytes.Repeat([]byte(" "), helloFastMax)...)
	b["past the limit"] = []byte(`{"model":"` + strings.Repeat("x", 70<<10) + `"}`)
	return b
}

// TestReadHelloAsStrictDecoder pins readHello to bindJSON's strict decoder: for every
// body, the same hello or the same error (unknown fields refused, names matched in
// any case, escapes, null, numbers, repeats, the 64 KiB limit); and the bodies the
// real agent sends take the fast path.
func TestReadHelloAsStrictDecoder(t *testing.T) {
	const max = 64 << 10
	for name, body := range helloBodies(t) {
		t.Run(name, func(t *testing.T) {
			want, wantErr := strictHello(bytes.NewReader(body), max)
			got, gotErr := fastHello(bytes.NewReader(body), int64(len(body)), max)
			if diff := cmp.Diff(want, got); diff != "" || gotErr != wantErr {
				t.Errorf("(-strict +readHello)\n%s\nerror %q, strict decoder's %q", diff, gotErr, wantErr)
			}
			// Without a Content-Length (chunked), the strict decoder alone.
			got, gotErr = fastHello(bytes.NewReader(body), -1, max)
			if diff := cmp.Diff(want, got); diff != "" || gotErr != wantErr {
				t.Errorf("chunked: (-strict +readHello)\n%s\nerror %q, strict decoder's %q", diff, gotErr, wantErr)
			}
		})
	}
	for name, body := range helloBodies(t) {
		if fast := parseHello(string(body), &agentapi.Hello{}); strings.HasPrefix(name, "agent") && !fast {
			t.Errorf("the agent's body %q is not on the fast path", body)
		}
	}
}

// TestReadHelloShortBody: a client that announces more bytes than it sends, then
// closes, gets the strict decoder's answer for what it sent: an error for a cut
// object, the hello for a whole one.
func TestReadHelloShortBody(t *testing.T) {
	whole := []byte(`{"serial":"10000000abcdef01","mac":"2c:cf:67:00:00:01"}`)
	for _, sent := range [][]byte{whole[:20], whole} {
		r := io.MultiReader(bytes.NewReader(sent), errReader{io.ErrUnexpectedEOF})
		want, wantErr := strictHello(io.MultiReader(bytes.NewReader(sent), errReader{io.ErrUnexpectedEOF}), 64<<10)
		got, gotErr := fastHello(r, int64(len(whole)+10), 64<<10)
		if diff := cmp.Diff(want, got); diff != "" || gotErr != wantErr {
			t.Errorf("%d of %d bytes: (-strict +readHello)\n%s\nerror %q, strict decoder's %q", len(sent), len(whole)+10, diff, gotErr, wantErr)
		}
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// FuzzReadHello: whatever the body, readHello's hello and error are the strict
// decoder's (go test -fuzz FuzzReadHello ./server/api).
func FuzzReadHello(f *testing.F) {
	for _, b := range helloBodies(f) {
		if len(b) <= helloFastMax {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		want, wantErr := strictHello(bytes.NewReader(body), 64<<10)
		got, gotErr := fastHello(bytes.NewReader(body), int64(len(body)), 64<<10)
		if diff := cmp.Diff(want, got); diff != "" || gotErr != wantErr {
			t.Errorf("body %q: (-strict +readHello)\n%s\nerror %q, strict decoder's %q", body, diff, gotErr, wantErr)
		}
	})
}

// TestReadHelloOnCallersStack: for an agent's hello, readHello's one allocation is
// the body's string (the hello's strings point into it); the caller's Hello stays on
// its stack (the strict decoder, which would make it escape, decodes into one of
// its own). (Under the race detector sync.Pool drops some of what is put back, so
// a read now and then allocates a new body buffer as well: fewer than 2 on average.)
func TestReadHelloOnCallersStack(t *testing.T) {
	body := helloBodies(t)["agent full"]
	rd := bytes.NewReader(body)
	rc, w := io.NopCloser(rd), httptest.NewRecorder()
	n := testing.AllocsPerRun(1000, func() {
		rd.Reset(body)
		var h agentapi.Hello
		if err := readHello(w, rc, int64(len(body)), 64<<10, &h); err != nil || h.Serial == "" {
			t.Fatalf("readHello: %v, serial %q", err, h.Serial)
		}
	})
	if n >= 2 {
		t.Errorf("readHello: %v allocations per hello, want 1 (the body's string)", n)
	}
}

// BenchmarkReadHello: the agent's hello body through the strict decoder (bindJSON)
// and through readHello (go test -bench ReadHello -benchmem ./server/api).
func BenchmarkReadHello(b *testing.B) {
	body := helloBodies(b)["agent full"]
	b.Run("strict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			strictHello(bytes.NewReader(body), 64<<10)
		}
	})
	b.Run("readHello", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fastHello(bytes.NewReader(body), int64(len(body)), 64<<10)
		}
	})
}
