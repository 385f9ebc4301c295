#!/usr/bin/env bash
# rpi-deployd against plain baselines, side by side in one run (scripts/bench/serverbench):
#   hello latency p50/p99 with 200 concurrent boards (vs a bare net/http JSON handler),
#   image download throughput (vs http.FileServer on the same file, ratio >= 0.95 expected),
#   peak RSS of each server process while 50 downloads run.
# SIZE_MIB sets the raw image size (default 512).
set -euo pipefail
cd "$(dirname "$0")/../.."
go build -o bin/ ./server/cmd/rpi-deployd # always: a stale bin/rpi-deployd would be measured silently
go build -o bin/serverbench ./scripts/bench/serverbench
bin/serverbench -bin bin/rpi-deployd -size "${SIZE_MIB:-512}" "$@"
