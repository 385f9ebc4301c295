#!/usr/bin/env bash
# Runs every benchmark in scripts/bench/ in name order. Each prints lines of the form
#   bench: NAME ours=X baseline=Y ratio=R
# measured side by side in the same run; none of them is a pass/fail test.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in scripts/bench/*.sh; do
  echo "== $b"
  bash "$b"
done
