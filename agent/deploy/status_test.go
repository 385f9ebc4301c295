package deploy

import (
	"bytes"
	"strings"
	"testing"
)

// TestStatus: on a TTY the status is one line redrawn in place (\r, padded over the
// previous one) with a bar; elsewhere a plain line at most every 5 s.
func TestStatus(t *testing.T) {
	var tty bytes.Buffer
	r := &run{cfg: Config{Console: &tty, TTY: true}}
	r.status("streaming", 512<<20, 1<<30, 80e6)
	r.status("verifying", 1<<20, 1<<30, 200e6)
	out := tty.String()
	if strings.Count(out, "\r") != 2 || strings.Contains(out, "\n") {
		t.Errorf("TTY output %q: want two \\r-redrawn lines and no newline", out)
	}
	if !strings.Contains(out, "[###############...............] rpi-agent: streaming 512.00 MiB / 1.00 GiB   50.0%") {
		t.Errorf("TTY output %q lacks the half-full bar", out)
	}
	r.say("done")
	if !strings.HasSuffix(tty.String(), "\nrpi-agent: done\n") {
		t.Errorf("say after a bar must start a new line: %q", tty.String())
	}

	var log bytes.Buffer
	r = &run{cfg: Config{Console: &log}}
	r.status("streaming", 1, 2, 3)
	r.status("streaming", 2, 2, 3) // within 5 s: not printed
	if got := strings.Count(log.String(), "\n"); got != 1 || strings.Contains(log.String(), "\r") {
		t.Errorf("non-TTY output %q: want one plain line", log.String())
	}
}
