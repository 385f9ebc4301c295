package led

import (
	"os"
	"path/filepath"
	"testing"
)

// The kernel's LED class exposes trigger, brightness, and (with the timer trigger)
// delay_on/delay_off; a fake tree with those files stands in for a Pi here.
func TestSet(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "sys/class/leds/ACT")
	os.MkdirAll(dir, 0o755)
	for _, f := range []string{"trigger", "brightness", "delay_on", "delay_off"} {
		os.WriteFile(filepath.Join(dir, f), nil, 0o644)
	}
	l := Find(root)
	if l == nil {
		t.Fatal("ACT not found")
	}
	read := func(f string) string { b, _ := os.ReadFile(filepath.Join(dir, f)); return string(b) }
	for _, tc := range []struct{ state, file, want string }{
		{Working, "trigger", "heartbeat"}, {Failed, "trigger", "timer"}, {Failed, "delay_on", "100"},
		{Done, "trigger", "none"}, {Done, "brightness", "1"}, {Off, "brightness", "0"},
	} {
		if err := l.Set(tc.state); err != nil {
			t.Fatal(err)
		}
		if got := read(tc.file); got != tc.want {
			t.Errorf("%s: %s = %q, want %q", tc.state, tc.file, got, tc.want)
		}
	}
	if err := l.Set("disco"); err == nil {
		t.Error("unknown state accepted")
	}
	var none *LED = Find(t.TempDir())
	if none != nil || none.Set(Working) != nil {
		t.Error("missing LED should be nil and a no-op")
	}
}
