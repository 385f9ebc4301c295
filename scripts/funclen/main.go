// Command funclen fails when a non-test Go function is longer than a limit (default 80
// lines, from its func line to its closing brace), unless an allowlist names it.
// scripts/lint.sh runs it over the repository:
//
//	go run ./scripts/funclen -allow scripts/funclen/allow.txt .
//
// The allowlist holds one function a line, "PATH NAME" (NAME is Func or Type.Method),
// then optionally "# why": parsers, whose length is the format's, and functions another
// change is rewriting. An entry that no longer names a long function is an error too, so
// the list only shrinks.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "funclen:", err)
		os.Exit(1)
	}
}

// errTooLong is wrapped when a function is over the limit or the allowlist is stale.
var errTooLong = errors.New("functions over the limit")

func run(args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("funclen", flag.ContinueOnError)
	max := fl.Int("max", 80, "longest function allowed, in lines")
	allowPath := fl.String("allow", "", "allowlist file (PATH NAME [# why] per line)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		return fmt.Errorf("usage: funclen [-max N] [-allow FILE] ROOT")
	}
	root := fl.Arg(0)
	allow, err := readAllow(*allowPath)
	if err != nil {
		return err
	}
	long, err := scan(root, *max)
	if err != nil {
		return err
	}
	var bad []string
	for _, f := range long {
		if _, ok := allow[f.key]; ok {
			delete(allow, f.key)
			continue
		}
		bad = append(bad, fmt.Sprintf("%s:%d: %s is %d lines (limit %d)", f.path, f.line, f.name, f.lines, *max))
	}
	for k := range allow {
		bad = append(bad, fmt.Sprintf("%s: allowlisted but not over %d lines (or gone): remove it from %s", k, *max, *allowPath))
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		fmt.Fprintln(stdout, strings.Join(bad, "\n"))
		return fmt.Errorf("%w: %d", errTooLong, len(bad))
	}
	return nil
}

// longFunc is a function over the limit.
type longFunc struct {
	path, name, key string
	line, lines     int
}

// scan parses every non-test .go file under root (skipping testdata, vendor,
// third_party — other projects' code, kept as they wrote it — and hidden directories)
// and returns the functions longer than max lines.
func scan(root string, max int) ([]longFunc, error) {
	var out []longFunc
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (name == "testdata" || name == "vendor" || name == "third_party" || name == "node_modules" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		found, err := scanFile(p, filepath.ToSlash(rel), max)
		out = append(out, found...)
		return err
	})
	return out, err
}

func scanFile(path, rel string, max int) ([]longFunc, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []longFunc
	for _, decl := range f.Decls {
		fd, ok := decl.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		start, end := fset.Position(fd.Pos()).Line, fset.Position(fd.End()).Line
		if n := end - start + 1; n > max {
			name := funcName(fd)
			out = append(out, longFunc{path: rel, name: name, key: rel + " " + name, line: start, lines: n})
		}
	}
	return out, nil
}

// funcName is Func, or Type.Method for a method (pointer or not).
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
			continue
		case *ast.IndexExpr:
			t = x.X
			continue
		case *ast.IndexListExpr:
			t = x.X
			continue
		case *ast.Ident:
			return x.Name + "." + fd.Name.Name
		}
		return fd.Name.Name
	}
}

// readAllow reads the allowlist: "PATH NAME [# why]" a line; blank lines and lines
// starting with # are skipped. An empty path means no allowlist.
func readAllow(path string) (map[string]bool, error) {
	allow := map[string]bool{}
	if path == "" {
		return allow, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		switch len(fields) {
		case 0:
			continue
		case 2:
			allow[fields[0]+" "+fields[1]] = true
		default:
			return nil, fmt.Errorf("%s:%d: want \"PATH NAME [# why]\", got %q", path, n, sc.Text())
		}
	}
	return allow, sc.Err()
}
