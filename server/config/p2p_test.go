package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestP2P: "p2p" takes on or off (empty: off), "p2p_seed_for" a duration and
// "p2p_piece_kib" a power of two from 16 to 16384; anything else is refused by Load
// with the field's name, and nothing is started.
func TestP2P(t *testing.T) {
	for _, tc := range []struct {
		name, json, err string
	}{
		{"on", `{"p2p": "on", "p2p_seed_for": "5m"}`, ""},
		{"off", `{"p2p": "off"}`, ""},
		{"unknown", `{"p2p": "maybe"}`, `p2p "maybe": want on or off`},
		{"negative", `{"p2p": "on", "p2p_seed_for": "-1m"}`, "p2p_seed_for"},
		{"pieces of 16 KiB", `{"p2p": "on", "p2p_piece_kib": 16}`, ""},
		{"pieces too small", `{"p2p": "on", "p2p_piece_kib": 8}`, "p2p_piece_kib 8"},
		{"pieces not a power of two", `{"p2p": "on", "p2p_piece_kib": 100}`, "p2p_piece_kib 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.json")
			if err := os.WriteFile(path, []byte(tc.json), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if err == nil {
				err = c.WithDefaults().Validate()
			}
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if tc.name == "on" && (c.P2P != "on" || time.Duration(c.P2PSeedFor) != 5*time.Minute) {
					t.Errorf("got p2p %q seed for %v", c.P2P, time.Duration(c.P2PSeedFor))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v; want one containing %q", err, tc.err)
			}
		})
	}
}
