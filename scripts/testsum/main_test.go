package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// goTestJSON runs the real `go test -json` on a throw-away module whose files are
// given, and returns what it printed (its exit status is ignored: failing tests are
// the point).
func goTestJSON(t *testing.T, files map[string]string) []byte {
	t.Helper()
	dir := t.TempDir()
	files["go.mod"] = "module example.com/sum\n\ngo 1.22\n"
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-json", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "CGO_ENABLED=0")
	out, _ := cmd.Output()
	if len(out) == 0 {
		t.Fatal("go test -json printed nothing")
	}
	return out
}

func TestSummary(t *testing.T) {
	out := goTestJSON(t, map[string]string{
		"a/a_test.go": `package a

import "testing"

func TestPass(t *testing.T) { t.Log("quiet when passing") }

func TestFail(t *testing.T) { t.Error("the reason it failed") }

func TestSkip(t *testing.T) { t.Skip("needs something this machine lacks") }

func TestSub(t *testing.T) {
	t.Run("ok", func(t *testing.T) {})
	t.Run("skipped", func(t *testing.T) { t.Skipf("sub skip %d", 7) })
}
`,
		"b/b_test.go": `package b

import "testing"

func TestOnlyPass(t *testing.T) {}
`,
		"c/c_test.go": `package c

import "testing"

func TestBroken(t *testing.T) { undefined() }
`,
	})
	var w bytes.Buffer
	s, err := summarise(bytes.NewReader(out), &w, false)
	if err != nil {
		t.Fatal(err)
	}
	got := w.String()
	// TestPass, TestSub, TestSub/ok, TestOnlyPass pass; TestFail fails; TestSkip and
	// TestSub/skipped are skipped; package c does not build.
	if s.passed != 4 || s.failed != 1 || len(s.skipped) != 2 || s.ok() {
		t.Errorf("passed %d, failed %d, skipped %d, ok %v; want 4, 1, 2, false\n%s", s.passed, s.failed, len(s.skipped), s.ok(), got)
	}
	for _, want := range []string{
		"the reason it failed", "--- FAIL: TestFail",
		"example.com/sum/a TestSkip", "needs something this machine lacks",
		"example.com/sum/a TestSub/skipped", "sub skip 7",
		"ok  \texample.com/sum/b",
		"undefined: undefined", "package failed: example.com/sum/c",
		"\nskipped: 2\n", "\ngo: 4 passed, 1 failed, 2 skipped\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, not := range []string{"quiet when passing", "=== RUN", "\nPASS\n"} {
		if strings.Contains(got, not) {
			t.Errorf("output has %q (plain go test prints it only with -v):\n%s", not, got)
		}
	}
}

func TestAllPassIsOK(t *testing.T) {
	out := goTestJSON(t, map[string]string{"b/b_test.go": "package b\n\nimport \"testing\"\n\nfunc TestOnlyPass(t *testing.T) {}\n"})
	var w bytes.Buffer
	s, err := summarise(bytes.NewReader(out), &w, false)
	if err != nil {
		t.Fatal(err)
	}
	if !s.ok() || !strings.HasSuffix(w.String(), "skipped: 0\ngo: 1 passed, 0 failed, 0 skipped\n") {
		t.Errorf("ok %v; output:\n%s", s.ok(), w.String())
	}
}

func TestVerbose(t *testing.T) {
	out := goTestJSON(t, map[string]string{"b/b_test.go": "package b\n\nimport \"testing\"\n\nfunc TestOnlyPass(t *testing.T) { t.Log(\"progress of a long test\") }\n"})
	var w bytes.Buffer
	s, err := summarise(bytes.NewReader(out), &w, true)
	if err != nil {
		t.Fatal(err)
	}
	if !s.ok() || !strings.Contains(w.String(), "=== RUN   TestOnlyPass") || !strings.Contains(w.String(), "progress of a long test") {
		t.Errorf("ok %v; -v output:\n%s", s.ok(), w.String())
	}
}
