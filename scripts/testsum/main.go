// Command testsum reads `go test -json` on stdin and prints what plain `go test`
// prints (package results, and the output of failing tests), then the skipped tests
// with their reasons, a line "skipped: N" and a closing line "go: P passed, F failed,
// S skipped". With -v it prints every test's output as it comes, as go test -v does.
// It exits 1 when a test or a package failed, or when any test was
// skipped: CI has root, the tools and network namespaces, so a skip there hides a
// test that did not run (only the real-Pi guards skip, and CI is no Pi).
//
//	set -o pipefail; go test -json ./... | go run ./scripts/testsum [-v]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	verbose := flag.Bool("v", false, "print every test's output as it comes (go test -v)")
	flag.Parse()
	s, err := summarise(os.Stdin, os.Stdout, *verbose)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testsum: %v\n", err)
		os.Exit(2)
	}
	if !s.ok() {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

// skip is a skipped test and what it printed (t.Skip's reason).
type skip struct {
	name   string
	output string
}

// summary is what a run came to.
type summary struct {
	passed, failed int
	skipped        []skip
	pkgFailed      []string
}

// isProgress reports whether a test's output line is one of -v's progress lines.
func isProgress(line string) bool {
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME"} {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

func (s *summary) ok() bool { return s.failed == 0 && len(s.skipped) == 0 && len(s.pkgFailed) == 0 }

// summarise reads the events from r and writes the report to w; verbose writes
// every test's output at once, not only a failing test's.
func summarise(r io.Reader, w io.Writer, verbose bool) (*summary, error) {
	s := &summary{}
	// Output of running tests, by package and test, printed only if the test fails.
	pending := map[string]*strings.Builder{}
	key := func(e event) string { return e.Package + "\x00" + e.Test }
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(w, "%s\n", line) // not an event: a build error or the like
			continue
		}
		switch {
		case e.Action == "build-output":
			io.WriteString(w, e.Output)
		case e.Action == "build-fail":
			s.pkgFailed = append(s.pkgFailed, e.Package+" (build failed)")
		case e.Test == "" && e.Action == "output" && e.Output == "PASS\n":
			// The test binary's own last line: go test shows "ok  pkg" instead.
		case e.Test == "" && e.Action == "output":
			io.WriteString(w, e.Output) // "ok  pkg 1.2s", "FAIL pkg", panics outside tests
		case e.Test == "" && e.Action == "fail":
			s.pkgFailed = append(s.pkgFailed, e.Package)
			// Tests still running when the package failed (a panic, a timeout): show
			// what they printed.
			for k, b := range pending {
				if strings.HasPrefix(k, e.Package+"\x00") {
					io.WriteString(w, b.String())
					delete(pending, k)
				}
			}
		case e.Test == "":
		case e.Action == "output" && verbose:
			io.WriteString(w, e.Output)
		case e.Action == "output" && isProgress(e.Output):
			// "=== RUN" and the like: -json implies -v; plain go test prints none.
		case e.Action == "output":
			b := pending[key(e)]
			if b == nil {
				b = &strings.Builder{}
				pending[key(e)] = b
			}
			b.WriteString(e.Output)
		case e.Action == "pass":
			s.passed++
			delete(pending, key(e))
		case e.Action == "fail":
			s.failed++
			if b := pending[key(e)]; b != nil {
				io.WriteString(w, b.String())
			}
			delete(pending, key(e))
		case e.Action == "skip":
			var out string
			if b := pending[key(e)]; b != nil {
				out = b.String()
			}
			s.skipped = append(s.skipped, skip{name: e.Package + " " + e.Test, output: out})
			delete(pending, key(e))
		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	s.report(w)
	return s, nil
}

// report writes the skipped tests with what they printed, the failed packages and
// the counts.
func (s *summary) report(w io.Writer) {
	if len(s.skipped) > 0 {
		fmt.Fprintf(w, "skipped tests (CI runs every test; a skip hides one that did not run):\n")
		for _, k := range s.skipped {
			fmt.Fprintf(w, "  %s\n", k.name)
			for _, l := range strings.Split(strings.TrimRight(k.output, "\n"), "\n") {
				if l = strings.TrimSpace(l); l != "" {
					fmt.Fprintf(w, "    %s\n", l)
				}
			}
		}
	}
	for _, p := range s.pkgFailed {
		fmt.Fprintf(w, "package failed: %s\n", p)
	}
	fmt.Fprintf(w, "skipped: %d\n", len(s.skipped))
	fmt.Fprintf(w, "go: %d passed, %d failed, %d skipped\n", s.passed, s.failed, len(s.skipped))
}
