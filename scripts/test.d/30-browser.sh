#!/usr/bin/env bash
# Browser tests of the dashboard (dashboard/e2e): builds the binaries and a small
# packed test image, then drives a real rpi-deployd and real rpi-agent processes with
# headless Chromium (playwright-core, Debian's /usr/bin/chromium). Screenshots go to
# dashboard/e2e/artifacts/. Needs: make deps (chromium, node, npm ci in dashboard/e2e).
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v node >/dev/null || { echo "30-browser: node is not installed" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "30-browser: /usr/bin/chromium is missing (make deps)" >&2; exit 1; }
if [ ! -d dashboard/e2e/node_modules/playwright-core ]; then
  (cd dashboard/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi

make --no-print-directory build >/dev/null
work=$(mktemp -d /tmp/rpi-browser-XXXXXX)
trap 'rm -rf "$work"' EXIT
go run ./scripts/bench/mktestimg -o "$work/kxp2-e2e.img" -pack "$work/kxp2-e2e.img.zst" -boot-size $((33 << 20)) -root-data $((24 << 20)) -root-free $((4 << 20)) -seed 7 >/dev/null

cd dashboard/e2e
# Server data, agent cards and logs live under $work (TMPDIR): on failure, show the logs.
if ! TMPDIR="$work" RPI_BIN="$PWD/../../bin" E2E_IMAGE="$work/kxp2-e2e.img.zst" ARTIFACTS="$PWD/artifacts" \
  node --test --test-concurrency=1 --test-timeout=240000 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$work/browser.tap" \
  live.test.mjs dashboard.test.mjs newboards.test.mjs profiles.test.mjs sites.test.mjs; then
  for f in "$work"/rpi-e2e-*/*.log; do echo "== $f"; tail -n 40 "$f"; done
  exit 1
fi
# A skipped or todo test did not run: CI has everything they need (the TAP summary).
skipped=$(awk '/^# (skipped|todo) /{n += $3} END{print n + 0}' "$work/browser.tap")
echo "30-browser: skipped: $skipped"
if [ "$skipped" -gt 0 ]; then
  grep -E '# (SKIP|TODO)' "$work/browser.tap" >&2 || true
  exit 1
fi
