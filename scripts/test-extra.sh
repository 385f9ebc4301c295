#!/usr/bin/env bash
# The tests that are not `go test`: each script in scripts/test.d/ in name order
# (QEMU boot, browser tests). Each installs what it needs and exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
for t in scripts/test.d/*.sh; do
  echo "== $t"
  bash "$t"
done
