#!/usr/bin/env bash
# gofmt, go vet and go mod tidy must leave nothing to say; no non-test function over
# 80 lines but those scripts/funclen/allow.txt names (parsers, and code other changes own).
# third_party/ (other projects' code, patched copies in modules of their own) is gofmt-clean
# like the rest; go vet ./... stops at their go.mod and funclen skips them.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi
go vet ./...
go run ./scripts/funclen -allow scripts/funclen/allow.txt .
cp go.mod /tmp/go.mod.lint; cp go.sum /tmp/go.sum.lint
go mod tidy
if ! cmp -s go.mod /tmp/go.mod.lint || ! cmp -s go.sum /tmp/go.sum.lint; then
  echo "go mod tidy changed go.mod/go.sum:"; git diff --stat go.mod go.sum
  cp /tmp/go.mod.lint go.mod; cp /tmp/go.sum.lint go.sum; exit 1
fi
echo "lint: ok"
