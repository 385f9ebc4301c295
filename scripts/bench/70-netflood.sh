#!/usr/bin/env bash
# HTTP connection flood (issue 13) against rpi-deployd with its default limits
# (scripts/bench/netflood): 20 boards' hello p99, image download rate, and the
# server's descriptors and RSS, while 80 loopback addresses try to hold 200
# connections each (idle, endless headers, endless bodies), against the same boards
# with the network quiet, in the same run.
#   bench: httpflood-hello-p99-ms    ours=FLOOD baseline=QUIET ratio=R
#   bench: httpflood-download-MBps   ours=FLOOD baseline=QUIET ratio=R
#   bench: httpflood-server-fds      ours=FLOOD baseline=QUIET ratio=R
#   bench: httpflood-server-rss-MiB  ours=FLOOD baseline=QUIET ratio=R
set -euo pipefail
cd "$(dirname "$0")/../.."
go build -o bin/ ./server/cmd/rpi-deployd # always: a stale bin/rpi-deployd would be measured silently
go build -o bin/netflood ./scripts/bench/netflood
ulimit -n 20000 2>/dev/null || true
bin/netflood -bin bin/rpi-deployd "$@"
