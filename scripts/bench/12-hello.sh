#!/usr/bin/env bash
# Hellos at fleet speed (scripts/bench/hellobench): bursts of 1000 hellos sent at
# once, each opening a new deployment, against a bare net/http handler that decodes
# the same JSON (a separate process, same concurrency, same run): p50 and p99, and
# each server's CPU time per hello, on an empty database and with 55 000 open
# deployments seeded through the store.
# BOARDS, BURSTS, WARMUP (unmeasured rounds first) and SEED change the
# sizes; PROFILE=DIR also writes rpi-deployd's CPU profile under each scenario to DIR
# (go tool pprof bin/rpi-deployd DIR/*.pprof).
set -euo pipefail
cd "$(dirname "$0")/../.."
go build -o bin/ ./server/cmd/rpi-deployd # always: a stale bin/rpi-deployd would be measured silently
go build -o bin/hellobench ./scripts/bench/hellobench
args=(-bin bin/rpi-deployd -boards "${BOARDS:-1000}" -bursts "${BURSTS:-3}" -warmup "${WARMUP:-3}" -seed "${SEED:-55000}")
[ -z "${PROFILE:-}" ] || { mkdir -p "$PROFILE"; args+=(-profile "$PROFILE"); }
bin/hellobench "${args[@]}"
