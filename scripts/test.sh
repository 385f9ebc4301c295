#!/usr/bin/env bash
# make test: lint, the Go tests under the race detector, the cross-builds, then the
# tests that are not `go test` (scripts/test-extra.sh: QEMU boots, browsers, demo).
#
# The second boot's Debian OS images (image-tools/osimg; docs/osimg.md) are the
# costliest input of the whole run on a fresh machine: mmdebstrap runs the packages'
# scripts under qemu-user. They are built in the background from the start, so their
# minutes overlap the Go tests' waiting; the e2e test then finds them in the cache (or
# waits on the cache's lock for this build). A cached image is reused as long as its
# inputs do not change.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
go build -o build/mkosimg ./image-tools/osimg/cmd/mkosimg
( initramfs/fetch-kernel.sh && exec build/mkosimg ) >build/osimg.log 2>&1 &
osimg=$!
trap 'kill -INT $osimg 2>/dev/null || true' EXIT
echo "test: OS images for the second boot building in the background (build/osimg.log)"

make lint test-go cross

start=$SECONDS
if wait $osimg; then
  echo "test: OS images ready (waited $((SECONDS - start)) s more): $(grep -E 'cached=' build/osimg.log | tr '\n' ' ')"
else
  echo "test: the background OS image build failed; the e2e tries again. build/osimg.log:" >&2
  tail -20 build/osimg.log >&2
fi
trap - EXIT
scripts/test-extra.sh
