#!/usr/bin/env bash
# The dashboard's fleet view with 1000 boards live against 10, in one run
# (dashboard/e2e/bench-rows.mjs): headless Chromium, a real rpi-deployd, real hellos and
# progress events; time from an event's arrival in the page to its board's row update.
#   bench: dashboard-event-to-row-ms-p50 ours=AT_1000_ROWS baseline=AT_10_ROWS ratio=R
#   bench: dashboard-event-to-row-ms-p95 ours=AT_1000_ROWS baseline=AT_10_ROWS ratio=R
# Needs: node, /usr/bin/chromium, playwright-core (npm ci in dashboard/e2e; make deps).
# BENCH_ROWS (1000) and BENCH_EVENTS (40) change the sizes.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v node >/dev/null || { echo "80-dashboard: node is not installed" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "80-dashboard: /usr/bin/chromium is missing (make deps)" >&2; exit 1; }
if [ ! -d dashboard/e2e/node_modules/playwright-core ]; then
  (cd dashboard/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
go build -o bin/ ./server/cmd/rpi-deployd # always: a stale bin/rpi-deployd would be measured silently
work=$(mktemp -d /tmp/rpi-bench-dash-XXXXXX)
trap 'rm -rf "$work"' EXIT
go run ./scripts/bench/mktestimg -o "$work/kxp2-bench.img" -pack "$work/kxp2-bench.img.zst" -boot-size $((33 << 20)) -root-data $((8 << 20)) -root-free $((4 << 20)) -seed 7 >/dev/null
cd dashboard/e2e
TMPDIR="$work" RPI_BIN="$PWD/../../bin" E2E_IMAGE="$work/kxp2-bench.img.zst" node bench-rows.mjs
