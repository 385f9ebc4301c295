#!/usr/bin/env bash
# The boot test: the arm64 initramfs in QEMU against rpi-deployd in network namespaces
# (make e2e; docs/initramfs.md). Needs root; fetches the Debian arm64 kernel once.
set -euo pipefail
cd "$(dirname "$0")/../.."
make e2e
