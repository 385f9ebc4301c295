package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// body returns a Go function of n lines in all.
func body(name string, n int) string {
	return "func " + name + "() {\n" + strings.Repeat("\t_ = 1\n", n-2) + "}\n"
}

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a/a.go", "package a\n\n"+body("Short", 80)+body("Long", 81)+"type T struct{}\n\n"+strings.Replace(body("Method", 90), "func ", "func (t *T) ", 1))
	write(t, dir, "a/a_test.go", "package a\n\n"+body("testHelper", 200))
	write(t, dir, "a/testdata/x.go", "package x\n\n"+body("Data", 200))
	allow := filepath.Join(dir, "allow.txt")
	for _, tc := range []struct {
		name, allow string
		want        []string // substrings of the report; none: passes
	}{
		{"none allowed", "", []string{"a/a.go:83: Long is 81 lines", "T.Method is 90 lines"}},
		{"all allowed", "a/a.go Long  # parser\n# comment\n\na/a.go T.Method\n", nil},
		{"one allowed", "a/a.go T.Method # owned elsewhere\n", []string{"Long is 81 lines"}},
		{"stale entry", "a/a.go Long\na/a.go T.Method\na/a.go Short\n", []string{"a/a.go Short: allowlisted but not over 80"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write(t, dir, "allow.txt", tc.allow)
			var out strings.Builder
			err := run([]string{"-allow", allow, dir}, &out)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("err = %v, output %q", err, out.String())
				}
				return
			}
			if !errors.Is(err, errTooLong) {
				t.Fatalf("err = %v, want errTooLong", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output %q lacks %q", out.String(), w)
				}
			}
			if strings.Contains(out.String(), "testHelper") || strings.Contains(out.String(), "Data") {
				t.Errorf("output %q names a test or testdata function", out.String())
			}
		})
	}
}

// TestBadAllowlist: a malformed line is an error naming the line, not a silent pass.
func TestBadAllowlist(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "allow.txt", "a/a.go\n")
	err := run([]string{"-allow", filepath.Join(dir, "allow.txt"), dir}, new(strings.Builder))
	if err == nil || !strings.Contains(err.Error(), "allow.txt:1") {
		t.Fatalf("err = %v, want one naming allow.txt:1", err)
	}
}
