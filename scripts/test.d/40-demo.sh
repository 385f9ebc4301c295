#!/usr/bin/env bash
# `make demo` works on this clone, twice in a row: non-interactive check mode
# (DEMO_EXIT_WHEN_DONE=1) exits 0 only once every virtual board is verified, checked
# by the fleet simulator against the server's deployments and the cards themselves.
set -euo pipefail
cd "$(dirname "$0")/../.."

start=$(date +%s)
DEMO_EXIT_WHEN_DONE=1 DEMO_PORT=0 DEMO_BOARDS=10 make demo
# Re-runnable: a second run starts from a fresh demo-data and succeeds too.
DEMO_EXIT_WHEN_DONE=1 DEMO_PORT=0 DEMO_BOARDS=4 DEMO_MIX=reboot=50 make demo
grep -q '"ok": true' demo-data/fleet/report.json || { echo "40-demo: report.json does not say ok" >&2; exit 1; }
echo "40-demo: ok in $(( $(date +%s) - start ))s"
