package api_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// TestHelloAnswerOnTheWire: a hello sent as a board sends it (one write on a new
// connection) is answered 200 with Content-Type "application/json; charset=utf-8",
// as c.JSON answered, and a body that is json.Marshal of the answer it decodes to,
// byte for byte — for a deploy answer and a retry answer.
func TestHelloAnswerOnTheWire(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	addr := strings.TrimPrefix(srv.URL, "http://")
	send := func(h agentapi.Hello) (*http.Response, []byte) {
		t.Helper()
		body, _ := json.Marshal(h)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", agentapi.PathHello, addr, len(body), body)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	check := func(name string, resp *http.Response, body []byte, action string) {
		t.Helper()
		var r agentapi.HelloResponse
		if err := json.Unmarshal(body, &r); err != nil || resp.StatusCode != 200 || r.Action != action {
			t.Fatalf("%s: %d %s %v", name, resp.StatusCode, body, err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", name, ct)
		}
		if want, _ := json.Marshal(r); string(body) != string(want) {
			t.Errorf("%s: body\n%s\njson.Marshal of what it decodes to\n%s", name, body, want)
		}
		if resp.ContentLength != int64(len(body)) {
			t.Errorf("%s: Content-Length %d for %d bytes", name, resp.ContentLength, len(body))
		}
	}
	resp, body := send(helloOf(1))
	check("no batch", resp, body, agentapi.ActionRetry)
	srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 2, Image: testImage(t)})
	resp, body = send(helloOf(2))
	check("deploy", resp, body, agentapi.ActionDeploy)
}
