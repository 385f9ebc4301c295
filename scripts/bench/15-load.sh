#!/usr/bin/env bash
# What dashboards and login attempts cost the agent API (scripts/bench/loadbench):
# rpi-deployd's hello throughput while a load runs against the same server quiet,
# rounds alternating in the same run. Loopback only.
#   bench: hello-rate-2000-sse          ours=LOADED baseline=QUIET ratio=R   2000 event streams open
#   bench: hello-cpu-2000-sse           ours=LOADED baseline=QUIET ratio=R   the server's CPU µs per
#                                                                           hello, same rounds
#   bench: hello-rate-64-wrong-logins   ours=LOADED baseline=QUIET ratio=R   64 clients posting wrong
#                                                                           passwords from 127.1.x.y
# (hellos/s; ratio = the share of the quiet throughput left under the load). The 2000
# streams are read by raw sockets in one epoll loop (loadbench/sse_linux.go): about
# 0.23 s of CPU per GB read, against 2.0 s with a Go HTTP client per stream, so the
# bench's own readers are a small part of the load. The streams ask for gzip as a
# browser's EventSource does (-sse-accept-encoding "" for plain streams; a compressed
# stream's events are counted on one stream in 100, decoded at the end).
# On stderr, per kind of round: the CPU per hello of the server and of the bench, the
# server's write system calls a second and bytes written per hello (/proc/PID/io), and
# for each loaded round the streams' writes a second (the server's
# rpideploy_event_stream_writes_total).
# -pprof 127.0.0.1:PORT profiles the server, -cpuprofile FILE the bench.
set -euo pipefail
cd "$(dirname "$0")/../.."
go build -o bin/ ./server/cmd/rpi-deployd # always: a stale bin/rpi-deployd would be measured silently
go build -o bin/loadbench ./scripts/bench/loadbench
ulimit -n 20000 2>/dev/null || true
bin/loadbench -bin bin/rpi-deployd "$@"
