package tftp

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/internal/logbuf"
)

// leaseBoards answers BoardByIP as the DHCP leases do: the serial decoded from the
// board's option 97.
type leaseBoards map[netip.Addr]Board

func (l leaseBoards) BoardByIP(_ context.Context, ip netip.Addr) (Board, bool) {
	b, ok := l[ip]
	return b, ok
}

// TestPrefixWinsOverOption97: when the serial that DHCP decoded from option 97
// disagrees with the TFTP prefix the same board asks for, the server says so (WARN,
// both values) and names the board by the prefix in the generated files.
func TestPrefixWinsOverOption97(t *testing.T) {
	root := t.TempDir()
	var logs logbuf.Buffer
	boards := leaseBoards{netip.MustParseAddr("127.0.0.1"): {Serial: "1045155b", MAC: "dc:a6:32:2e:f8:ed"}}
	s := serveLoopback(t, Options{Root: root, ServerURL: "http://10.42.0.1:8080", Boards: boards, Timeout: time.Second, Retries: 3,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	for _, tc := range []struct {
		name, wantBoard string
		wantWarn        bool
	}{
		{name: "5b154510/cmdline.txt", wantBoard: "5b154510", wantWarn: true},
		{name: "1045155b/cmdline.txt", wantBoard: "1045155b"},
		{name: "cmdline.txt", wantBoard: "1045155b"}, // no prefix: the lease names the board
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(logs.String())
			got, err := fetch(t, "curl", s.LocalAddr(), tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(got), " rpideploy.board="+tc.wantBoard+" ") {
				t.Errorf("cmdline.txt = %q, want rpideploy.board=%s", got, tc.wantBoard)
			}
			line := logs.String()[before:]
			warned := strings.Contains(line, "level=WARN") && strings.Contains(line, "tftp_prefix=5b154510") &&
				strings.Contains(line, "option97_serial=1045155b")
			if warned != tc.wantWarn {
				t.Errorf("warned = %v, want %v; log:\n%s", warned, tc.wantWarn, line)
			}
		})
	}
}
