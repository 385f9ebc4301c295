package fleet

import (
	"context"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
)

// staticView is a server view fixed by the test: the decisions of check are the
// simulator's own logic, exercised here case by case (TestScenarios drives them with a
// real server).
type staticView map[string]ServerBoard

func (v staticView) Boards(context.Context) (map[string]ServerBoard, error) { return v, nil }

func TestCheckAgainstServer(t *testing.T) {
	tests := []struct {
		name      string
		agent     Outcome // what the agent's exit said
		cause     string
		server    *ServerBoard // nil: the server has no deployment for the board
		want      Outcome
		wantCause string
	}{
		{"agent failed, server says verified", Failed, "agent exit status 1: write error",
			&ServerBoard{DeploymentID: 7, Phase: "verified"}, BadVerified, "server shows deployment 7 verified, but the agent failed"},
		{"agent exited 0, server says failed", Verified, "",
			&ServerBoard{DeploymentID: 8, Phase: "failed", Error: "verifying: chunk 3 mismatch"}, Failed, "agent exited 0 but the server shows deployment 8 failed: verifying: chunk 3 mismatch"},
		{"agent ended, server still streaming", Failed, "agent exit status 2: panic",
			&ServerBoard{DeploymentID: 9, Phase: "streaming"}, Stuck, `server still shows deployment 9 in "streaming"`},
		{"agent exited 0, no deployment", Verified, "", nil, Failed, "opened no deployment"},
		{"failure recorded on both sides", Failed, "agent exit status 1: x",
			&ServerBoard{DeploymentID: 10, Phase: "failed", Error: "streaming: write: no space left on device"}, Failed, "streaming: write: no space left on device"},
		{"agent failed before any deployment", Failed, "agent exit status 1: server gone", nil, Failed, "server gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Board{Index: 1, Serial: "1000000000000001", Scenario: Normal, Outcome: tt.agent, Cause: tt.cause}
			view := staticView{}
			if tt.server != nil {
				sb := *tt.server
				sb.Serial = b.Serial
				view[b.Serial] = sb
			}
			m := &manifest.Manifest{Size: 1 << 20, ChunkSize: 1 << 20}
			f := &Fleet{cfg: Config{View: view, Manifest: m}, Boards: []*Board{b}}
			f.check(context.Background())
			if b.Outcome != tt.want || !strings.Contains(b.Cause, tt.wantCause) {
				t.Errorf("check: %s %q, want %s with %q", b.Outcome, b.Cause, tt.want, tt.wantCause)
			}
		})
	}
}
