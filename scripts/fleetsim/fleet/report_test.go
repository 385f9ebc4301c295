package fleet

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
)

func TestReportTableAndOK(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	boards := []*Board{
		{Index: 1, Serial: "1000000000000001", Scenario: Normal, Outcome: Verified, Start: t0, End: t0.Add(10 * time.Second)},
		{Index: 2, Serial: "1000000000000002", Scenario: BadCard, Outcome: Failed, Cause: "streaming: write: no space left on device", Start: t0, End: t0.Add(4 * time.Second)},
		{Index: 3, Serial: "1000000000000003", Scenario: Reboot, Outcome: Stuck, Cause: "no end after 10m0s", Start: t0, End: t0.Add(20 * time.Second)},
	}
	rep := &Report{Boards: boards, Elapsed: 20 * time.Second}
	for _, b := range boards {
		if b.Outcome == b.Scenario.Expect() {
			rep.Expected++
		}
	}
	if rep.OK() {
		t.Error("OK with a stuck board")
	}
	if got := rep.AllVerifiedAfter(); got != 10*time.Second {
		t.Errorf("AllVerifiedAfter = %v, want 10s", got)
	}
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"scenario  boards  verified  failed  stuck  verified-but-bad",
		"board 002 1000000000000002 badcard  failed: streaming: write: no space left on device",
		"board 003 1000000000000003 reboot   stuck: no end after 10m0s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "board 001") {
		t.Errorf("table lists a verified board:\n%s", out)
	}
	// Rows: header, three scenarios, all.
	if n := strings.Count(out, "\n"); n != 5+2 {
		t.Errorf("%d lines, want 7:\n%s", n, out)
	}
}

func TestSummaryLine(t *testing.T) {
	s := Summary{Elapsed: 12 * time.Second, Boards: 20, Reboots: 1, Cuts: 2,
		States: map[string]int{"verified": 6, "streaming": 9, "off": 1, "hello": 1, "failed": 1, "weird": 2}}
	want := "  12.0s 20 boards: hello 1 streaming 9 off 1 verified 6 failed 1 weird 2 (power cuts 1, connections cut 2)"
	if got := s.Line(); got != want {
		t.Errorf("Line() =\n%q, want\n%q", got, want)
	}
}

// A board the simulator cannot set up is a simulator error, never "failed as
// expected" — not even for a bad card, whose expected end is failed.
func TestSimulatorErrorIsNeverExpected(t *testing.T) {
	m := &manifest.Manifest{Name: "x", Size: 1 << 20, DataBytes: 1 << 20, CompressedSize: 1 << 10}
	f, err := New(Config{Server: "http://127.0.0.1:1", Agent: t.TempDir(), Manifest: m, WorkDir: t.TempDir(), Boards: 2, Mix: Mix{Normal: 50, Slow: 50}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range rep.Boards {
		if b.Outcome != SimError || !strings.Contains(b.Cause, "start agent") {
			t.Errorf("board %d with a directory for an agent: %s %q, want %s", b.Index, b.Outcome, b.Cause, SimError)
		}
	}
	if rep.OK() || rep.Expected != 0 {
		t.Errorf("OK %v with %d expected, want not OK and 0", rep.OK(), rep.Expected)
	}
}
