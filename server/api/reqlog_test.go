package api_test

import (
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// TestRequestLogByLevel: at --log-level debug every request is logged with its
// method, path and status; at info no request under 500 is (logRequests skips
// building the line then).
func TestRequestLogByLevel(t *testing.T) {
	for _, level := range []string{"debug", "info"} {
		t.Run(level, func(t *testing.T) {
			srv := servertest.Start(t, servertest.Options{Args: []string{"--log-level", level}})
			code, body, err := postJSON(t, srv.URL+agentapi.PathHello, map[string]any{"serial": "not hex"}, nil)
			if err != nil || code != 400 {
				t.Fatalf("hello: %d %s %v", code, body, err)
			}
			line := "msg=request method=POST path=" + agentapi.PathHello + " status=400"
			if logged := strings.Contains(srv.Log(), line); logged != (level == "debug") {
				t.Errorf("%q logged: %v, want %v; log:\n%s", line, logged, level == "debug", srv.Log())
			}
		})
	}
}
