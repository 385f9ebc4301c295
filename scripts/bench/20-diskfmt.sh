#!/usr/bin/env bash
# image-tools/fat and image-tools/ext4 against the outside tools doing the same job on
# the same Raspberry Pi OS-shaped image (image-tools/testimg), page cache warm, best of
# three: used ranges (vs dumpe2fs, fsck.fat -n), extracting every file (vs debugfs
# rdump, mcopy -s), the agent's naming writes (vs mcopy -o). See
# scripts/bench/diskfmt/main.go. Env: BENCH_DIR (default a new dir under /var/tmp),
# ROOT_DATA (MiB of rootfs file data, default 1024), KEEP=1 keeps the work dir.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${BENCH_DIR:-$(mktemp -d /var/tmp/diskfmt-bench.XXXXXX)}
mkdir -p "$work"
trap '[ "${KEEP:-}" = 1 ] || rm -rf "$work"' EXIT
go build -o "$work/diskfmt" ./scripts/bench/diskfmt
"$work/diskfmt" -dir "$work" -root-data "${ROOT_DATA:-1024}"
