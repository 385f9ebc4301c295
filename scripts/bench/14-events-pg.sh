#!/usr/bin/env bash
# Events across servers (server/events/pgrelay, BenchmarkDelivery): the time from a
# Publish at one server to the event read from another server's bus, through a
# throw-away PostgreSQL 15 (internal/pgtest; two relays on one database), against the
# in-process bus of one server (SQLite mode) in the same run; one event at a time
# (latency), and bursts of 1000 (the relay writes a burst in a few transactions).
# Microseconds per event. EVENTS sets how many (default 2000).
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -count=1 -run '^$' -bench Delivery -benchtime "${EVENTS:-2000}x" ./server/events/pgrelay/ | awk '
/^BenchmarkDelivery\// {
  name = $1; sub(/^BenchmarkDelivery\//, "", name); sub(/-[0-9]+$/, "", name)
  for (i = 2; i <= NF; i++) {
    if ($i == "ns/event-pg") pg = $(i-1)
    if ($i == "ns/event-inprocess") base = $(i-1)
    if ($i == "ratio") r = $(i-1)
  }
  printf "bench: events-%s-2servers-pg-us ours=%.1f baseline=%.1f ratio=%.1f\n", name, pg / 1000, base / 1000, r
}'
