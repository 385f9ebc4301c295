package progress

import (
	"bytes"
	"strings"
	"testing"
)

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.00 KiB", 3 << 20: "3.00 MiB", 1300 << 20: "1.27 GiB", 5 << 40: "5.00 TiB", 6 << 50: "6.00 PiB", 1<<62 + 1<<61: "6144.00 PiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestLines(t *testing.T) {
	var buf bytes.Buffer
	b := Start(&buf, "packing x", 1000)
	b.Add(400)
	b.Finish(true)
	b.Finish(true) // a second Finish prints nothing
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "packing x:   0.0% 0 B/1000 B") || !strings.HasPrefix(lines[1], "packing x: done, 400 B in") {
		t.Errorf("lines %q", lines)
	}
	var nilBar *Bar
	nilBar.Add(5) // safe
	Start(nil, "quiet", 10).Finish(true)
}
