package cli_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// TestCLISites: `sites` lists the server's own site (marked *) with its counts,
// `boards --site`, `deployments --site` and `status --site` show that site's rows
// only, and a name that cannot be a site exits non-zero saying so.
func TestCLISites(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--site", "hall-2"}})
	img := servertest.PackedImage(t, t.TempDir(), "rxp2-cli", 2<<20, 1<<20)
	srv.Setup(t, servertest.Fleet{Venue: "ARIA", Product: "RXP2", Count: 5, Image: img})
	const serial = "10000000deadbeef"
	b, _ := json.Marshal(agentapi.Hello{Serial: serial, MAC: "2c:cf:67:de:ad:01"})
	resp, err := srv.Client.HTTP.Post(srv.URL+agentapi.PathHello, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, tc := range []struct {
		args       []string
		want, not  string
		wantStatus int
	}{
		{[]string{"sites"}, "hall-2 *", "", 0},
		{[]string{"boards", "--site", "hall-2"}, serial, "", 0},
		{[]string{"boards", "--site", "main"}, "SERIAL", serial, 0},
		{[]string{"deployments", "--site", "hall-2"}, "RXP2-ARIA-DEADBEEF", "", 0},
		{[]string{"deployments", "--site", "main"}, "HOSTNAME", "RXP2-ARIA-DEADBEEF", 0},
		{[]string{"status", "--site", "hall-2"}, "deployments: 1 open", "", 0},
		{[]string{"status", "--site", "main"}, "deployments: 0 open", "", 0},
	} {
		out, errs, code := runCLI(t, srv, "", tc.args...)
		if code != tc.wantStatus || !strings.Contains(out, tc.want) || (tc.not != "" && strings.Contains(out, tc.not)) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q and not %q", tc.args, code, out, errs, tc.want, tc.not)
		}
	}
	if out, errs, code := runCLI(t, srv, "", "boards", "--site", "Hall 2"); code == 0 || !strings.Contains(errs, `site "Hall 2"`) {
		t.Errorf("boards --site 'Hall 2': exit %d, stdout %q, stderr %q; want a refusal naming the site", code, out, errs)
	}
}
