#!/usr/bin/env bash
# Images across sites (server/api BenchmarkPullImage): the time for a second site to
# pull a 128 MiB packed image (1 MiB chunks, incompressible) from the site that holds
# it, over loopback — each frame decoded and proven against its chunk's SHA-256
# before it is written, then the whole file checked against compressed_sha256 and
# fsynced — against a plain verified copy of the same file in the same run (GET of
# the download path into a file, SHA-256 as the bytes pass, fsync). Milliseconds per
# image. PULLS sets how many of each (default 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -count=1 -run '^$' -bench PullImage -benchtime "${PULLS:-3}x" ./server/api/ | awk '
/^BenchmarkPullImage/ {
  for (i = 2; i <= NF; i++) {
    if ($i == "ms/pull") pull = $(i-1)
    if ($i == "ms/copy") copy = $(i-1)
    if ($i == "ratio") r = $(i-1)
  }
  printf "bench: image-pull-128mib-ms ours=%.0f baseline=%.0f ratio=%.2f\n", pull, copy, r
}'
