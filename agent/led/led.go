// Package led shows the agent's state on the Pi's green ACT LED through
// /sys/class/leds (the "ACT" LED on a Pi 5, "led0" on older kernels). A nil *LED, or
// a board without one, does nothing.
package led

import (
	"fmt"
	"os"
	"path/filepath"
)

// States the agent shows.
const (
	Working = "working" // heartbeat blink while hello/streaming/verifying
	Failed  = "failed"  // fast blink: look at this board
	Done    = "done"    // steady on: verified and named
	Off     = "off"
)

// LED is one /sys/class/leds entry.
type LED struct{ dir string }

// Find returns the ACT LED below root ("/" on a Pi), or nil when there is none.
func Find(root string) *LED {
	for _, name := range []string{"ACT", "led0"} {
		dir := filepath.Join(root, "sys/class/leds", name)
		if _, err := os.Stat(filepath.Join(dir, "trigger")); err == nil {
			return &LED{dir: dir}
		}
	}
	return nil
}

// Set shows state.
func (l *LED) Set(state string) error {
	if l == nil {
		return nil
	}
	switch state {
	case Working:
		return l.write("trigger", "heartbeat")
	case Failed:
		if err := l.write("trigger", "timer"); err != nil {
			return err
		}
		if err := l.write("delay_on", "100"); err != nil {
			return err
		}
		return l.write("delay_off", "100")
	case Done:
		if err := l.write("trigger", "none"); err != nil {
			return err
		}
		return l.write("brightness", "1")
	case Off:
		if err := l.write("trigger", "none"); err != nil {
			return err
		}
		return l.write("brightness", "0")
	}
	return fmt.Errorf("led: unknown state %q", state)
}

func (l *LED) write(file, v string) error {
	if err := os.WriteFile(filepath.Join(l.dir, file), []byte(v), 0o644); err != nil {
		return fmt.Errorf("led %s: %w", filepath.Base(l.dir), err)
	}
	return nil
}
