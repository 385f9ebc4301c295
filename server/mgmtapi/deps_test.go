package mgmtapi

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientsLinkNoServer pins that the management API's clients link neither the
// database nor the HTTP framework: the operator CLI, the Go client, the wire types
// and the fleet simulator decode the API's JSON with the types of this package, so
// no SQLite driver (modernc.org) nor Gin (github.com/gin-gonic) may reach them. A
// failure names the package that pulled one in and the root it came through.
func TestClientsLinkNoServer(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go list needs the go command: %v", err)
	}
	forbidden := []string{"modernc.org/", "github.com/gin-gonic/", "github.com/rpi-deploy/rpi-deploy/server/store",
		"github.com/rpi-deploy/rpi-deploy/server/domain", "github.com/rpi-deploy/rpi-deploy/server/api"}
	for _, root := range []string{"../cli", "../client", ".", "../../scripts/fleetsim/..."} {
		out, err := exec.Command(goBin, "list", "-deps", root).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", root, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 {
			t.Fatalf("go list -deps %s listed %d packages: %q", root, len(deps), deps)
		}
		for _, d := range deps {
			for _, f := range forbidden {
				if strings.HasPrefix(d, f) {
					t.Errorf("go list -deps %s: %s links %s", root, root, d)
				}
			}
		}
	}
}
