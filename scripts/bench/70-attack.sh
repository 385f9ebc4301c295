#!/usr/bin/env bash
# Hello latency under attack (scripts/bench/attackbench): 20 real boards, each from its
# own loopback address, deploy (hello, the whole image with the deployment secret, an event,
# the verified result) while one host runs the pool-drain attack (random serials, each
# followed by a failed result) and the slot-lockout attack (random hellos that never
# stream), against the same boards without the attack; rounds alternate quiet and
# attack in the same run. Loopback only; the attack is bounded (requests and rounds).
#
# Prints:
#   bench: hello-under-attack     ours=P99_MS baseline=P99_MS_QUIET ratio=R
#   bench: hello-under-attack-p50 ours=P50_MS baseline=P50_MS_QUIET ratio=R
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p bin
go build -o bin/ ./server/cmd/rpi-deployd
go build -o bin/attackbench ./scripts/bench/attackbench
bin/attackbench -bin bin/rpi-deployd "$@"
