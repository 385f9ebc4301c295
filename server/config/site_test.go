package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSite: "site" takes [a-z0-9-]{1,32} (empty: main); any other name is refused
// with an error that names the field and the value, and nothing else is checked
// past it.
func TestSite(t *testing.T) {
	for _, tc := range []struct {
		name, json, wantErr string
	}{
		{"default", `{}`, ""},
		{"named", `{"site": "hall-2"}`, ""},
		{"upper case", `{"site": "Hall"}`, `site "Hall"`},
		{"too long", `{"site": "` + strings.Repeat("x", 33) + `"}`, "site"},
		{"space", `{"site": "a b"}`, `site "a b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.json")
			if err := os.WriteFile(path, []byte(tc.json), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			c = c.WithDefaults()
			err = c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate = %v, want an error naming %s", err, tc.wantErr)
			case tc.name == "default" && c.Site != "main":
				t.Errorf("default site %q, want main", c.Site)
			}
		})
	}
}
