package domain

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// maxFuncLines bounds the functions of the server's rule, storage, HTTP and CLI
// packages: a function longer than this does more than one thing (Hello once ran
// to 196 lines with a closure resetting captured state for a retry that never
// happened). Parsers, whose length follows a format, would be listed in
// longParsers; none is today.
const maxFuncLines = 80

var longParsers = map[string]bool{}

// TestFunctionLength fails naming each function of server/domain, server/store,
// server/api and server/cli (tests aside) longer than maxFuncLines.
func TestFunctionLength(t *testing.T) {
	fset := token.NewFileSet()
	n := 0
	for _, dir := range []string{".", "../store", "../api", "../cli"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range af.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok {
					continue
				}
				n++
				lines := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
				if lines > maxFuncLines && !longParsers[fd.Name.Name] {
					t.Errorf("%s: func %s is %d lines, more than %d", f, fd.Name.Name, lines, maxFuncLines)
				}
			}
		}
	}
	if n < 100 {
		t.Fatalf("only %d functions seen", n)
	}
}
